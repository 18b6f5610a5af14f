from siyu.kit.errors import Conflict, NotFound, ValidationFailed


class TemplateNotFound(NotFound):
    code = "coupon_template_not_found"


class TemplateInactive(Conflict):
    code = "coupon_template_inactive"


class TemplateExpired(Conflict):
    code = "coupon_template_expired"


class OutOfStock(Conflict):
    code = "coupon_out_of_stock"


class PerCustomerLimitReached(Conflict):
    code = "coupon_per_customer_limit"


class CouponNotFound(NotFound):
    """Unknown codes and codes of another workspace look the same: nothing leaks across brands."""

    code = "coupon_not_found"


class CouponAlreadyRedeemed(Conflict):
    code = "coupon_used"


class CouponExpired(Conflict):
    code = "coupon_expired"


class CouponNotYetValid(Conflict):
    code = "coupon_not_yet_valid"


class CouponVoided(Conflict):
    code = "coupon_voided"


class CouponNotOwned(Conflict):
    code = "coupon_not_owned"


class BelowThreshold(ValidationFailed):
    code = "coupon_below_threshold"


class NotApplicable(ValidationFailed):
    code = "coupon_not_applicable"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
