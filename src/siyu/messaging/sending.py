"""The send API of every domain: one message to one customer, through the outbox and the policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.kit import clock
from siyu.kit.clock import ensure_utc
from siyu.kit.errors import ValidationFailed
from siyu.messaging import usage
from siyu.messaging.models import OutboxMessage
from siyu.messaging.outbox import (
    Draft,
    Sender,
    channel_settings,
    check_key,
    check_same_request,
    existing_message,
    write_messages,
)
from siyu.messaging.policy import ContactPolicy
from siyu.messaging.template_service import prepare
from siyu.workspaces.service import WorkspaceContext


def check_purpose(purpose: str) -> str:
    if purpose not in ("marketing", "service"):
        raise ValidationFailed("purpose must be marketing or service", field="purpose")
    return purpose


def enqueue_message(session: Session, ctx: WorkspaceContext, *, customer_id: int, channel: str,
                    idempotency_key: str, template_id: int | None = None, content: dict[str, Any] | None = None,
                    purpose: str = "marketing", context: dict[str, Any] | None = None, droppable: bool = False,
                    due_at: datetime | None = None, staff_id: str | None = None, source: str = "api") -> OutboxMessage:
    """Write one message to the outbox, decided by the contact policy (see `submit_message`)."""
    message, _ = submit_message(session, ctx, customer_id=customer_id, channel=channel,
                                idempotency_key=idempotency_key, template_id=template_id, content=content,
                                purpose=purpose, context=context, droppable=droppable, due_at=due_at,
                                staff_id=staff_id, source=source)
    return message


def submit_message(session: Session, ctx: WorkspaceContext, *, customer_id: int, channel: str,
                   idempotency_key: str, template_id: int | None = None, content: dict[str, Any] | None = None,
                   purpose: str = "marketing", context: dict[str, Any] | None = None, droppable: bool = False,
                   due_at: datetime | None = None, staff_id: str | None = None, source: str = "api"
                   ) -> tuple[OutboxMessage, bool]:
    """Write one message to the outbox, decided by the contact policy.

    The key names what caused the message (`journey:12:step:3:customer:88`, `coupon:issued:991`):
    a second call with the same key returns the first message and sends nothing. The message comes
    back queued, deferred (with the rule and the time it waits for) or suppressed (with the rule);
    a service message ignores marketing caps, quiet hours and fatigue, never a block.
    Returns the message and whether this call created it.
    """
    from siyu.customers.service import resolve_customer_id

    key = check_key(idempotency_key)
    check_purpose(purpose)
    survivor = resolve_customer_id(session, ctx.id, customer_id)
    existing = existing_message(session, ctx.id, key)
    if existing is not None:
        return check_same_request(existing, survivor, channel), False
    channel_settings(session, ctx.id, channel)
    context = context or {}
    template = prepare(session, ctx.id, channel, template_id=template_id, content=content, context=context)
    policy = ContactPolicy.load(session, ctx.id, ctx.timezone)
    sender = Sender(channel, purpose, source, context, droppable, staff_id)
    due = ensure_utc(due_at) if due_at is not None else clock.now()
    (written,) = write_messages(session, ctx, policy, sender, [Draft(survivor, key, due, template)])
    message = existing_message(session, ctx.id, key)
    assert message is not None
    if message.id != written.id:  # a concurrent request with the same key won: give our inventory back
        usage.refund(session, ctx.id, [usage.as_key(r) for r in written.decision.reservations])
        return check_same_request(message, survivor, channel), False
    return message, True
