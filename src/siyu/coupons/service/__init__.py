"""The coupon business rules, by use case: templates, issuance, redemption."""

from siyu.coupons.service.issuance import (
    BulkIssueResult,
    IssueOutcome,
    format_code,
    issue_coupon,
    issue_coupons_bulk,
    issue_coupons_to_segment,
    issue_many,
    normalise_code,
)
from siyu.coupons.service.redemption import (
    Redemption,
    expire_coupons,
    find_coupon,
    list_coupons,
    move_customer_coupons,
    redeem_coupon,
    restore_for_refunded_orders,
    usable_coupon_count,
    void_coupon,
)
from siyu.coupons.service.templates import (
    TemplateStats,
    create_template,
    get_template,
    list_templates,
    offer_of,
    template_stats,
    update_template,
)

__all__ = [
    "BulkIssueResult", "IssueOutcome", "Redemption", "TemplateStats", "create_template", "expire_coupons",
    "find_coupon", "format_code", "get_template", "issue_coupon", "issue_coupons_bulk", "issue_coupons_to_segment",
    "issue_many",
    "list_coupons", "list_templates", "move_customer_coupons", "normalise_code", "offer_of", "redeem_coupon",
    "restore_for_refunded_orders", "template_stats", "update_template", "usable_coupon_count", "void_coupon",
]
