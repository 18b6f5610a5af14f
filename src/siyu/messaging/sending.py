"""The send API of every domain: one message to one customer, through the outbox and the policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.db.bulk import Bulk
from siyu.kit import clock
from siyu.kit.clock import ensure_utc
from siyu.kit.errors import ValidationFailed
from siyu.messaging import usage
from siyu.messaging.models import OutboxMessage
from siyu.messaging.outbox import (
    Draft,
    Sender,
    Written,
    channel_settings,
    check_key,
    check_same_request,
    existing_message,
    write_messages,
)
from siyu.messaging.policy import ContactPolicy
from siyu.messaging.sql import text_array
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


@dataclass(frozen=True, slots=True)
class Submitted:
    """What became of one message of a bulk submission: its outbox row, its state (queued,
    deferred, suppressed, failed), the rule or reason behind it, and whether this call wrote it."""

    message_id: int
    state: str
    reason: str | None
    created: bool


def submit_messages(session: Session, ctx: WorkspaceContext, *, template_id: int,
                    wanted: Sequence[tuple[int, str]], channel: str | None = None, purpose: str | None = None,
                    source: str = "api", context: dict[str, Any] | None = None, droppable: bool = False,
                    due_at: datetime | None = None, fail_on_render: bool = False) -> dict[str, Submitted]:
    """One message from a stored template per (customer, idempotency key), decided by the contact
    policy for the whole group at once — the bulk form of `submit_message` for other domains' batch
    work (journey steps). Every message passes the same policy: a suppressed one is written with
    its rule, a deferred one with the time it waits for. A key already in the outbox returns its
    first message and reserves nothing again. `channel` and `purpose` default to the template's.

    Raises the template's or channel's error (unknown, archived, channel off) for the whole group.
    """
    keyed = {check_key(key): customer_id for customer_id, key in wanted}
    results = {key: Submitted(mid, state, reason, False)
               for key, (mid, state, reason) in _outbox_rows(session, ctx.id, list(keyed)).items()}
    fresh = [(customer_id, key) for key, customer_id in keyed.items() if key not in results]
    if not fresh:
        return results
    from siyu.customers.service import resolve_customer_ids
    from siyu.messaging.template_service import get_template

    stored = get_template(session, ctx.id, template_id)
    use_channel = channel or stored.channel
    use_purpose = check_purpose(purpose or stored.purpose)
    channel_settings(session, ctx.id, use_channel)
    context = context or {}
    template = prepare(session, ctx.id, use_channel, template_id=template_id, context=context)
    resolved = resolve_customer_ids(session, ctx.id, [customer_id for customer_id, _ in fresh])
    policy = ContactPolicy.load(session, ctx.id, ctx.timezone)
    sender = Sender(use_channel, use_purpose, source, context, droppable)
    due = ensure_utc(due_at) if due_at is not None else clock.now()
    drafts = [Draft(resolved.get(customer_id, customer_id), key, due, template) for customer_id, key in fresh]
    written = write_messages(session, ctx, policy, sender, drafts, fail_on_render=fail_on_render)
    _keep_first_writers(session, ctx, drafts, written, results)
    return results


def _keep_first_writers(session: Session, ctx: WorkspaceContext, drafts: list[Draft], written: list[Written],
                        results: dict[str, Submitted]) -> None:
    """Where a concurrent writer stored a key first (our insert skipped it), its message stands and
    our reserved inventory goes back."""
    lost = [d.idempotency_key for d, w in zip(drafts, written, strict=True) if not w.created]
    stored = _outbox_rows(session, ctx.id, lost) if lost else {}
    refunds: list[usage.UsageKey] = []
    for draft, mine in zip(drafts, written, strict=True):
        if mine.created:
            reason = "render_failed" if mine.state == "failed" else mine.decision.rule
            results[draft.idempotency_key] = Submitted(mine.id, mine.state, reason, True)
        else:
            refunds.extend(usage.as_key(r) for r in mine.decision.reservations)
            results[draft.idempotency_key] = Submitted(*stored[draft.idempotency_key], False)
    if refunds:
        usage.refund(session, ctx.id, refunds)


def _outbox_rows(session: Session, workspace_id: int, keys: list[str]) -> dict[str, tuple[int, str, str | None]]:
    """key → (id, state, reason) of the outbox rows these keys name: one index probe per key. On
    PostgreSQL the keys go as one array literal joined as a set, so that no cached plan can turn the
    lookup into a scan comparing every row with every key (see siyu.db.keyed)."""
    bulk = Bulk(session)
    if not keys:
        return {}
    if bulk.postgres:
        rows = bulk.execute("SELECT o.idempotency_key, o.id, o.state, o.reason FROM unnest(?::text[]) AS k(key) "
                            "JOIN outbox o ON o.workspace_id = ? AND o.idempotency_key = k.key",
                            (text_array(keys), workspace_id))
    else:
        rows = bulk.select_in("SELECT idempotency_key, id, state, reason FROM outbox "
                              "WHERE workspace_id = ? AND idempotency_key {keys}", (workspace_id,), keys)
    return {key: (int(mid), state, reason) for key, mid, state, reason in rows}
