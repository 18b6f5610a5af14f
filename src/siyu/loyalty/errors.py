from siyu.kit.errors import Conflict, NotFound, ValidationFailed


class ProgrammeNotConfigured(Conflict):
    code = "loyalty_programme_not_configured"


class InvalidTierLadder(ValidationFailed):
    code = "invalid_tier_ladder"


class TierInUse(Conflict):
    code = "tier_in_use"


class MemberNotFound(NotFound):
    code = "member_not_found"


class MemberNotActive(Conflict):
    code = "member_not_active"


class InsufficientPoints(Conflict):
    code = "insufficient_points"


class InvalidPoints(ValidationFailed):
    code = "invalid_points"


class NotRedeemableWithPoints(Conflict):
    code = "not_redeemable_with_points"


class DeductionTooLarge(ValidationFailed):
    code = "deduction_too_large"


class NoDedicatedService(Conflict):
    code = "no_dedicated_service"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
