"""Broadcasts (群发): an audience, a channel, template variants with split percentages, a send time.

draft → (start) scheduled → (fill job) filling → sending → completed; paused and cancelled on the
way. The fill walks the audience by keyset in batches, each batch decided by the contact policy
set-wise and written in one transaction with its cursor, so a fill of a million recipients can
stop, resume and never writes a recipient twice. Sending is paced: with a rate, recipient n is due
at start + n / rate, which holds however many workers dispatch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, case, select, text, update
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.db.base import table_of
from siyu.db.session import transaction
from siyu.jobs.service import enqueue
from siyu.kit import clock
from siyu.kit.clock import ensure_utc
from siyu.kit.errors import ValidationFailed
from siyu.messaging import audiences, usage
from siyu.messaging.errors import BroadcastNotFound, BroadcastStateConflict, EmptyAudience
from siyu.messaging.models import Broadcast, OutboxMessage
from siyu.messaging.outbox import (
    Draft,
    PreparedTemplate,
    Sender,
    channel_settings,
    write_messages,
)
from siyu.messaging.policy import ContactPolicy
from siyu.messaging.sending import check_purpose
from siyu.messaging.sql import plan_each_batch
from siyu.messaging.template_service import prepare
from siyu.workspaces.service import WorkspaceContext, context_of, get_workspace

FILL_BATCH = 5000
OPEN_STATES = ("queued", "deferred", "paused")
_outbox = table_of(OutboxMessage)


def _variants(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not variants:
        raise ValidationFailed("a broadcast needs at least one template", field="variants")
    names = [str(v.get("name") or chr(ord("A") + i)) for i, v in enumerate(variants)]
    if len(set(names)) != len(names):
        raise ValidationFailed("variant names must differ", field="variants")
    percents = [v.get("percent", 100 if len(variants) == 1 else None) for v in variants]
    if any(not isinstance(p, int) or p <= 0 for p in percents) or sum(p for p in percents if p) != 100:
        raise ValidationFailed("variant percentages are positive integers adding up to 100", field="variants")
    return [{"name": n, "template_id": int(v["template_id"]), "percent": p}
            for n, v, p in zip(names, variants, percents, strict=True)]


def variant_of(broadcast_id: int, customer_id: int, variants: list[dict[str, Any]]) -> dict[str, Any]:
    """A stable split: the same customer always lands in the same variant of a broadcast."""
    if len(variants) == 1:
        return variants[0]
    digest = hashlib.blake2b(f"{broadcast_id}:{customer_id}".encode(), digest_size=4).digest()
    bucket = int.from_bytes(digest, "big") % 100
    edge = 0
    for variant in variants:
        edge += int(variant["percent"])
        if bucket < edge:
            return variant
    return variants[-1]


def create_broadcast(session: Session, ctx: WorkspaceContext, *, name: str, channel: str, audience: dict[str, Any],
                     variants: list[dict[str, Any]], context: dict[str, Any] | None = None,
                     send_at: datetime | None = None, rate_per_minute: int | None = None, droppable: bool = False,
                     purpose: str = "marketing", actor: str) -> Broadcast:
    check_purpose(purpose)
    channel_rate = channel_settings(session, ctx.id, channel).rate_per_minute
    checked = _variants(variants)
    for variant in checked:
        prepare(session, ctx.id, channel, template_id=variant["template_id"], context=context or {})
    if rate_per_minute is not None and rate_per_minute <= 0:
        raise ValidationFailed("rate_per_minute must be positive", field="rate_per_minute")
    # The channel's pace is the ceiling: a broadcast may go slower, never faster.
    pace = min((r for r in (rate_per_minute, channel_rate) if r is not None), default=None)
    summary, ids = audiences.normalise_audience(session, ctx.id, audience)
    stored = {**audience, **summary}
    stored.pop("customer_ids", None)
    stored.pop("csv", None)
    broadcast = Broadcast(workspace_id=ctx.id, name=name, channel=channel, purpose=purpose, audience=stored,
                          variants=checked, context=context or {},
                          send_at=ensure_utc(send_at) if send_at else None, rate_per_minute=pace,
                          droppable=droppable, state="draft", created_by=actor, created_at=clock.now())
    session.add(broadcast)
    session.flush()
    if summary["kind"] in ("list", "csv"):
        audiences.store_list(session, broadcast.id, ids)
    broadcast.audience_size = audiences.audience_size(session, _select(session, broadcast))
    record_audit(session, ctx.id, actor, "broadcast.created", "broadcast", broadcast.id,
                 {"name": name, "channel": channel, "audience": stored, "size": broadcast.audience_size})
    session.flush()
    return broadcast


def _select(session: Session, broadcast: Broadcast) -> Any:
    return audiences.audience_select(session, broadcast.workspace_id, broadcast.id, broadcast.audience)


def get_broadcast(session: Session, workspace_id: int, broadcast_id: int, *, lock: bool = False) -> Broadcast:
    stmt = select(Broadcast).where(Broadcast.workspace_id == workspace_id, Broadcast.id == broadcast_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    broadcast = session.scalar(stmt)
    if broadcast is None:
        raise BroadcastNotFound(f"no broadcast {broadcast_id}", field="broadcast_id")
    return broadcast


def list_broadcasts(session: Session, workspace_id: int, limit: int = 100) -> list[Broadcast]:
    return list(session.scalars(select(Broadcast).where(Broadcast.workspace_id == workspace_id)
                                .order_by(Broadcast.id.desc()).limit(limit)))


def _prepared(session: Session, broadcast: Broadcast) -> dict[str, PreparedTemplate]:
    return {v["name"]: prepare(session, broadcast.workspace_id, broadcast.channel, template_id=v["template_id"],
                               context=broadcast.context) for v in broadcast.variants}


def _sender(broadcast: Broadcast) -> Sender:
    return Sender(broadcast.channel, broadcast.purpose, "broadcast", broadcast.context, broadcast.droppable,
                  broadcast_id=broadcast.id)


def _step(broadcast: Broadcast) -> float:
    return 60.0 / broadcast.rate_per_minute if broadcast.rate_per_minute else 0.0


def _drafts(broadcast: Broadcast, templates: dict[str, PreparedTemplate], ids: list[int], start: datetime
            ) -> list[Draft]:
    """One draft per recipient; with a rate, recipient n of the batch is due n steps after `start`."""
    step = _step(broadcast)
    drafts = []
    for n, customer_id in enumerate(ids):
        variant = variant_of(broadcast.id, customer_id, broadcast.variants)["name"]
        due = start + timedelta(seconds=step * n) if step else start
        drafts.append(Draft(customer_id, f"broadcast:{broadcast.id}:{customer_id}", due, templates[variant], variant))
    return drafts


@dataclass
class Preview:
    audience_size: int
    send: int
    defer: int
    suppress: int
    deferred_by_rule: dict[str, int]
    suppressed_by_rule: dict[str, int]


def preview_broadcast(session: Session, ctx: WorkspaceContext, broadcast_id: int) -> Preview:
    """How many the policy would send, defer and suppress (and why) if the broadcast went now.
    Reads only: nothing is reserved or written."""
    broadcast = get_broadcast(session, ctx.id, broadcast_id)
    policy = ContactPolicy.load(session, ctx.id, ctx.timezone)
    templates = _prepared(session, broadcast)
    ids_select = _select(session, broadcast)
    start = max(broadcast.send_at or clock.now(), clock.now())
    result = Preview(0, 0, 0, 0, {}, {})
    cursor = 0
    while True:
        ids = audiences.next_batch(session, ids_select, cursor, FILL_BATCH)
        if not ids:
            break
        drafts = _drafts(broadcast, templates, ids, start + timedelta(seconds=_step(broadcast) * result.audience_size))
        for written in write_messages(session, ctx, policy, _sender(broadcast), drafts, mode="preview"):
            decision = written.decision
            setattr(result, decision.outcome, getattr(result, decision.outcome) + 1)
            if decision.rule and decision.outcome != "send":
                tally = result.deferred_by_rule if decision.outcome == "defer" else result.suppressed_by_rule
                tally[decision.rule] = tally.get(decision.rule, 0) + 1
        result.audience_size += len(ids)
        cursor = ids[-1]
    return result


def start_broadcast(session: Session, ctx: WorkspaceContext, broadcast_id: int, *, actor: str) -> Broadcast:
    """Schedule the broadcast: its fill runs at the send time (now when none was given)."""
    broadcast = get_broadcast(session, ctx.id, broadcast_id, lock=True)
    if broadcast.state != "draft":
        raise BroadcastStateConflict(f"broadcast {broadcast_id} is {broadcast.state}, not a draft", field="state")
    size = audiences.audience_size(session, _select(session, broadcast))
    if size == 0:
        raise EmptyAudience("the audience of this broadcast is empty: nobody would get it", field="audience")
    _prepared(session, broadcast)  # templates may have been archived since the draft was saved
    broadcast.audience_size = size
    broadcast.state = "scheduled"
    enqueue(session, "messaging.fill_broadcast", {"broadcast_id": broadcast.id}, workspace_id=ctx.id,
            due_at=broadcast.send_at or clock.now(), key=f"messaging.fill:{broadcast.id}:start")
    record_audit(session, ctx.id, actor, "broadcast.started", "broadcast", broadcast.id, {"size": size})
    session.flush()
    return broadcast


def fill_broadcast(engine: Engine, broadcast_id: int, batch: int = FILL_BATCH) -> int:
    """Write the broadcast's outbox rows, batch by batch; returns how many this call wrote."""
    written_total = 0
    analyzed_at = batch
    while True:
        with transaction(engine) as session:
            plan_each_batch(session)
            # Locked for the batch: two fill jobs of one broadcast (a resume queues another) take turns
            # and each starts from the cursor the other committed.
            broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
            if broadcast is None or broadcast.state not in ("scheduled", "filling"):
                return written_total
            ctx = context_of(get_workspace(session, broadcast.workspace_id))
            if broadcast.state == "scheduled":
                broadcast.state, broadcast.started_at = "filling", clock.now()
            ids = audiences.next_batch(session, _select(session, broadcast), broadcast.fill_cursor, batch)
            if not ids:
                broadcast.state = "sending"
                _refresh_statistics(session)  # so that dispatch plans for the rows just written
                return written_total
            # The pace continues where the previous batch left off, never in the past (after a pause).
            started = broadcast.started_at or clock.now()
            start = max(clock.now(), started + timedelta(seconds=_step(broadcast) * broadcast.filled_count))
            drafts = _drafts(broadcast, _prepared(session, broadcast), ids, start)
            policy = ContactPolicy.load(session, ctx.id, ctx.timezone)
            written = write_messages(session, ctx, policy, _sender(broadcast), drafts, fail_on_render=False)
            broadcast.fill_cursor = ids[-1]
            broadcast.filled_count += len(ids)
            written_total += len(written)
            if written_total >= analyzed_at * 2:
                _refresh_statistics(session)
                analyzed_at = written_total


