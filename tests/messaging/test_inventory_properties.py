"""Property: whatever sends, cancellations, opt-outs and dispatches happen, in any order and on any
days, each cap counter equals the units its live messages hold and never passes its limit."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.db.session import session_factory
from siyu.kit.clock import FrozenClock
from siyu.messaging.deliveries import cancel_message
from siyu.messaging.dispatch import dispatch_due
from siyu.messaging.models import ContactUsage, OutboxMessage
from siyu.messaging.preferences import set_preference
from siyu.messaging.sending import enqueue_message
from siyu.messaging.settings import update_policy
from siyu.workspaces.service import context_of, create_workspace
from tests.messaging.conftest import make_customer

LIMITS = {"day": 2, "week": 3}
_runs = itertools.count()
operation = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2), st.sampled_from(["marketing", "service"])),
    st.tuples(st.just("cancel"), st.integers(0, 30), st.just("")),
    st.tuples(st.just("opt_out"), st.integers(0, 2), st.just("")),
    st.tuples(st.just("dispatch"), st.just(0), st.just("")),
    st.tuples(st.just("next_day"), st.just(0), st.just("")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=1, max_size=25))
def test_counters_match_the_messages_that_hold_them(engine: Engine, clock: FrozenClock,
                                                    operations: list[tuple[str, int, str]]) -> None:
    clock.set(datetime(2026, 11, 16, 4, 0, tzinfo=UTC))  # a Monday, noon in Shanghai
    db: Session = session_factory(engine)()
    try:
        ws = context_of(create_workspace(db, f"prop-{next(_runs)}", "Property"))
        update_policy(db, ws.id, {"quiet_hours": None, "fatigue": None, "frequency_caps": [
            {"period": period, "max": limit} for period, limit in LIMITS.items()]})
        db.commit()
        customers = [make_customer(db, ws) for _ in range(3)]
        for number, (kind, value, purpose) in enumerate(operations):
            if kind == "send":
                enqueue_message(db, ws, customer_id=customers[value], channel="sandbox", content={"text": "x"},
                                purpose=purpose, idempotency_key=f"op-{number}")
            elif kind == "cancel":
                waiting = db.scalars(select(OutboxMessage.id).where(
                    OutboxMessage.workspace_id == ws.id, OutboxMessage.state == "queued")).all()
                if waiting:
                    cancel_message(db, ws, waiting[value % len(waiting)], actor="test")
            elif kind == "opt_out":
                set_preference(db, ws.id, customers[value], channel="*", purpose="marketing", status="opted_out",
                               source="test", actor="test")
            elif kind == "next_day":
                clock.advance(timedelta(days=1))
            db.commit()
            if kind == "dispatch":
                dispatch_due(engine)
        _check(db, ws.id)
    finally:
        db.rollback()
        db.close()


def _check(db: Session, workspace_id: int) -> None:
    held: Counter[tuple[str, str, str]] = Counter()
    for reservations in db.scalars(select(OutboxMessage.reservations).where(
            OutboxMessage.workspace_id == workspace_id,
            OutboxMessage.state.in_(("queued", "deferred", "sending", "sent", "delivered")))):
        held.update(tuple(r) for r in reservations)
    counters = {(key, subject, period.isoformat()): used for key, subject, period, used in db.execute(
        select(ContactUsage.limit_key, ContactUsage.subject, ContactUsage.period_start, ContactUsage.used)
        .where(ContactUsage.workspace_id == workspace_id))}
    assert {k: v for k, v in counters.items() if v} == dict(held)
    assert all(used <= LIMITS[key.rsplit(":", 1)[1]] for (key, _, _), used in counters.items())
