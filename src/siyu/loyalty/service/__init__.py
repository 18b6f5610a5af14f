"""The loyalty business rules, by use case. Other domains call `award_points`, `member_summary`
and (through coupons) `issue_coupon`; everything else is for the loyalty API, CLI, console and jobs."""

from siyu.loyalty.service.benefits import (
    benefit_runs,
    continue_later,
    due_period,
    run_benefits_chunk,
    start_benefit_run,
)
from siyu.loyalty.service.earning import REPLAY_BATCH, EarningSummary, process_events, replay_page
from siyu.loyalty.service.members import (
    Consent,
    MemberSummary,
    assign_dedicated_staff,
    enrol_member,
    enrol_members_bulk,
    get_member,
    leave_programme,
    list_members,
    member_ledger,
    member_summary,
    tier_history,
    tier_member_counts,
)
from siyu.loyalty.service.merge import merge_members
from siyu.loyalty.service.points import (
    MemberPrice,
    PointsResult,
    adjust_points,
    award_points,
    deduct_points,
    expire_points,
    quote_member_price,
    redeem_points,
    redeem_points_for_coupon,
    release_pending_points,
)
from siyu.loyalty.service.programme import Ladder, configure_programme, get_programme, ladder, set_tiers
from siyu.loyalty.service.tiers import review_due_tiers, review_tiers

__all__ = [
    "REPLAY_BATCH",
    "Consent",
    "EarningSummary",
    "Ladder",
    "MemberPrice",
    "MemberSummary",
    "PointsResult",
    "adjust_points",
    "assign_dedicated_staff",
    "award_points",
    "benefit_runs",
    "configure_programme",
    "continue_later",
    "deduct_points",
    "due_period",
    "enrol_member",
    "enrol_members_bulk",
    "expire_points",
    "get_member",
    "get_programme",
    "ladder",
    "leave_programme",
    "list_members",
    "member_ledger",
    "member_summary",
    "merge_members",
    "process_events",
    "quote_member_price",
    "redeem_points",
    "redeem_points_for_coupon",
    "release_pending_points",
    "replay_page",
    "review_due_tiers",
    "review_tiers",
    "run_benefits_chunk",
    "set_tiers",
    "start_benefit_run",
    "tier_history",
    "tier_member_counts",
]