def _refresh_statistics(session: Session) -> None:
    """A fill grows the outbox and the usage counters faster than autovacuum looks at them; with the
    statistics of an empty table PostgreSQL would plan each batch's lookups as scans of everything
    written so far. Refreshed as the fill doubles, the cost stays linear (a dozen times for a million)."""
    if session.get_bind().dialect.name == "postgresql":
        for table in ("outbox", "contact_usage", "contact_preferences"):
            session.execute(text(f"ANALYZE {table}"))


def _transition(session: Session, ctx: WorkspaceContext, broadcast_id: int, allowed: tuple[str, ...], to: str,
                actor: str) -> Broadcast:
    broadcast = get_broadcast(session, ctx.id, broadcast_id, lock=True)
    if broadcast.state not in allowed:
        raise BroadcastStateConflict(f"broadcast {broadcast_id} is {broadcast.state}; it cannot be {to} now",
                                     field="state")
    previous = broadcast.state
    broadcast.state = to
    record_audit(session, ctx.id, actor, f"broadcast.{to}", "broadcast", broadcast.id, {"from": previous})
    return broadcast


def pause_broadcast(session: Session, ctx: WorkspaceContext, broadcast_id: int, *, actor: str) -> Broadcast:
    """Stop the fill and hold every message not yet sending; nothing is lost."""
    broadcast = _transition(session, ctx, broadcast_id, ("scheduled", "filling", "sending"), "paused", actor)
    session.execute(update(_outbox).where(_outbox.c.broadcast_id == broadcast.id,
                                          _outbox.c.state.in_(("queued", "deferred"))).values(state="paused"))
    session.flush()
    return broadcast


