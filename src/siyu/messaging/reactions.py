"""What customers do after a message: replies (and "TD" / "退订" opt-outs), orders attributed to the
last marketing message within the window, and merges of profiles. These make fatigue and results
right: a message that got a click, a reply or an order was not ignored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.messaging.events import record_events
from siyu.messaging.models import OutboxMessage
from siyu.messaging.preferences import move_preferences, set_preference
from siyu.messaging.settings import PolicySettings, load_policy
from siyu.messaging.usage import move_usage

_outbox = table_of(OutboxMessage)
DELIVERED_STATES = ("sent", "delivered")


def react_to_events(session: Session, workspace_id: int, event_ids: list[int]) -> None:
    from siyu.events.service import events_by_ids

    events = [e for e in events_by_ids(session, workspace_id, event_ids)
              if e.type in ("message_received", "order_paid")]
    if not events:
        return
    policy = load_policy(session, workspace_id)
    for event in events:
        properties: dict[str, Any] = dict(event.properties or {})
        if event.type == "message_received":
            channel = properties.get("channel")
            take_reply(session, workspace_id, policy, event.customer_id, str(properties.get("text", "")),
                       event.occurred_at, channel=str(channel) if channel else None, source="message_received")
        else:
            attribute_order(session, workspace_id, policy, event.customer_id, str(properties.get("order_id", "")),
                            int(properties.get("total_fen", 0)), event.occurred_at)


def last_message(session: Session, workspace_id: int, customer_id: int, since: datetime, until: datetime, *,
                 channel: str | None = None, purpose: str | None = None) -> Any:
    stmt = (select(_outbox.c.id, _outbox.c.channel, _outbox.c.replied_at, _outbox.c.attributed_order_id)
            .where(_outbox.c.workspace_id == workspace_id, _outbox.c.customer_id == customer_id,
                   _outbox.c.state.in_(DELIVERED_STATES), _outbox.c.sent_at >= since, _outbox.c.sent_at <= until)
            .order_by(_outbox.c.id.desc()).limit(1))
    if channel is not None:
        stmt = stmt.where(_outbox.c.channel == channel)
    if purpose is not None:
        stmt = stmt.where(_outbox.c.purpose == purpose)
    return session.execute(stmt).first()


def take_reply(session: Session, workspace_id: int, policy: PolicySettings, customer_id: int, text: str,
               at: datetime, *, channel: str | None, source: str) -> None:
    """A reply engages the last message it answers; an opt-out keyword also opts the customer out of
    marketing on that channel (on every channel when the reply does not say where it came from)."""
    if policy.keyword_opts_out(text):
        set_preference(session, workspace_id, customer_id, channel=channel or "*", purpose="marketing",
                       status="opted_out", source=source, actor=f"customer:{customer_id}", note=text.strip()[:100])
    message = last_message(session, workspace_id, customer_id, at - timedelta(days=policy.reply_window_days), at,
                           channel=channel)
    if message is None or message.replied_at is not None:
        return
    session.execute(update(_outbox).where(_outbox.c.id == message.id)
                    .values(replied_at=at, engaged_at=at))
    record_events(session, workspace_id, [(message.id, "replied", None, {"text": text[:200]})])


def attribute_order(session: Session, workspace_id: int, policy: PolicySettings, customer_id: int, order_id: str,
                    total_fen: int, at: datetime) -> None:
    """Last touch: the order goes to the newest marketing message sent within the window before it."""
    message = last_message(session, workspace_id, customer_id, at - timedelta(days=policy.attribution_window_days), at,
                           purpose="marketing")
    if message is None or message.attributed_order_id is not None:
        return
    session.execute(update(_outbox).where(_outbox.c.id == message.id)
                    .values(attributed_order_id=order_id, attributed_fen=total_fen, engaged_at=at))
    record_events(session, workspace_id, [(message.id, "attributed", None,
                                           {"order_id": order_id, "total_fen": total_fen})])


def follow_merge(session: Session, workspace_id: int, absorbed_id: int, survivor_id: int) -> None:
    """The survivor inherits the stricter preferences, the message history and today's counters."""
    move_preferences(session, workspace_id, absorbed_id, survivor_id)
    session.execute(update(_outbox).where(_outbox.c.workspace_id == workspace_id,
                                          _outbox.c.customer_id == absorbed_id).values(customer_id=survivor_id))
    move_usage(session, workspace_id, str(absorbed_id), str(survivor_id))
