"""The replay's fast paths agree with the rules they shortcut: the tier tracker only evaluates the
ladder once the next threshold is reached, the metric is picked by position, tier history is written
in one statement and a cause recorded before is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.loyalty import repository, rules
from siyu.loyalty.models import Activity, PointsEntry, PointsLot, Programme, Tier, TierChange
from siyu.loyalty.repository import MemberRow
from siyu.loyalty.service.programme import Ladder
from siyu.loyalty.service.tiers import TierTracker
from siyu.workspaces.service import WorkspaceContext
from tests.loyalty.conftest import member

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def a_ladder(thresholds: list[int]) -> Ladder:
    return Ladder([Tier(id=10 + rank, rank=rank, code=f"t{rank}", threshold=threshold, validity_months=12)
                   for rank, threshold in enumerate(thresholds)])


def a_member(tier_id: int) -> MemberRow:
    return MemberRow(1, 7, "M1", "active", tier_id, AT - timedelta(days=30), 0, 0, 0)


ladders = st.lists(st.integers(1, 50_000), min_size=0, max_size=4, unique=True).map(lambda t: [0, *sorted(t)])
activity = st.lists(st.tuples(st.integers(0, 40_000), st.integers(0, 1), st.integers(0, 4_000)), max_size=30)


@given(thresholds=ladders, start_rank=st.integers(0, 4), start_value=st.integers(0, 60_000),
       metric=st.sampled_from(rules.METRICS), amounts=activity)
def test_the_tracker_upgrades_exactly_when_the_ladder_says(thresholds: list[int], start_rank: int,
                                                           start_value: int, metric: str,
                                                           amounts: list[tuple[int, int, int]]) -> None:
    ladder = a_ladder(thresholds)
    start = ladder.tiers[min(start_rank, len(thresholds) - 1)]
    tracker = TierTracker(a_member(start.id), ladder, Programme(tier_metric=metric, tier_window="lifetime"),
                          start_value, None, SHANGHAI)
    value, rank, upgrades = start_value, start.rank, []
    for n, (spend, orders, growth) in enumerate(amounts):
        tracker.add(spend, orders, growth, AT + timedelta(minutes=n), f"order:{n}")
        value += {"spend_fen": spend, "orders": orders, "growth": growth}[metric]
        qualifying = rules.qualifying_rank(thresholds, value)
        if qualifying > rank:  # upgrades at once; never a downgrade inside a batch
            rank = qualifying
            upgrades.append((f"up:1:order:{n}", ladder.tiers[rank].code, value))
        assert tracker.tier.rank == rank
    assert [(c.cause_key, c.to_tier.code, c.metric_value) for c in tracker.changes] == upgrades
    assert all(c.direction == "up" for c in tracker.changes)


@given(spend=st.integers(0, 10**12), orders=st.integers(0, 10**6), growth=st.integers(0, 10**9))
def test_the_metric_is_the_one_the_programme_names(spend: int, orders: int, growth: int) -> None:
    assert [rules.metric_value(m, spend, orders, growth) for m in rules.METRICS] == [spend, orders, growth]


def test_tier_history_records_a_cause_once(db: Session, workspace: WorkspaceContext, programme: None) -> None:
    m = member(db, workspace)
    tiers = repository.tiers(db, workspace.id)
    rows = [{"workspace_id": workspace.id, "member_id": m.id, "from_tier_id": tiers[0].id if n else None,
             "to_tier_id": tiers[n].id, "direction": "up" if n else "enrolled", "reason": f"reason {n}",
             "metric_value": n * 100, "cause_key": f"test:{n}", "valid_until": AT if n else None, "changed_at": AT}
            for n in range(3)]
    before = db.scalar(select(func.count()).select_from(TierChange))

    assert repository.insert_tier_changes(db, rows[:2]) == {"test:0", "test:1"}
    assert repository.insert_tier_changes(db, rows) == {"test:2"}
    assert repository.insert_tier_changes(db, rows) == set()

    assert db.scalar(select(func.count()).select_from(TierChange)) == before + 3
    stored = db.scalars(select(TierChange).where(TierChange.cause_key == "test:1")).one()
    assert (stored.direction, stored.reason, stored.metric_value, stored.valid_until, stored.changed_at) == (
        "up", "reason 1", 100, AT, AT)
    db.rollback()


def test_activity_and_ledger_rows_are_stored_as_given(db: Session, workspace: WorkspaceContext,
                                                      programme: None) -> None:
    """The batch writers (binary COPY on PostgreSQL) keep every value: nulls, times, flags, text."""
    m = member(db, workspace)
    when = datetime(2026, 2, 28, 16, 30, 5, 123456, tzinfo=UTC)
    repository.insert_activities(db, [{
        "workspace_id": workspace.id, "member_id": m.id, "kind": "check_in", "cause_key": "check_in:ü-1",
        "order_id": None, "occurred_at": when, "local_day": 20260301, "spend_fen": 0, "orders": 0, "growth": 7,
        "capped": True, "created_at": AT}])
    ids = repository.insert_entries(db, [{
        "workspace_id": workspace.id, "member_id": m.id, "kind": "earn", "points": 12, "pending": 0, "debt": 3,
        "cause_key": "order:订单\t1", "reason": "reason with\nnewline and \\ backslash", "order_id": "订单\t1",
        "amount_fen": 1500, "lot_id": None, "actor": None, "occurred_at": when, "created_at": AT}])
    repository.insert_lots(db, [{"workspace_id": workspace.id, "member_id": m.id, "entry_id": ids["order:订单\t1"],
                                 "order_id": "订单\t1", "points": 12, "remaining": 9, "status": "available",
                                 "available_at": when, "expires_at": None, "created_at": AT}])

    activity = db.scalars(select(Activity).where(Activity.cause_key == "check_in:ü-1")).one()
    assert (activity.order_id, activity.occurred_at, activity.local_day, activity.growth, activity.capped) == (
        None, when, 20260301, 7, True)
    entry = db.get(PointsEntry, ids["order:订单\t1"])
    assert entry is not None
    assert (entry.points, entry.debt, entry.reason, entry.order_id, entry.amount_fen, entry.lot_id, entry.actor,
            entry.occurred_at) == (12, 3, "reason with\nnewline and \\ backslash", "订单\t1", 1500, None, None, when)
    lot = db.scalars(select(PointsLot).where(PointsLot.entry_id == entry.id)).one()
    assert (lot.points, lot.remaining, lot.status, lot.available_at, lot.expires_at) == (12, 9, "available", when,
                                                                                        None)
    db.rollback()
