"""Earning from events as production does it: ingest, then the worker runs the subscribed jobs."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.db.session import transaction
from siyu.events.models import Event
from siyu.kit.clock import FrozenClock
from siyu.loyalty.models import Activity, Member, PointsEntry, PointsLot, TierChange
from siyu.loyalty.service import deduct_points, process_events, redeem_points, release_pending_points
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event, order, refund
from tests.loyalty.conftest import (
    assert_ledger_consistent,
    fresh,
    ingest,
    member,
    run_jobs,
    setup_programme,
)

RECENT = "2026-11-19T10:00:00+08:00"  # inside the 7-day return window on 2026-11-20


def entries(db: Session, member_id: int) -> list[tuple[str, int, int, int]]:
    return [(e.kind, e.points, e.pending, e.debt) for e in db.scalars(
        select(PointsEntry).where(PointsEntry.member_id == member_id).order_by(PointsEntry.id))]


def test_order_points_are_pending_until_the_return_window_closes(db: Session, workspace: WorkspaceContext,
                                                                 programme: None, engine: Engine,
                                                                 clock: FrozenClock) -> None:
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at=RECENT))
    run_jobs(engine)
    assert (fresh(db, m).points_balance, fresh(db, m).points_pending) == (0, 298)
    clock.set(datetime(2026, 11, 26, 1, 59, tzinfo=UTC))  # 09:59 local: window closes at 10:00
    with transaction(engine) as session:
        assert release_pending_points(session) == 0
    clock.set(datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
    with transaction(engine) as session:
        assert release_pending_points(session) == 1
    assert (fresh(db, m).points_balance, fresh(db, m).points_pending) == (298, 0)
    assert entries(db, m.id) == [("earn", 0, 298, 0), ("release", 298, -298, 0)]
    assert_ledger_consistent(db, m.id)


def test_orders_past_the_return_window_earn_available_points_at_once(db: Session, workspace: WorkspaceContext,
                                                                    programme: None, engine: Engine) -> None:
    m = _member_who_earned_for_o1(db, workspace, engine)
    assert (fresh(db, m).points_balance, fresh(db, m).points_pending) == (298, 0)
    lot = db.scalars(select(PointsLot).where(PointsLot.member_id == m.id)).one()
    assert lot.expires_at == datetime(2027, 12, 31, 16, 0, tzinfo=UTC)  # end of next year, Shanghai time


def test_points_use_the_tier_held_before_the_order_and_the_order_may_upgrade(
        db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    m = member(db, workspace)
    big = [{"sku": "PRAM", "category": "母婴/推车", "quantity": 1, "unit_price_fen": 120_000}]
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00", items=big),
           order("O-2", at="2026-11-02T10:00:00+08:00", items=[{"sku": "X", "quantity": 1, "unit_price_fen": 10_000}]))
    run_jobs(engine)
    assert entries(db, m.id) == [("earn", 1200, 0, 0), ("earn", 150, 0, 0)]  # 银卡 1.5× from the second order
    change = db.scalars(select(TierChange).where(TierChange.direction == "up")).one()
    assert change.reason.startswith("order:O-1 brought spend_fen (lifetime) to 120000")
    current = fresh(db, m)  # a tier is never reached before the one held: enrolment was on the 20th
    assert current.tier_reached_at == datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    assert current.tier_valid_until == datetime(2027, 11, 20, 4, 0, tzinfo=UTC)
    timeline = db.scalars(select(Event).where(Event.type == "tier_changed", Event.customer_id == m.customer_id)
                          .order_by(Event.id)).all()
    assert [(e.properties["direction"], e.properties["to_tier"]) for e in timeline] == [("enrolled", "member"),
                                                                                         ("up", "silver")]


def test_member_day_multiplies_order_points(db: Session, workspace: WorkspaceContext, engine: Engine) -> None:
    from tests.loyalty.conftest import LADDER

    base = LADDER[0].model_copy(update={"member_day_multiplier_percent": 200})
    setup_programme(db, workspace, [base, *LADDER[1:]], member_day=8)
    m = member(db, workspace)
    ingest(db, workspace, order("O-8", at="2026-11-08T06:30:00+08:00"),  # the 8th in Shanghai, 7th in UTC
           order("O-7", at="2026-11-07T23:30:00+08:00"))
    run_jobs(engine)
    assert sorted(entries(db, m.id)) == [("earn", 298, 0, 0), ("earn", 596, 0, 0)]


def test_replaying_events_changes_nothing(db: Session, workspace: WorkspaceContext, programme: None,
                                          engine: Engine) -> None:
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00"), refund("O-1", 10_000),
           event("check_in", at="2026-11-02T10:00:00+08:00"))
    run_jobs(engine)
    ids = list(db.scalars(select(Event.id).where(Event.type != "tier_changed")))
    counts = [db.scalar(select(func.count()).select_from(t)) for t in (PointsEntry, PointsLot, Activity)]
    before = (fresh(db, m).points_balance, fresh(db, m).points_pending)
    for _ in range(2):
        with transaction(engine) as session:
            assert process_events(session, workspace, ids).events == 0
    assert [db.scalar(select(func.count()).select_from(t)) for t in (PointsEntry, PointsLot, Activity)] == counts
    assert (fresh(db, m).points_balance, fresh(db, m).points_pending) == before == (198, 0)
    assert_ledger_consistent(db, m.id)


def test_refund_inside_the_window_cancels_pending_points_without_touching_the_balance(
        db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00", id="old"), order("O-2", at=RECENT))
    run_jobs(engine)
    ingest(db, workspace, refund("O-2", 29_800, at="2026-11-20T10:00:00+08:00"))
    run_jobs(engine)
    assert (fresh(db, m).points_balance, fresh(db, m).points_pending) == (298, 0)
    assert entries(db, m.id)[-1] == ("reverse", 0, -298, 0)
    assert db.scalars(select(PointsLot.status).where(PointsLot.order_id == "O-2")).one() == "cancelled"
    assert_ledger_consistent(db, m.id)


def test_partial_refund_takes_back_its_share(db: Session, workspace: WorkspaceContext, programme: None,
                                             engine: Engine) -> None:
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00",
                                items=[{"sku": "A", "quantity": 3, "unit_price_fen": 10_000}]))
    run_jobs(engine)
    ingest(db, workspace, refund("O-1", 10_000))
    run_jobs(engine)
    ingest(db, workspace, refund("O-1", 5_000))
    run_jobs(engine)
    assert entries(db, m.id) == [("earn", 300, 0, 0), ("reverse", -100, 0, 0), ("reverse", -50, 0, 0)]
    spend = db.scalar(select(func.sum(Activity.spend_fen)).where(Activity.member_id == m.id))
    assert spend == 15_000
    assert_ledger_consistent(db, m.id)


def _member_who_earned_for_o1(db: Session, workspace: WorkspaceContext, engine: Engine) -> Member:
    """A member whose first order, O-1 (¥298), has earned its points."""
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00"))
    run_jobs(engine)
    return m

def test_a_refund_known_before_the_order_is_processed_reduces_what_it_earns(
        db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    m = member(db, workspace)
    ingest(db, workspace, refund("O-1", 10_000))  # the refund may even arrive before its order
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00"))
    run_jobs(engine)
    assert entries(db, m.id) == [("earn", 198, 0, 0)]
    assert_ledger_consistent(db, m.id)


def test_spent_points_reversed_by_a_refund_become_debt_repaid_from_future_earnings(
        db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    m = _member_who_earned_for_o1(db, workspace, engine)
    redeem_points(db, workspace, m.customer_id, 200, "gift", "gift-1")
    db.commit()
    ingest(db, workspace, refund("O-1", 29_800))
    run_jobs(engine)
    assert (fresh(db, m).points_balance, fresh(db, m).points_debt) == (0, 200)
    ingest(db, workspace, order("O-2", at="2026-11-02T10:00:00+08:00",
                                items=[{"sku": "A", "quantity": 1, "unit_price_fen": 50_000}]))
    run_jobs(engine)
    assert (fresh(db, m).points_balance, fresh(db, m).points_debt) == (300, 0)
    assert entries(db, m.id) == [("earn", 298, 0, 0), ("redeem", -200, 0, 0), ("reverse", -98, 0, 200),
                                 ("earn", 300, 0, -200)]
    assert_ledger_consistent(db, m.id)


def test_a_workspace_may_let_the_balance_go_negative_instead(db: Session, workspace: WorkspaceContext,
                                                             engine: Engine) -> None:
    setup_programme(db, workspace, allow_negative_balance=True)
    m = _member_who_earned_for_o1(db, workspace, engine)
    redeem_points(db, workspace, m.customer_id, 200, "gift", "gift-1")
    db.commit()
    ingest(db, workspace, refund("O-1", 29_800))
    run_jobs(engine)
    assert (fresh(db, m).points_balance, fresh(db, m).points_debt) == (-200, 0)
    assert_ledger_consistent(db, m.id)
    ingest(db, workspace, order("O-2", at="2026-11-02T10:00:00+08:00",
                                items=[{"sku": "A", "quantity": 1, "unit_price_fen": 50_000}]))
    run_jobs(engine)
    assert fresh(db, m).points_balance == 300
    assert_ledger_consistent(db, m.id)


def test_a_refund_gives_back_the_deducted_points_in_the_share_it_refunds(
        db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    m = _member_who_earned_for_o1(db, workspace, engine)
    deduct_points(db, workspace, m.customer_id, "O-2", 29_800, 200)  # 200 points paid ¥2 of order O-2
    db.commit()
    ingest(db, workspace, order("O-2", at="2026-11-02T10:00:00+08:00"))
    run_jobs(engine)
    assert fresh(db, m).points_balance == 298 - 200 + 298
    ingest(db, workspace, refund("O-2", 14_900, id="r-half"))
    run_jobs(engine)
    assert entries(db, m.id)[3:] == [("deduct_return", 100, 0, 0), ("reverse", -149, 0, 0)]
    ingest(db, workspace, refund("O-2", 14_900, id="r-rest"))
    run_jobs(engine)
    assert entries(db, m.id)[5:] == [("deduct_return", 100, 0, 0), ("reverse", -149, 0, 0)]
    assert fresh(db, m).points_balance == 298  # as if order O-2 had never been placed
    ids = list(db.scalars(select(Event.id).where(Event.type == "order_refunded")))
    with transaction(engine) as session:
        process_events(session, workspace, ids)
    assert len(entries(db, m.id)) == 7
    assert_ledger_consistent(db, m.id)


def test_a_refunded_deduction_first_settles_what_the_refund_takes_back(
        db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    m = _member_who_earned_for_o1(db, workspace, engine)
    deduct_points(db, workspace, m.customer_id, "O-1", 29_800, 298)  # every point spent on the order itself
    db.commit()
    ingest(db, workspace, refund("O-1", 29_800))
    run_jobs(engine)
    assert entries(db, m.id)[2:] == [("deduct_return", 298, 0, 0), ("reverse", -298, 0, 0)]
    assert (fresh(db, m).points_balance, fresh(db, m).points_debt) == (0, 0)
    assert_ledger_consistent(db, m.id)


def test_check_ins_are_capped_per_day_and_month(db: Session, workspace: WorkspaceContext, engine: Engine) -> None:
    setup_programme(db, workspace, check_in_points=10, check_in_daily_cap=1, check_in_monthly_cap=2,
                    growth_per_check_in=5)
    m = member(db, workspace)
    ingest(db, workspace, *[event("check_in", at=f"2026-11-{day:02d}T{hour:02d}:00:00+08:00")
                            for day, hour in [(1, 9), (1, 20), (2, 9), (3, 9)]])
    ingest(db, workspace, event("check_in", at="2026-10-31T09:00:00+08:00"))  # another month
    run_jobs(engine)
    rows = db.execute(select(Activity.local_day, Activity.capped, Activity.growth).where(Activity.member_id == m.id)
                      .order_by(Activity.occurred_at)).all()
    assert [tuple(r) for r in rows] == [(20261031, False, 5), (20261101, False, 5), (20261101, True, 0),
                                        (20261102, False, 5), (20261103, True, 0)]
    assert fresh(db, m).points_balance == 30


def test_only_active_members_earn(db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    from siyu.loyalty.service import leave_programme

    m = member(db, workspace)
    leave_programme(db, workspace, m.customer_id, actor="test")
    db.commit()
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00"),
           order("O-2", unionid="stranger", at="2026-11-01T10:00:00+08:00"))
    run_jobs(engine)
    assert db.scalar(select(func.count()).select_from(PointsEntry)) == 0
    assert db.scalar(select(func.count()).select_from(Activity)) == 0
