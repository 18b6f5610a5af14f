"""Several workers on PostgreSQL take disjoint runs (FOR UPDATE SKIP LOCKED): every step once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, func, select, text

from siyu.db.session import session_factory, transaction
from siyu.events.service import ingest_events
from siyu.journeys import service
from siyu.journeys.engine import run_due_steps
from siyu.journeys.models import JourneyStepLog
from siyu.workspaces.service import context_of, create_workspace
from tests.journeys.conftest import definition


@pytest.mark.pg
def test_four_workers_execute_every_step_exactly_once(pg_engine: Engine) -> None:
    with transaction(pg_engine) as session:
        ctx = context_of(create_workspace(session, "pgjourneys", "PG"))
        ingest_events(session, ctx, [{"id": f"c{i}", "type": "identify", "occurred_at": "2026-11-01T10:00:00+08:00",
                                      "identities": [{"type": "wechat_unionid", "value": f"pg-{i}"}]}
                                     for i in range(400)])
        draft = service.create_journey(session, ctx, name="并发", actor="t", definition=definition(
            {"id": "a", "type": "update_attribute", "key": "seen", "value": 1, "next": "b"},
            {"id": "b", "type": "split", "branches": [{"key": "x", "percent": 50, "next": None},
                                                      {"key": "y", "percent": 50, "next": None}]}))
        service.publish_journey(session, ctx, draft.journey.id, actor="t")
        ids = [int(i) for i in session.scalars(text("SELECT id FROM customers WHERE workspace_id = :w"), {"w": ctx.id})]
        service.enrol_customers(session, ctx, draft.journey.id, ids, key="all")
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(run_due_steps(pg_engine, batch=20))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with session_factory(pg_engine)() as session:
        logged = session.scalar(select(func.count()).select_from(JourneyStepLog)
                                .where(JourneyStepLog.journey_id == draft.journey.id))
        distinct = session.scalar(select(func.count(func.distinct(JourneyStepLog.run_id)))
                                  .where(JourneyStepLog.journey_id == draft.journey.id))
    assert sum(counts) == logged == 800
    assert distinct == 400
