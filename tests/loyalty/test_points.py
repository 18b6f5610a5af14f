"""Moving points on request and on schedule: redemption, adjustment, deduction, expiry (FIFO)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.coupons.models import Coupon
from siyu.coupons.schemas import TemplateIn
from siyu.coupons.service import create_template
from siyu.db.session import transaction
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import SiyuError
from siyu.loyalty.models import PointsEntry, PointsLot
from siyu.loyalty.service import (
    adjust_points,
    award_points,
    deduct_points,
    expire_points,
    redeem_points,
    redeem_points_for_coupon,
)
from siyu.workspaces.service import WorkspaceContext
from tests.loyalty.conftest import assert_ledger_consistent, fresh, member


def lots(db: Session, member_id: int) -> list[tuple[int, int, str]]:
    return [(lot.points, lot.remaining, lot.status) for lot in db.scalars(
        select(PointsLot).where(PointsLot.member_id == member_id).order_by(PointsLot.id))]


def count_entries(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(PointsEntry)) or 0)


def test_award_is_idempotent_by_cause(db: Session, workspace: WorkspaceContext, programme: None) -> None:
    m = member(db, workspace)
    first = award_points(db, workspace, m.customer_id, 50, "referral:42", "referral")
    again = award_points(db, workspace, m.customer_id, 50, "referral:42", "referral")
    db.commit()
    assert first.entry.id == again.entry.id
    assert fresh(db, m).points_balance == 50
    assert count_entries(db) == 1


def test_redemption_consumes_the_oldest_lots_first(db: Session, workspace: WorkspaceContext, programme: None,
                                                   clock: FrozenClock) -> None:
    m = member(db, workspace)
    award_points(db, workspace, m.customer_id, 100, "a", "first")  # expires end of 2027
    clock.set(datetime(2027, 2, 1, tzinfo=UTC))
    award_points(db, workspace, m.customer_id, 100, "b", "second")  # expires end of 2028
    redeem_points(db, workspace, m.customer_id, 150, "a kettle", "kettle-1")
    db.commit()
    assert lots(db, m.id) == [(100, 0, "available"), (100, 50, "available")]
    assert_ledger_consistent(db, m.id)


def test_points_expire_first_in_first_out(db: Session, workspace: WorkspaceContext, programme: None,
                                          engine: Engine, clock: FrozenClock) -> None:
    m = member(db, workspace)
    award_points(db, workspace, m.customer_id, 100, "a", "2026 points")
    clock.set(datetime(2027, 3, 1, tzinfo=UTC))
    award_points(db, workspace, m.customer_id, 100, "b", "2027 points")
    redeem_points(db, workspace, m.customer_id, 30, "a mug", "mug-1")
    db.commit()
    clock.set(datetime(2027, 12, 31, 15, 59, tzinfo=UTC))  # 23:59 on Dec 31 in Shanghai
    with transaction(engine) as session:
        assert expire_points(session) == 0
    clock.set(datetime(2027, 12, 31, 16, 0, tzinfo=UTC))
    with transaction(engine) as session:
        assert expire_points(session) == 70
    with transaction(engine) as session:
        assert expire_points(session) == 0
    assert fresh(db, m).points_balance == 100
    assert lots(db, m.id) == [(100, 0, "expired"), (100, 100, "available")]
    assert_ledger_consistent(db, m.id)


def test_redeeming_beyond_the_balance_is_refused_and_changes_nothing(db: Session, workspace: WorkspaceContext,
                                                                     programme: None) -> None:
    m = member(db, workspace)
    award_points(db, workspace, m.customer_id, 100, "a", "welcome")
    db.commit()
    with pytest.raises(SiyuError) as refused:
        redeem_points(db, workspace, m.customer_id, 101, "too much", "r-1")
    db.rollback()
    assert refused.value.code == "insufficient_points"
    assert fresh(db, m).points_balance == 100
    assert count_entries(db) == 1
    assert_ledger_consistent(db, m.id)


@pytest.mark.parametrize("points", [0, -5, 2.5, "10", True])
def test_points_must_be_whole_and_positive(db: Session, workspace: WorkspaceContext, programme: None,
                                           points: object) -> None:
    m = member(db, workspace)
    with pytest.raises(SiyuError) as refused:
        redeem_points(db, workspace, m.customer_id, points, "bad", "r-1")  # type: ignore[arg-type]
    assert refused.value.code == "invalid_points"


def test_an_operator_adjusts_with_a_reason_but_not_below_zero(db: Session, workspace: WorkspaceContext,
                                                              programme: None) -> None:
    m = member(db, workspace)
    adjust_points(db, workspace, m.customer_id, 80, "compensation for late delivery", "adj-1", actor="user:1")
    adjust_points(db, workspace, m.customer_id, -30, "duplicate compensation", "adj-2", actor="user:1")
    db.commit()
    with pytest.raises(SiyuError) as refused:
        adjust_points(db, workspace, m.customer_id, -51, "too much", "adj-3", actor="user:1")
    db.rollback()
    assert refused.value.code == "insufficient_points"
    entries = db.scalars(select(PointsEntry).order_by(PointsEntry.id)).all()
    assert [(e.kind, e.points, e.reason, e.actor) for e in entries] == [
        ("adjust", 80, "compensation for late delivery", "user:1"), ("adjust", -30, "duplicate compensation", "user:1")]
    assert_ledger_consistent(db, m.id)


def test_deduction_follows_the_value_rule_and_the_cap(db: Session, workspace: WorkspaceContext) -> None:
    from tests.loyalty.conftest import setup_programme

    setup_programme(db, workspace, deduction_points_per_yuan=100, max_deduction_percent=20)
    m = member(db, workspace)
    award_points(db, workspace, m.customer_id, 5000, "a", "welcome")
    with pytest.raises(SiyuError) as capped:
        deduct_points(db, workspace, m.customer_id, "O-1", 10_000, 2001)
    assert capped.value.code == "deduction_too_large"
    result = deduct_points(db, workspace, m.customer_id, "O-1", 10_000, 2000)
    again = deduct_points(db, workspace, m.customer_id, "O-1", 10_000, 2000)
    db.commit()
    assert (result.deduction_fen, again.deduction_fen, again.entry.id) == (2000, 2000, result.entry.id)
    assert fresh(db, m).points_balance == 3000


def test_points_buy_a_coupon_once_per_key(db: Session, workspace: WorkspaceContext, programme: None) -> None:
    m = member(db, workspace)
    template = create_template(db, workspace, TemplateIn(name="¥10 券", kind="amount_off", amount_off_fen=1000,
                                                         valid_days=30, points_cost=500), actor="test")
    award_points(db, workspace, m.customer_id, 1200, "a", "welcome")
    first = redeem_points_for_coupon(db, workspace, m.customer_id, template.id, "shop-1")
    again = redeem_points_for_coupon(db, workspace, m.customer_id, template.id, "shop-1")
    db.commit()
    assert first.coupon_code == again.coupon_code is not None
    assert fresh(db, m).points_balance == 700
    assert db.scalar(select(func.count()).select_from(Coupon)) == 1
