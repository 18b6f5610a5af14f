"""Property test: whatever happens to a member — earnings, redemptions, refunds, releases, expiries,
replays — the balance is the sum of the ledger and the lots hold exactly the available points."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from siyu.db.session import transaction
from siyu.events.models import Event
from siyu.events.service import ingest_events
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import SiyuError
from siyu.loyalty.schemas import ProgrammeIn
from siyu.loyalty.service import (
    Consent,
    award_points,
    configure_programme,
    enrol_member,
    expire_points,
    process_events,
    redeem_points,
    release_pending_points,
)
from siyu.workspaces.service import context_of, create_workspace
from tests.conftest import NOW
from tests.factories import order, refund
from tests.loyalty.conftest import assert_ledger_consistent

operations = st.lists(st.one_of(
    st.tuples(st.just("award"), st.integers(1, 500)),
    st.tuples(st.just("redeem"), st.integers(1, 500)),
    st.tuples(st.just("order"), st.integers(100, 100_000), st.booleans()),
    st.tuples(st.just("refund"), st.integers(0, 5), st.integers(1, 100)),
    st.tuples(st.just("advance"), st.integers(1, 500)),
), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, allow_negative=st.booleans())
def test_the_balance_always_equals_the_sum_of_the_ledger(clean_engine: Engine, clock: FrozenClock,
                                                         ops: list[tuple[Any, ...]], allow_negative: bool) -> None:
    clock.set(NOW)
    with transaction(clean_engine) as session:
        ctx = context_of(create_workspace(session, f"p{uuid.uuid4().hex[:10]}", "property"))
        configure_programme(session, ctx, ProgrammeIn(allow_negative_balance=allow_negative), actor="test")
        ingest_events(session, ctx, [order("O-seed", unionid="u", at=NOW.isoformat(), total_fen=0,
                                           items=[{"sku": "x", "quantity": 1, "unit_price_fen": 0}])])
    with transaction(clean_engine) as session:
        customer_id = session.scalars(select(Event.customer_id).where(Event.workspace_id == ctx.id)).first()
        assert customer_id is not None
        member_id = enrol_member(session, ctx, customer_id, Consent("app", "v1"), actor="test").id
    orders: list[tuple[str, int]] = []
    for step, op in enumerate(ops):
        with transaction(clean_engine) as session:
            _apply(session, ctx, customer_id, step, op, orders, clock)
        with transaction(clean_engine) as session:
            assert_ledger_consistent(session, member_id)


def _apply(session: Any, ctx: Any, customer_id: int, step: int, op: tuple[Any, ...], orders: list[tuple[str, int]],
           clock: FrozenClock) -> None:
    kind = op[0]
    if kind == "award":
        award_points(session, ctx, customer_id, op[1], f"award-{step}", "award")
    elif kind == "redeem":
        try:
            with session.begin_nested():
                redeem_points(session, ctx, customer_id, op[1], "gift", f"redeem-{step}")
        except SiyuError as exc:
            assert exc.code == "insufficient_points"
    elif kind == "order":
        at = clock.now() - (timedelta(hours=1) if op[2] else timedelta(days=10))
        order_id = f"O-{step}"
        _ingest_and_process(session, ctx, [order(order_id, unionid="u", at=at.isoformat(),
                                                 items=[{"sku": "x", "quantity": 1, "unit_price_fen": op[1]}])])
        orders.append((order_id, op[1]))
    elif kind == "refund" and orders:
        order_id, total = orders[op[1] % len(orders)]
        amount = max(1, total * op[2] // 100)
        _ingest_and_process(session, ctx, [refund(order_id, amount, unionid="u", at=clock.now().isoformat(),
                                                  id=f"refund-{step}")])
    elif kind == "advance":
        clock.advance(timedelta(days=op[1]))
        release_pending_points(session)
        expire_points(session)


def _ingest_and_process(session: Any, ctx: Any, events: list[dict[str, Any]]) -> None:
    ingest_events(session, ctx, events)
    ids = list(session.scalars(select(Event.id).where(Event.workspace_id == ctx.id)))
    process_events(session, ctx, ids)
    process_events(session, ctx, ids)  # a replay changes nothing
