"""The demo brand's membership programme (会员体系): four tiers by yearly spend, points for every yuan,
check-ins and shares, a member day, and every customer who registered as a member enrolled.

Their orders earn points and move them up the ladder when the worker handles the `order_paid`
events the demo ingested (as for any brand that moves its history into siyu), so the console shows
members in every tier, with ledgers and tier histories, soon after `siyu serve` starts.
"""

from __future__ import annotations

from sqlalchemy import Engine

from siyu.customers.service import customers_with_identity_type
from siyu.db.session import transaction
from siyu.loyalty.schemas import ProgrammeIn, TierIn
from siyu.loyalty.service.members import Consent, enrol_members_bulk
from siyu.loyalty.service.programme import configure_programme, set_tiers
from siyu.workspaces.service import context_of, get_workspace

ACTOR = "demo"
PROGRAMME = ProgrammeIn(
    name="小林会员俱乐部", points_per_yuan=1, points_expiry="end_of_next_year", check_in_points=5,
    check_in_daily_cap=1, check_in_monthly_cap=31, share_points=10, share_daily_cap=2, share_monthly_cap=20,
    tier_metric="spend_fen", tier_window="rolling_months", tier_window_months=12, member_day=18,
    benefit_day=1, deduction_points_per_yuan=100, max_deduction_percent=30, member_number_prefix="XL")
TIERS = [
    TierIn(code="regular", name="普卡会员", threshold=0),
    TierIn(code="silver", name="银卡会员", threshold=100_000, validity_months=12, points_multiplier_percent=120,
           member_day_multiplier_percent=200, shop_discount_percent=98),
    TierIn(code="gold", name="金卡会员", threshold=300_000, validity_months=12, points_multiplier_percent=150,
           member_day_multiplier_percent=200, shop_discount_percent=95, birthday_points=200),
    TierIn(code="diamond", name="钻石会员", threshold=800_000, validity_months=12, points_multiplier_percent=200,
           member_day_multiplier_percent=300, shop_discount_percent=90, birthday_points=500,
           dedicated_service=True),
]
# What the demo's members agreed to when they registered in the 小程序.
CONSENT = Consent(channel="mini_program", text_version="会员协议 2025-01")


def set_up_loyalty(engine: Engine, workspace_id: int) -> int:
    """Configure the programme and its tiers, and enrol the registered members; returns how many."""
    with transaction(engine) as session:
        ctx = context_of(get_workspace(session, workspace_id))
        configure_programme(session, ctx, PROGRAMME, actor=ACTOR)
        set_tiers(session, ctx, TIERS, actor=ACTOR)
        members = customers_with_identity_type(session, ctx.id, "member_no")
        return enrol_members_bulk(session, ctx, members, CONSENT, actor=ACTOR) if members else 0
