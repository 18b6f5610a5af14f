"""The append-only history of a message after it was written (see `MessageEvent`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit import clock
from siyu.messaging.models import MessageAttempt, MessageEvent
from siyu.messaging.sql import insert_many

EventRow = tuple[int, str, str | None, dict[str, Any]]  # outbox_id, type, reason, details
COLUMNS = (("workspace_id", "bigint"), ("outbox_id", "bigint"), ("type", "text"), ("reason", "text"),
           ("details", "jsonb"), ("at", "timestamptz"))


def record_events(session: Session, workspace_id: int, events: Sequence[EventRow]) -> None:
    if not events:
        return
    at = clock.now()
    insert_many(session.connection(), "message_events", COLUMNS,
                [(workspace_id, outbox_id, kind, reason, details, at) for outbox_id, kind, reason, details in events])


def events_of(session: Session, workspace_id: int, outbox_id: int) -> list[MessageEvent]:
    return list(session.scalars(select(MessageEvent).where(MessageEvent.workspace_id == workspace_id,
                                                           MessageEvent.outbox_id == outbox_id)
                                .order_by(MessageEvent.id)))


def attempts_of(session: Session, workspace_id: int, outbox_id: int) -> list[MessageAttempt]:
    return list(session.scalars(select(MessageAttempt).where(MessageAttempt.workspace_id == workspace_id,
                                                             MessageAttempt.outbox_id == outbox_id)
                                .order_by(MessageAttempt.id)))
