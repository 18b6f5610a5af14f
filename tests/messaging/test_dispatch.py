"""Dispatch: at most once per key across crashes, retries with backoff, the lease guard, and several
workers on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from siyu.db.session import session_factory
from siyu.kit.clock import FrozenClock
from siyu.messaging import dispatch as dispatch_module
from siyu.messaging.deliveries import retry_message
from siyu.messaging.dispatch import dispatch_due
from siyu.messaging.models import MessageAttempt, MessageEvent, OutboxMessage, SandboxMessage
from siyu.messaging.sending import enqueue_message
from siyu.messaging.settings import update_policy
from siyu.workspaces.service import WorkspaceContext, context_of, create_workspace
from tests.messaging.conftest import (
    LoopbackServer,
    configure_webhook,
    make_customer,
    reload,
    sandbox_count,
    states,
)

LEASE = timedelta(seconds=120)


class Crash(Exception):
    """The worker process dies here."""


def _crash(*args: object, **kwargs: object) -> None:
    raise Crash


def queue(db: Session, ws: WorkspaceContext, channel: str = "sandbox", n: int = 1) -> list[OutboxMessage]:
    customers = [make_customer(db, ws) for _ in range(n)]
    messages = [enqueue_message(db, ws, customer_id=c, channel=channel, content={"text": "到货提醒"},
                                purpose="service", idempotency_key=f"restock:{c}") for c in customers]
    db.commit()
    return messages


def test_a_crash_after_the_provider_got_the_message_never_sends_it_again(
        db: Session, workspace: WorkspaceContext, engine: Engine, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (message,) = queue(db, workspace)
    monkeypatch.setattr(dispatch_module, "_record", _crash)
    with pytest.raises(Crash):
        dispatch_due(engine)
    monkeypatch.undo()
    assert states(db, workspace) == {"sending": 1} and sandbox_count(db, workspace) == 1

    assert dispatch_due(engine).claimed == 0  # the lease still holds: nobody touches the row
    clock.advance(LEASE + timedelta(seconds=1))
    stats = dispatch_due(engine)

    assert (stats.recovered, stats.requeued, stats.sent) == (1, 0, 0)
    reload(db, message)
    assert (message.state, message.reason) == ("sent", "recovered_after_crash")
    assert sandbox_count(db, workspace) == 1
    events = db.scalars(select(MessageEvent.type).where(MessageEvent.outbox_id == message.id)).all()
    assert events == ["recovered"]


def test_a_crash_before_the_provider_call_sends_the_message_once_after_recovery(
        db: Session, workspace: WorkspaceContext, engine: Engine, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (message,) = queue(db, workspace)
    monkeypatch.setattr(dispatch_module, "_send_group", _crash)
    with pytest.raises(Crash):
        dispatch_due(engine)
    monkeypatch.undo()
    assert sandbox_count(db, workspace) == 0

    clock.advance(LEASE + timedelta(seconds=1))
    stats = dispatch_due(engine)

    assert (stats.requeued, stats.sent) == (1, 1)
    reload(db, message)
    assert message.state == "delivered"
    assert sandbox_count(db, workspace) == 1


def test_without_a_lookup_a_crashed_send_ends_unknown_and_only_an_operator_resends(
        db: Session, workspace: WorkspaceContext, engine: Engine, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer() as server:
        configure_webhook(db, workspace, server.url)
        (message,) = queue(db, workspace, channel="webhook")
        monkeypatch.setattr(dispatch_module, "_record", _crash)
        with pytest.raises(Crash):
            dispatch_due(engine)
        monkeypatch.undo()
        clock.advance(LEASE + timedelta(seconds=1))

        stats = dispatch_due(engine)
        assert (stats.unknown, stats.sent, len(server.seen)) == (1, 0, 1)
        reload(db, message)
        assert (message.state, message.reason) == ("unknown", "interrupted_while_sending")
        assert dispatch_due(engine).claimed == 0 and len(server.seen) == 1

        retry_message(db, workspace, message.id, actor="user:1")
        db.commit()
        assert dispatch_due(engine).sent == 1
        assert len(server.seen) == 2
        assert server.seen[0].headers["x-siyu-idempotency-key"] == server.seen[1].headers["x-siyu-idempotency-key"]


def test_a_worker_stops_calling_the_provider_when_its_lease_runs_short(
        db: Session, workspace: WorkspaceContext, engine: Engine, clock: FrozenClock) -> None:
    update_policy(db, workspace.id, {"send_lease_seconds": 4})
    db.commit()
    configure_webhook(db, workspace, "http://127.0.0.1:9/hook")
    queue(db, workspace, channel="webhook", n=3)
    calls = []

    def slow_provider(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        clock.advance(timedelta(seconds=2))
        return httpx.Response(200)

    stats = dispatch_due(engine, http_transport=httpx.MockTransport(slow_provider), budget_seconds=0)  # one batch

    assert (stats.sent, len(calls)) == (2, 2)
    assert states(db, workspace) == {"sent": 2, "queued": 1}
    held_back = db.scalars(select(OutboxMessage).where(OutboxMessage.state == "queued")).one()
    db.commit()
    assert (held_back.reason, held_back.attempts) == ("lease_ran_short", 0)


def test_a_transient_failure_goes_back_to_the_queue_with_backoff_until_the_last_attempt(
        db: Session, workspace: WorkspaceContext, engine: Engine, clock: FrozenClock) -> None:
    update_policy(db, workspace.id, {"max_attempts": 2})
    db.commit()
    configure_webhook(db, workspace, "http://127.0.0.1:9/hook")
    (message,) = queue(db, workspace, channel="webhook")
    busy = httpx.MockTransport(lambda request: httpx.Response(503, text="busy"))

    first = dispatch_due(engine, http_transport=busy)
    reload(db, message)
    assert (first.retried, message.state, message.reason, message.attempts) == (1, "queued", "http_503", 1)
    assert clock.now() + timedelta(seconds=5) <= message.due_at <= clock.now() + timedelta(seconds=10)
    assert dispatch_due(engine, http_transport=busy).claimed == 0  # backing off

    clock.set(message.due_at)
    second = dispatch_due(engine, http_transport=busy)
    reload(db, message)
    assert (second.failed, message.state, message.attempts) == (1, "failed", 2)
    attempts = db.scalars(select(MessageAttempt.outcome).where(MessageAttempt.outbox_id == message.id)).all()
    assert attempts == ["transient"] * 4  # two calls per attempt (retry_tries=2), two attempts


@pytest.mark.pg
def test_four_workers_on_postgresql_send_every_message_exactly_once(pg_engine: Engine) -> None:
    from siyu.messaging.broadcasts import create_broadcast, fill_broadcast, start_broadcast
    from siyu.messaging.settings import update_policy as set_policy
    from siyu.messaging.template_service import create_template

    sessions = session_factory(pg_engine)
    slug = f"pg-{uuid.uuid4().hex[:8]}"
    with sessions() as db:
        ctx = context_of(create_workspace(db, slug, "PG workers"))
        set_policy(db, ctx.id, {"quiet_hours": None, "frequency_caps": [], "fatigue": None})
        db.commit()
        from siyu.events.service import ingest_events

        ingest_events(db, ctx, [{"id": f"{slug}-{i}", "type": "identify", "occurred_at": "2026-11-01T10:00:00+08:00",
                                 "identities": {"wechat_unionid": f"{slug}-u{i}"}} for i in range(1000)])
        template = create_template(db, ctx, name="t", channel="sandbox", kind="text", body="hi {{ customer.id }}",
                                   actor="test")
        broadcast = create_broadcast(db, ctx, name="b", channel="sandbox", audience={"kind": "all"},
                                     variants=[{"template_id": template.id}], actor="test")
        start_broadcast(db, ctx, broadcast.id, actor="test")
        db.commit()
    fill_broadcast(pg_engine, broadcast.id)
    stats = []
    threads = [threading.Thread(target=lambda: stats.append(dispatch_due(pg_engine, batch=50))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        with sessions() as db:
            keys = db.execute(select(SandboxMessage.idempotency_key, func.count())
                              .where(SandboxMessage.workspace_id == ctx.id)
                              .group_by(SandboxMessage.idempotency_key)).all()
            assert len(keys) == 1000 and max(count for _, count in keys) == 1
            assert sum(s.sent for s in stats) == 1000
            assert sum(1 for s in stats if s.sent) > 1  # the work was shared
    finally:
        with sessions() as db:
            for table in (SandboxMessage, MessageAttempt, OutboxMessage):
                db.execute(delete(table).where(table.workspace_id == ctx.id))
            db.commit()


def test_an_adapter_that_raises_leaves_its_messages_unknown_and_dispatch_goes_on(
        db: Session, workspace: WorkspaceContext, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from siyu.messaging.channels.sandbox import SandboxAdapter

    messages = queue(db, workspace, n=2)

    def broken(self: SandboxAdapter, batch: object) -> list[object]:
        raise RuntimeError("provider SDK bug")

    monkeypatch.setattr(SandboxAdapter, "send_many", broken)
    stats = dispatch_due(engine)

    assert (stats.claimed, stats.unknown) == (2, 2)
    for message in messages:
        reload(db, message)
        assert (message.state, message.reason) == ("unknown", "adapter_error")
        assert "provider SDK bug" in (message.detail or "")


def test_a_dedicated_dispatch_worker_sends_until_told_to_stop(db: Session, workspace: WorkspaceContext,
                                                              engine: Engine) -> None:
    from siyu.messaging.tasks import run_dispatch_worker

    (message,) = queue(db, workspace)
    stopping = threading.Event()
    thread = threading.Thread(target=run_dispatch_worker, args=(engine, stopping, 0.01))
    thread.start()
    try:
        for _ in range(500):
            if reload(db, message).state == "delivered":
                break
            stopping.wait(0.02)
    finally:
        stopping.set()
        thread.join()
    assert message.state == "delivered" and not thread.is_alive()
    assert sandbox_count(db, workspace) == 1
