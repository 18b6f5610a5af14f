"""Signals that come back: tracked-link clicks, unsubscribe links, provider receipts and replies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.messaging.channels import adapter_class
from siyu.messaging.channels.base import ChannelContext, Receipt
from siyu.messaging.errors import ChannelDisabled, LinkNotFound
from siyu.messaging.events import record_events
from siyu.messaging.links import outbox_id_of, verify_link_code, verify_unsubscribe_code
from siyu.messaging.models import OutboxMessage
from siyu.messaging.preferences import set_preference
from siyu.messaging.reactions import take_reply
from siyu.messaging.settings import load_channels, load_policy, signing_secret

_outbox = table_of(OutboxMessage)


def _message_of(session: Session, code: str) -> OutboxMessage:
    message = session.get(OutboxMessage, outbox_id_of(code))
    if message is None:
        raise LinkNotFound("no such link")
    return message


def follow_link(session: Session, code: str) -> str:
    """Record a click on a tracked link and return where it leads."""
    message = _message_of(session, code)
    _, index = verify_link_code(signing_secret(session, message.workspace_id), code)
    links = (message.content or {}).get("links") or []
    if index >= len(links):
        raise LinkNotFound("no such link")
    now = clock.now()
    session.execute(update(_outbox).where(_outbox.c.id == message.id)
                    .values(click_count=_outbox.c.click_count + 1,
                            clicked_at=func.coalesce(_outbox.c.clicked_at, now),
                            engaged_at=func.coalesce(_outbox.c.engaged_at, now)))
    record_events(session, message.workspace_id, [(message.id, "clicked", None, {"link": index})])
    return str(links[index])


@dataclass
class Unsubscribed:
    workspace_id: int
    customer_id: int
    channel: str


def unsubscribe(session: Session, code: str) -> Unsubscribed:
    """The recipient's own word: no more marketing on the channel this message came by."""
    message = _message_of(session, code)
    verify_unsubscribe_code(signing_secret(session, message.workspace_id), code)
    set_preference(session, message.workspace_id, message.customer_id, channel=message.channel, purpose="marketing",
                   status="opted_out", source="unsubscribe_link", actor=f"customer:{message.customer_id}")
    session.execute(update(_outbox).where(_outbox.c.id == message.id)
                    .values(engaged_at=func.coalesce(_outbox.c.engaged_at, clock.now())))
    record_events(session, message.workspace_id, [(message.id, "unsubscribed", None, {})])
    return Unsubscribed(message.workspace_id, message.customer_id, message.channel)


@dataclass
class ReceiptSummary:
    delivered: int = 0
    failed: int = 0
    replies: int = 0
    unmatched: int = 0


def take_receipts(session: Session, workspace_id: int, channel: str, body: bytes, headers: Mapping[str, str]
                  ) -> ReceiptSummary:
    """A provider's callback: the adapter checks its signature and parses it; records follow."""
    settings = load_channels(session, workspace_id).get(channel)
    if settings is None:
        raise ChannelDisabled(f"the {channel} channel is not configured for this workspace", field="channel")
    engine = session.get_bind()
    adapter = adapter_class(channel)(ChannelContext(engine, workspace_id, settings.config))  # type: ignore[arg-type]
    try:
        receipts = adapter.parse_receipt(body, headers, clock.now())
    finally:
        adapter.close()
    summary = ReceiptSummary()
    for receipt in receipts:
        if receipt.kind == "reply":
            _reply(session, workspace_id, channel, adapter.address_type, receipt, summary)
        else:
            _report(session, workspace_id, receipt, summary)
    return summary


def _report(session: Session, workspace_id: int, receipt: Receipt, summary: ReceiptSummary) -> None:
    where: list[Any] = [_outbox.c.workspace_id == workspace_id]
    if receipt.provider_message_id:
        where.append(_outbox.c.provider_message_id == receipt.provider_message_id)
    elif receipt.idempotency_key:
        where.append(_outbox.c.idempotency_key == receipt.idempotency_key)
    else:
        summary.unmatched += 1
        return
    row = session.execute(select(_outbox.c.id, _outbox.c.state).where(*where).limit(1)).first()
    if row is None or row.state not in ("sent", "unknown", "delivered", "failed"):
        summary.unmatched += 1
        return
    at = receipt.at or clock.now()
    if receipt.kind == "delivered":
        session.execute(update(_outbox).where(_outbox.c.id == row.id)
                        .values(state="delivered", delivered_at=at, sent_at=func.coalesce(_outbox.c.sent_at, at)))
        summary.delivered += 1
    else:
        session.execute(update(_outbox).where(_outbox.c.id == row.id)
                        .values(state="failed", reason="delivery_failed", detail=(receipt.error or "")[:500]))
        summary.failed += 1
    record_events(session, workspace_id, [(row.id, receipt.kind, receipt.error, {})])


def _reply(session: Session, workspace_id: int, channel: str, address_type: str | None, receipt: Receipt,
           summary: ReceiptSummary) -> None:
    from siyu.customers.service import find_by_identity

    customer = None
    if address_type is not None and receipt.address:
        try:
            customer = find_by_identity(session, workspace_id, address_type, receipt.address)
        except ValidationFailed:  # a malformed sender number matches nobody
            customer = None
    if customer is None:
        summary.unmatched += 1
        return
    take_reply(session, workspace_id, load_policy(session, workspace_id), customer.id, receipt.text or "",
               receipt.at or clock.now(), channel=channel, source=f"{channel}_reply")
    summary.replies += 1