def resume_broadcast(session: Session, ctx: WorkspaceContext, broadcast_id: int, *, actor: str) -> Broadcast:
    """Release held messages; with a rate they are paced again from now, in their original order."""
    broadcast = _transition(session, ctx, broadcast_id, ("paused",), "filling", actor)
    now = clock.now()
    step = _step(broadcast)
    held_rows = (_outbox.c.broadcast_id == broadcast.id) & (_outbox.c.state == "paused")
    if step:  # paced again from now, in the original order
        held = list(session.execute(select(_outbox.c.id, _outbox.c.due_at).where(held_rows)
                                    .order_by(_outbox.c.due_at, _outbox.c.id)))
        params = [{"i": row.id, "d": max(row.due_at, now + timedelta(seconds=step * n))}
                  for n, row in enumerate(held)]
        if params:
            session.execute(update(_outbox).where(_outbox.c.id == bindparam("i"))
                            .values(state="queued", due_at=bindparam("d")), params)
    else:
        session.execute(update(_outbox).where(held_rows).values(
            state="queued", due_at=case((_outbox.c.due_at < now, now), else_=_outbox.c.due_at)))
    started = broadcast.started_at is not None
    broadcast.state = "filling" if started else "scheduled"
    enqueue(session, "messaging.fill_broadcast", {"broadcast_id": broadcast.id}, workspace_id=ctx.id,
            due_at=now if started else (broadcast.send_at or now))
    session.flush()
    return broadcast


