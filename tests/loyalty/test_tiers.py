"""Tier rules: the ladder's validation, windows, and downgrades only at the end of the period."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import SiyuError
from siyu.loyalty import rules
from siyu.loyalty.models import TierChange
from siyu.loyalty.schemas import TierIn
from siyu.loyalty.service import ladder, member_summary, set_tiers
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order, refund
from tests.loyalty.conftest import LADDER, fresh, ingest, member, run_jobs, setup_programme

PRAM = [{"sku": "PRAM", "category": "母婴/推车", "quantity": 1, "unit_price_fen": 120_000}]


def tier_code(db: Session, workspace: WorkspaceContext, tier_id: int) -> str:
    return ladder(db, workspace.id).by_id(tier_id).code


def review(engine: Engine) -> None:
    from siyu.db.session import transaction
    from siyu.jobs.service import enqueue

    with transaction(engine) as session:
        enqueue(session, "loyalty.review_tiers")
    run_due_jobs(engine)


@pytest.mark.parametrize(("thresholds", "field"), [
    ([0, 100, 100], "tiers[2].threshold"),  # overlapping
    ([0, 500, 100], "tiers[2].threshold"),  # unordered
    ([10, 100], "tiers[0].threshold"),  # no base tier
])
def test_a_tier_ladder_must_start_at_zero_and_rise(db: Session, workspace: WorkspaceContext, programme: None,
                                                   thresholds: list[int], field: str) -> None:
    tiers = [TierIn(code=f"t{i}", name=f"T{i}", threshold=t) for i, t in enumerate(thresholds)]
    with pytest.raises(SiyuError) as refused:
        set_tiers(db, workspace, tiers, actor="test")
    assert (refused.value.code, refused.value.field) == ("invalid_tier_ladder", field)
    db.rollback()
    assert [t.code for t in ladder(db, workspace.id).tiers] == ["member", "silver", "gold"]


def test_a_tier_someone_holds_cannot_be_removed(db: Session, workspace: WorkspaceContext, programme: None) -> None:
    member(db, workspace)
    with pytest.raises(SiyuError) as refused:
        set_tiers(db, workspace, [TierIn(code="basic", name="基础", threshold=0)], actor="test")
    assert refused.value.code == "tier_in_use"


def test_benefits_name_coupon_templates_of_the_workspace(db: Session, workspace: WorkspaceContext,
                                                         programme: None) -> None:
    tiers = [LADDER[0].model_copy(update={"monthly_coupon_template_id": 999})]
    with pytest.raises(SiyuError) as refused:
        set_tiers(db, workspace, tiers, actor="test")
    assert (refused.value.code, refused.value.field) == ("coupon_template_not_found",
                                                         "tiers[0].monthly_coupon_template_id")


def test_downgrade_waits_for_the_end_of_the_period(db: Session, workspace: WorkspaceContext, engine: Engine,
                                                   clock: FrozenClock) -> None:
    setup_programme(db, workspace, tier_window="rolling_months", tier_window_months=12)
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-19T10:00:00+08:00", items=PRAM))
    run_jobs(engine)
    ingest(db, workspace, refund("O-1", 120_000))  # refunds count: spend is back to 0
    run_jobs(engine)
    assert tier_code(db, workspace, fresh(db, m).tier_id) == "silver"
    clock.set(datetime(2027, 11, 20, 3, 59, tzinfo=UTC))
    review(engine)
    assert tier_code(db, workspace, fresh(db, m).tier_id) == "silver"
    clock.set(datetime(2027, 11, 20, 4, 0, tzinfo=UTC))
    review(engine)
    current = fresh(db, m)
    assert (tier_code(db, workspace, current.tier_id), current.tier_valid_until) == ("member", None)
    down = db.scalars(select(TierChange).where(TierChange.direction == "down")).one()
    assert down.reason == "period ended; spend_fen (last 12 months) is 0, below 100000"


def test_retention_renews_the_tier_for_another_period(db: Session, workspace: WorkspaceContext, engine: Engine,
                                                      clock: FrozenClock) -> None:
    setup_programme(db, workspace, tier_window="rolling_months", tier_window_months=12)
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-19T10:00:00+08:00", items=PRAM))
    run_jobs(engine)
    clock.set(datetime(2027, 11, 10, tzinfo=UTC))
    ingest(db, workspace, order("O-2", at="2027-11-09T10:00:00+08:00", items=PRAM))
    run_jobs(engine)
    clock.set(datetime(2027, 11, 21, tzinfo=UTC))
    review(engine)
    current = fresh(db, m)
    assert tier_code(db, workspace, current.tier_id) == "silver"
    assert current.tier_valid_until == datetime(2028, 11, 20, 4, 0, tzinfo=UTC)
    assert [c.direction for c in db.scalars(select(TierChange).order_by(TierChange.id))] == ["enrolled", "up",
                                                                                             "retained"]


def test_summary_shows_progress_to_the_next_tier(db: Session, workspace: WorkspaceContext, programme: None,
                                                 engine: Engine) -> None:
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00"))
    run_jobs(engine)
    summary = member_summary(db, workspace, m.customer_id)
    assert (summary.tier.code, summary.metric_value, summary.next_tier and summary.next_tier.code,
            summary.to_next) == ("member", 29_800, "silver", 70_200)


@pytest.mark.parametrize(("window", "months", "expected"), [
    ("lifetime", None, None),
    ("calendar_month", None, datetime(2026, 10, 31, 16, 0, tzinfo=UTC)),
    ("calendar_year", None, datetime(2025, 12, 31, 16, 0, tzinfo=UTC)),
    ("rolling_months", 3, datetime(2026, 8, 20, 4, 0, tzinfo=UTC)),
])
def test_windows_begin_in_the_workspace_time_zone(window: str, months: int | None, expected: datetime | None) -> None:
    at = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    assert rules.window_start(at, "Asia/Shanghai", window, months) == expected


def test_month_arithmetic_clamps_to_the_month_end() -> None:
    from datetime import date

    assert rules.add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert rules.add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert rules.benefit_date(2027, 2, 31) == date(2027, 2, 28)
    assert rules.is_member_day(datetime(2027, 2, 28, 4, tzinfo=UTC), "Asia/Shanghai", 31)
