"""Reading the outbox (a customer's message history and why each message went or did not), and an
operator's hand on one message: cancel it while it waits, retry it after a failure or a crash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.db.base import table_of
from siyu.kit import clock
from siyu.kit.pagination import decode_cursor, encode_cursor
from siyu.messaging import usage
from siyu.messaging.errors import MessageNotFound, MessageNotRetryable
from siyu.messaging.events import attempts_of, events_of, record_events
from siyu.messaging.models import ContactUsage, MessageAttempt, MessageEvent, OutboxMessage, SandboxMessage
from siyu.messaging.policy import Candidate, ContactPolicy, in_holdout
from siyu.messaging.preferences import preferences_of, settle_one_time_consents
from siyu.workspaces.service import WorkspaceContext

_outbox = table_of(OutboxMessage)
MAX_PAGE = 200


@dataclass
class MessagePage:
    items: list[OutboxMessage]
    next_cursor: str | None


def list_messages(session: Session, workspace_id: int, *, customer_id: int | None = None,
                  broadcast_id: int | None = None, state: str | None = None, channel: str | None = None,
                  reason: str | None = None, cursor: str | None = None, limit: int = 50) -> MessagePage:
    """Newest first, keyset-paginated by id."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(OutboxMessage).where(OutboxMessage.workspace_id == workspace_id)
    if customer_id is not None:
        from siyu.customers.service import resolve_customer_id

        stmt = stmt.where(OutboxMessage.customer_id == resolve_customer_id(session, workspace_id, customer_id))
    if broadcast_id is not None:
        stmt = stmt.where(OutboxMessage.broadcast_id == broadcast_id)
    if state:
        stmt = stmt.where(OutboxMessage.state == state)
    if channel:
        stmt = stmt.where(OutboxMessage.channel == channel)
    if reason:
        stmt = stmt.where(OutboxMessage.reason == reason)
    if cursor:
        (last_id,) = decode_cursor(cursor)
        stmt = stmt.where(OutboxMessage.id < int(last_id))
    rows = list(session.scalars(stmt.order_by(OutboxMessage.id.desc()).limit(limit + 1)))
    return MessagePage(rows[:limit], encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None)


def get_message(session: Session, workspace_id: int, message_id: int) -> OutboxMessage:
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.workspace_id == workspace_id,
                                                         OutboxMessage.id == message_id))
    if message is None:
        raise MessageNotFound(f"no message {message_id}", field="message_id")
    return message


@dataclass
class MessageStory:
    message: OutboxMessage
    attempts: list[MessageAttempt]
    events: list[MessageEvent]


def message_story(session: Session, workspace_id: int, message_id: int) -> MessageStory:
    """A message with every attempt and everything that happened to it."""
    message = get_message(session, workspace_id, message_id)
    return MessageStory(message, attempts_of(session, workspace_id, message.id), events_of(session, workspace_id,
                                                                                           message.id))


def cancel_message(session: Session, ctx: WorkspaceContext, message_id: int, *, actor: str) -> OutboxMessage:
    message = get_message(session, ctx.id, message_id)
    if message.state not in ("queued", "deferred", "paused"):
        raise MessageNotRetryable(f"message {message_id} is {message.state}; only a waiting message can be cancelled",
                                  field="state")
    usage.refund(session, ctx.id, [usage.as_key(r) for r in message.reservations or []])
    settle_one_time_consents(session, [message.id], used=False)
    message.state, message.reason, message.reservations = "cancelled", "cancelled_by_operator", []
    record_events(session, ctx.id, [(message.id, "cancelled", None, {"actor": actor})])
    record_audit(session, ctx.id, actor, "message.cancelled", "message", message.id, {})
    session.flush()
    return message


def retry_message(session: Session, ctx: WorkspaceContext, message_id: int, *, actor: str) -> OutboxMessage:
    """Send a failed message again, or one whose fate a crash left unknown — an operator's decision,
    because an unknown message may already have reached the customer. The policy decides afresh."""
    message = get_message(session, ctx.id, message_id)
    if message.state not in ("failed", "unknown"):
        raise MessageNotRetryable(f"message {message_id} is {message.state}; only failed or unknown messages are "
                                  "retried", field="state")
    usage.refund(session, ctx.id, [usage.as_key(r) for r in message.reservations or []])
    policy = ContactPolicy.load(session, ctx.id, ctx.timezone)
    candidate = Candidate(message.customer_id, message.channel, message.purpose, clock.now(), message.droppable,
                          message.staff_id, outbox_id=message.id)
    (decision,) = policy.decide(session, [candidate], "reserve")
    message.state = {"send": "queued", "defer": "deferred", "suppress": "suppressed"}[decision.outcome]
    message.reason, message.due_at, message.reservations = decision.rule, decision.due_at, decision.reservations
    message.attempts, message.attempt_id, message.locked_until = 0, None, None
    record_events(session, ctx.id, [(message.id, "retried", decision.rule, {"actor": actor})])
    record_audit(session, ctx.id, actor, "message.retried", "message", message.id, {"outcome": decision.outcome})
    session.flush()
    return message


@dataclass
class ContactStatus:
    """Everything that decides whether this customer gets a message now."""

    customer_id: int
    preferences: list[Any]
    in_holdout: bool
    usage: list[tuple[str, str, int]]  # limit_key, period_start, used
    ignored_in_a_row: int
    last_messages: list[OutboxMessage]


def contact_status(session: Session, ctx: WorkspaceContext, customer_id: int) -> ContactStatus:
    from siyu.customers.service import resolve_customer_id

    survivor = resolve_customer_id(session, ctx.id, customer_id)
    policy = ContactPolicy.load(session, ctx.id, ctx.timezone)
    since = (clock.now() - timedelta(days=31)).date()
    counters = session.execute(select(ContactUsage.limit_key, ContactUsage.period_start, ContactUsage.used)
                               .where(ContactUsage.workspace_id == ctx.id, ContactUsage.subject == str(survivor),
                                      ContactUsage.period_start >= since)
                               .order_by(ContactUsage.period_start.desc(), ContactUsage.limit_key)).all()
    recent = list_messages(session, ctx.id, customer_id=survivor, limit=20).items
    ignored = 0
    for message in recent:
        if message.purpose != "marketing" or message.state not in ("sent", "delivered"):
            continue
        if message.engaged_at is not None:
            break
        ignored += 1
    return ContactStatus(survivor, preferences_of(session, ctx.id, survivor),
                         in_holdout(policy.settings, ctx.id, survivor),
                         [(k, p.isoformat(), u) for k, p, u in counters], ignored, recent)


def sandbox_inbox(session: Session, workspace_id: int, *, customer_id: int | None = None,
                  limit: int = 50) -> list[SandboxMessage]:
    stmt = select(SandboxMessage).where(SandboxMessage.workspace_id == workspace_id)
    if customer_id is not None:
        stmt = stmt.where(SandboxMessage.customer_id == customer_id)
    return list(session.scalars(stmt.order_by(SandboxMessage.id.desc()).limit(max(1, min(limit, 500)))))


def state_counts(session: Session, workspace_id: int) -> dict[str, int]:
    rows = session.execute(select(_outbox.c.state, func.count()).where(_outbox.c.workspace_id == workspace_id)
                           .group_by(_outbox.c.state))
    return {state: int(count) for state, count in rows}