def cancel_broadcast(session: Session, ctx: WorkspaceContext, broadcast_id: int, *, actor: str) -> Broadcast:
    """Nothing more goes out; held inventory is given back. Messages already sent stay sent."""
    broadcast = _transition(session, ctx, broadcast_id, ("draft", "scheduled", "filling", "sending", "paused"),
                            "cancelled", actor)
    broadcast.finished_at = clock.now()
    while True:
        rows = session.execute(select(_outbox.c.id, _outbox.c.reservations)
                               .where(_outbox.c.broadcast_id == broadcast.id, _outbox.c.state.in_(OPEN_STATES))
                               .limit(5000)).all()
        if not rows:
            break
        usage.refund(session, ctx.id, [usage.as_key(r) for row in rows for r in row.reservations or []])
        ids = [row.id for row in rows]
        session.execute(update(_outbox).where(_outbox.c.id.in_(ids))
                        .values(state="cancelled", reason="broadcast_cancelled", reservations=[]))
        from siyu.messaging.preferences import settle_one_time_consents

        settle_one_time_consents(session, ids, used=False)
    session.flush()
    return broadcast


def finish_completed_broadcasts(session: Session) -> list[int]:
    """Broadcasts whose every message has reached a final state are completed."""
    done = []
    for broadcast in session.scalars(select(Broadcast).where(Broadcast.state == "sending")):
        open_row = session.scalar(select(_outbox.c.id).where(
            _outbox.c.broadcast_id == broadcast.id,
            _outbox.c.state.in_(("queued", "deferred", "paused", "sending"))).limit(1))
        if open_row is None:
            broadcast.state, broadcast.finished_at = "completed", clock.now()
            done.append(broadcast.id)
    session.flush()
    return done


@dataclass
class VariantResults:
    name: str
    template_id: int
    percent: int
    states: dict[str, int]
    suppressed_by_rule: dict[str, int]
    deferred_by_rule: dict[str, int]
    failed_by_reason: dict[str, int]
    clicked: int
    clicks: int
    replied: int
    orders: int
    revenue_fen: int

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def sent(self) -> int:
        return self.states.get("sent", 0) + self.states.get("delivered", 0)


def broadcast_results(session: Session, workspace_id: int, broadcast_id: int) -> list[VariantResults]:
    """Progress and results per variant in one grouped query: states, suppressions and deferrals by
    rule, failures by reason, clicks, replies and orders attributed within the window."""
    from sqlalchemy import func

    broadcast = get_broadcast(session, workspace_id, broadcast_id)
    results = {v["name"]: VariantResults(v["name"], v["template_id"], v["percent"], {}, {}, {}, {}, 0, 0, 0, 0, 0)
               for v in broadcast.variants}
    rows = session.execute(
        select(_outbox.c.variant, _outbox.c.state, _outbox.c.reason, func.count(),
               func.count(_outbox.c.clicked_at), func.coalesce(func.sum(_outbox.c.click_count), 0),
               func.count(_outbox.c.replied_at), func.count(_outbox.c.attributed_order_id),
               func.coalesce(func.sum(_outbox.c.attributed_fen), 0))
        .where(_outbox.c.workspace_id == workspace_id, _outbox.c.broadcast_id == broadcast_id)
        .group_by(_outbox.c.variant, _outbox.c.state, _outbox.c.reason))
    for variant, state, reason, count, clicked, clicks, replied, orders, revenue in rows:
        result = results.get(variant)
        if result is None:
            continue
        result.states[state] = result.states.get(state, 0) + int(count)
        tally = {"suppressed": result.suppressed_by_rule, "deferred": result.deferred_by_rule,
                 "failed": result.failed_by_reason}.get(state)
        if tally is not None and reason:
            tally[reason] = tally.get(reason, 0) + int(count)
        result.clicked += int(clicked)
        result.clicks += int(clicks)
        result.replied += int(replied)
        result.orders += int(orders)
        result.revenue_fen += int(revenue)
    return list(results.values())
