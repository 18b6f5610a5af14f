"""Recovery after a crash: messages a dead worker left `sending` are looked up with the provider,
never re-sent blindly (see siyu.messaging.dispatch and ADR 0004)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.db.session import transaction
from siyu.kit import clock
from siyu.messaging.channels import adapter_class
from siyu.messaging.channels.base import ChannelContext
from siyu.messaging.dispatch import DispatchStats
from siyu.messaging.events import record_events
from siyu.messaging.models import OutboxMessage
from siyu.messaging.settings import ChannelSettings, load_channels

_outbox = table_of(OutboxMessage)
RECOVERY_LEASE = timedelta(minutes=10)


def recover_expired(engine: Engine, *, http_transport: httpx.BaseTransport | None = None) -> DispatchStats:
    """Rows left `sending` by a worker that died: ask the provider, never re-send blindly.

    The rows are first taken over with a fresh lease and attempt id (so one recoverer looks each up),
    the providers are asked outside any transaction, and the answers are written fenced by that id.
    """
    stats = DispatchStats()
    recovery_id = uuid.uuid4().hex
    with transaction(engine) as session:
        now = clock.now()
        expired = (select(OutboxMessage.id).where(OutboxMessage.state == "sending", OutboxMessage.locked_until < now)
                   .order_by(OutboxMessage.locked_until).limit(5000))
        if session.get_bind().dialect.name == "postgresql":
            expired = expired.with_for_update(skip_locked=True)
        ids = list(session.scalars(expired))
        if not ids:
            return stats
        session.execute(update(_outbox).where(_outbox.c.id.in_(ids))
                        .values(attempt_id=recovery_id, locked_until=now + RECOVERY_LEASE))
        rows: list[Any] = list(session.execute(select(
            OutboxMessage.id, OutboxMessage.workspace_id, OutboxMessage.channel, OutboxMessage.idempotency_key)
            .where(OutboxMessage.id.in_(ids))))
        channels = {ws: load_channels(session, ws) for ws in {r.workspace_id for r in rows}}
    groups: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.workspace_id, row.channel)].append(row)
    answers: dict[int, str] = {}
    for (workspace_id, channel), items in groups.items():
        answers.update(_ask_provider(engine, workspace_id, channels[workspace_id].get(channel), channel, items,
                                     http_transport))
    with transaction(engine) as session:
        _write_recovery(session, rows, answers, recovery_id, stats)
    return stats


def _ask_provider(engine: Engine, workspace_id: int, settings: ChannelSettings | None, channel: str, rows: list[Any],
                  http_transport: httpx.BaseTransport | None) -> dict[int, str]:
    if settings is None:
        return {row.id: "unknown" for row in rows}
    adapter = adapter_class(channel)(ChannelContext(engine, workspace_id, settings.config, http_transport))
    try:
        if not adapter.limits.can_lookup:
            return {row.id: "unknown" for row in rows}
        return {row.id: adapter.lookup(row.idempotency_key) for row in rows}
    finally:
        adapter.close()


def _write_recovery(session: Session, rows: list[Any], answers: dict[int, str], recovery_id: str,
                    stats: DispatchStats) -> None:
    now = clock.now()
    events: dict[int, list[tuple[int, str, str | None, dict[str, Any]]]] = defaultdict(list)
    for row in rows:
        answer = answers.get(row.id, "unknown")
        if answer == "received":
            values: dict[str, Any] = {"state": "sent", "sent_at": now, "reason": "recovered_after_crash"}
            stats.recovered += 1
            events[row.workspace_id].append((row.id, "recovered", "provider_received", {}))
        elif answer == "not_received":
            values = {"state": "queued", "due_at": now, "reason": "requeued_after_crash"}
            stats.requeued += 1
            events[row.workspace_id].append((row.id, "requeued", "provider_not_received", {}))
        else:
            values = {"state": "unknown", "reason": "interrupted_while_sending"}
            stats.unknown += 1
            events[row.workspace_id].append((row.id, "unknown", "interrupted_while_sending", {}))
        session.execute(update(_outbox).where(_outbox.c.id == row.id, _outbox.c.state == "sending",
                                              _outbox.c.attempt_id == recovery_id)
                        .values(locked_until=None, attempt_id=None, **values))
    for workspace_id, ws_events in events.items():
        record_events(session, workspace_id, ws_events)
