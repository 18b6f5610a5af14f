"""Dispatch: claim due outbox rows, verify the policy at the moment of sending, call the adapter,
record every attempt and the outcome.

At most once per key. A batch is claimed in its own transaction and committed as `sending` with an
attempt id and a lease *before* any adapter is called; the outcome is written afterwards, fenced by
that attempt id. A worker that dies in between leaves rows `sending` with a lapsed lease, and the
recovery rule applies: the adapter is asked whether the provider got the message (`lookup`) —
received → `sent`; not received → queued again; cannot tell → `unknown`, never re-sent by itself.
A worker also stops calling the adapter once its own lease is nearly over, so a lease never lapses
under a live send. See docs/adr/0004-outbox-and-contact-policy.md.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import Engine, bindparam, select, text, update
from sqlalchemy.orm import Session
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_random_exponential

from siyu.db.base import table_of
from siyu.db.session import transaction
from siyu.kit import clock
from siyu.kit.errors import SiyuError
from siyu.messaging import usage
from siyu.messaging.channels import adapter_class
from siyu.messaging.channels.base import ChannelAdapter, ChannelContext, OutgoingMessage, SendResult
from siyu.messaging.events import record_events
from siyu.messaging.models import DUE_STATES, OutboxMessage
from siyu.messaging.outbox import cyclic_gc_paused
from siyu.messaging.policy import Candidate, ContactPolicy
from siyu.messaging.preferences import settle_one_time_consents
from siyu.messaging.settings import ChannelSettings, load_channels
from siyu.messaging.sql import fast_json_results, insert_many, one_of, relaxed_commit

log = logging.getLogger("siyu.messaging.dispatch")
BATCH = 1000
MAX_BACKOFF_SECONDS = 3600
_outbox = table_of(OutboxMessage)
_COLUMNS = (OutboxMessage.id, OutboxMessage.workspace_id, OutboxMessage.customer_id, OutboxMessage.channel,
            OutboxMessage.purpose, OutboxMessage.idempotency_key, OutboxMessage.address, OutboxMessage.content,
            OutboxMessage.droppable, OutboxMessage.staff_id, OutboxMessage.reservations, OutboxMessage.attempts)


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    deferred: int = 0
    suppressed: int = 0
    unknown: int = 0
    recovered: int = 0
    requeued: int = 0

    def add(self, other: DispatchStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Workspace:
    policy: ContactPolicy
    channels: dict[str, ChannelSettings]


@dataclass(slots=True)
class _Claimed:
    row: Any
    attempts: list[tuple[datetime, SendResult]] = field(default_factory=list)
    released: bool = False  # not attempted: the lease was running short
    idempotent: bool = False  # the adapter's provider de-duplicates: an ambiguous outcome may be retried


def backoff_seconds(attempts: int) -> float:
    """Exponential with jitter: 5–10 s after the first attempt, 10–20 s after the second … up to an hour."""
    base: float = min(5 * 2 ** attempts, MAX_BACKOFF_SECONDS)
    return base * (0.5 + random.random() / 2)


def dispatch_due(engine: Engine, *, batch: int = BATCH, max_batches: int | None = None,
                 budget_seconds: float | None = None, http_transport: httpx.BaseTransport | None = None
                 ) -> DispatchStats:
    """Dispatch due messages until none are due (or `max_batches` or the time budget is spent)."""
    stats = DispatchStats()
    from siyu.messaging.recovery import recover_expired

    stats.add(recover_expired(engine, http_transport=http_transport))
    started = time.monotonic()
    batches = 0
    while max_batches is None or batches < max_batches:
        with cyclic_gc_paused():
            claimed = _claim(engine, batch, stats)
            if claimed is None:
                break
            batches += 1
            if claimed[0]:
                _send_and_record(engine, *claimed, stats=stats, http_transport=http_transport)
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            break
    if stats.claimed:
        from siyu.messaging.broadcasts import finish_completed_broadcasts

        with transaction(engine) as session:
            finish_completed_broadcasts(session)
    return stats


# -- claim ----------------------------------------------------------------------------------------

_Batch = tuple[list["_Claimed"], str, dict[int, "_Workspace"], datetime]


def _claim(engine: Engine, batch: int, stats: DispatchStats) -> _Batch | None:
    attempt_id = uuid.uuid4().hex
    with transaction(engine) as session:
        fast_json_results(session)
        now = clock.now()
        stmt = (select(*_COLUMNS).where(OutboxMessage.state.in_(DUE_STATES), OutboxMessage.due_at <= now)
                .order_by(OutboxMessage.due_at).limit(batch))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = session.execute(stmt).all()
        if not rows:
            return None
        stats.claimed += len(rows)
        workspaces = {ws: _load_workspace(session, ws) for ws in sorted({r.workspace_id for r in rows})}
        sending: list[_Claimed] = []
        by_workspace: dict[int, list[Any]] = defaultdict(list)
        for row in rows:
            by_workspace[row.workspace_id].append(row)
        for workspace_id, ws_rows in by_workspace.items():
            sending += _verify(session, workspace_id, workspaces[workspace_id], ws_rows, attempt_id, now, stats)
        return sending, attempt_id, workspaces, now


def _load_workspace(session: Session, workspace_id: int) -> _Workspace:
    from siyu.workspaces.service import get_workspace

    workspace = get_workspace(session, workspace_id)
    return _Workspace(ContactPolicy.load(session, workspace_id, workspace.timezone),
                      load_channels(session, workspace_id))


def _verify(session: Session, workspace_id: int, ws: _Workspace, rows: list[Any], attempt_id: str, now: datetime,
            stats: DispatchStats) -> list[_Claimed]:
    """The policy again, at the moment of sending; then the survivors are marked `sending`."""
    candidates = [Candidate(r.customer_id, r.channel, r.purpose, now, r.droppable, r.staff_id, outbox_id=r.id,
                            reservations=list(r.reservations or [])) for r in rows]
    decisions = ws.policy.decide(session, candidates, "verify")
    sending, events = [], []
    refunds: list[usage.UsageKey] = []
    released: list[int] = []
    for row, candidate, decision in zip(rows, candidates, decisions, strict=True):
        moved = decision.reservations != candidate.reservations
        if decision.outcome == "send":
            sending.append(_Claimed(row))
            if moved:
                session.execute(update(_outbox).where(_outbox.c.id == row.id)
                                .values(reservations=decision.reservations))
            continue
        values: dict[str, Any] = {"reason": decision.rule}
        if decision.outcome == "defer":
            stats.deferred += 1
            values.update(state="deferred", due_at=decision.due_at, reservations=decision.reservations)
        else:
            stats.suppressed += 1
            values.update(state="suppressed", reservations=[])
            refunds += [usage.as_key(r) for r in candidate.reservations]
            released.append(row.id)
        session.execute(update(_outbox).where(_outbox.c.id == row.id).values(**values))
        if decision.outcome == "defer":
            events.append((row.id, "deferred", decision.rule, {"due_at": decision.due_at.isoformat()}))
        else:
            events.append((row.id, "suppressed", decision.rule, {}))
    usage.refund(session, workspace_id, refunds)
    settle_one_time_consents(session, released, used=False)
    record_events(session, workspace_id, events)
    if sending:
        lease = timedelta(seconds=ws.policy.settings.send_lease_seconds)
        session.execute(update(_outbox).where(one_of(session, _outbox.c.id, [c.row.id for c in sending]))
                        .values(state="sending", attempt_id=attempt_id, locked_until=now + lease,
                                attempts=_outbox.c.attempts + 1))
    return sending


# -- send ----------------------------------------------------------------------------------------

def _send_and_record(engine: Engine, claimed: list[_Claimed], attempt_id: str, workspaces: dict[int, _Workspace],
                     claimed_at: datetime, stats: DispatchStats, http_transport: httpx.BaseTransport | None) -> None:
    groups: dict[tuple[int, str], list[_Claimed]] = defaultdict(list)
    for item in claimed:
        groups[(item.row.workspace_id, item.row.channel)].append(item)
    for (workspace_id, channel), items in groups.items():
        ws = workspaces[workspace_id]
        # The lease began at the claim; stop calling providers while a quarter of it is left.
        deadline = claimed_at + timedelta(seconds=ws.policy.settings.send_lease_seconds * 0.75)
        settings = ws.channels.get(channel)
        if settings is None or not settings.enabled:
            _refuse(items, "channel_disabled", f"the {channel} channel is off")
            continue
        try:
            adapter = adapter_class(channel)(ChannelContext(engine, workspace_id, settings.config, http_transport))
        except (SiyuError, ValidationError) as exc:
            _refuse(items, "channel_config_invalid", str(exc))
            continue
        try:
            _send_group(adapter, settings, items, deadline)
        finally:
            adapter.close()
    _record(engine, claimed, attempt_id, workspaces, stats)


def _refuse(items: list[_Claimed], code: str, message: str) -> None:
    for item in items:
        item.attempts.append((clock.now(), SendResult("permanent", error_code=code, error_message=message[:500])))


def _call(adapter: ChannelAdapter, messages: list[OutgoingMessage]) -> list[SendResult]:
    """An adapter that raises instead of answering may have sent: its messages are ambiguous."""
    try:
        if len(messages) == 1:
            return [adapter.send(messages[0])]
        return adapter.send_many(messages)
    except Exception as exc:  # an adapter bug must not stop dispatch; it is recorded per message
        log.exception("the %s adapter failed", adapter.name)
        text = f"{type(exc).__name__}: {exc}"[:500]
        return [SendResult("ambiguous", error_code="adapter_error", error_message=text) for _ in messages]


def _outgoing(item: _Claimed) -> OutgoingMessage:
    row = item.row
    return OutgoingMessage(row.id, row.workspace_id, row.customer_id, row.idempotency_key, row.address, row.purpose,
                           row.content or {}, row.staff_id)


def _send_group(adapter: ChannelAdapter, settings: ChannelSettings, items: list[_Claimed], deadline: datetime) -> None:
    limits = adapter.limits
    for item in items:
        item.idempotent = limits.idempotent
    if limits.max_batch > 1:
        for start in range(0, len(items), limits.max_batch):
            chunk = items[start:start + limits.max_batch]
            if clock.now() >= deadline:
                for item in items[start:]:
                    item.released = True
                return
            results = _call(adapter, [_outgoing(i) for i in chunk])
            at = clock.now()
            for item, result in zip(chunk, results, strict=True):
                item.attempts.append((at, result))
        return
    retry_ambiguous = limits.idempotent
    for item in items:
        if clock.now() >= deadline:
            item.released = True
            continue
        _send_with_retries(adapter, settings, item, deadline, retry_ambiguous)


def _send_with_retries(adapter: ChannelAdapter, settings: ChannelSettings, item: _Claimed, deadline: datetime,
                       retry_ambiguous: bool) -> None:
    message = _outgoing(item)

    def retryable(result: SendResult) -> bool:
        again = result.outcome == "transient" or (result.outcome == "ambiguous" and retry_ambiguous)
        return again and clock.now() < deadline

    def call() -> SendResult:
        (result,) = _call(adapter, [message])
        item.attempts.append((clock.now(), result))
        return result

    retrying = Retrying(stop=stop_after_attempt(settings.retry_tries),
                        wait=wait_random_exponential(multiplier=settings.retry_initial_seconds,
                                                     max=settings.retry_max_seconds),
                        retry=retry_if_result(retryable), retry_error_callback=_last_result)
    retrying(call)


def _last_result(state: RetryCallState) -> SendResult:
    """When retries run out, the last answer stands (it is recorded, not raised)."""
    assert state.outcome is not None
    result: SendResult = state.outcome.result()
    return result


# -- record ----------------------------------------------------------------------------------------

def _record(engine: Engine, claimed: list[_Claimed], attempt_id: str, workspaces: dict[int, _Workspace],
            stats: DispatchStats) -> None:
    with transaction(engine) as session:
        relaxed_commit(session.connection())
        now = clock.now()
        outcome_rows: dict[str, list[int]] = defaultdict(list)
        per_row: list[dict[str, Any]] = []
        refunds: dict[int, list[usage.UsageKey]] = defaultdict(list)
        released: list[int] = []
        used: list[int] = []
        events: dict[int, list[tuple[int, str, str | None, dict[str, Any]]]] = defaultdict(list)
        for item in claimed:
            row = item.row
            ws = workspaces[row.workspace_id]
            if item.released:
                per_row.append({"i": row.id, "state": "queued", "due_at": now, "reason": "lease_ran_short",
                                "detail": None, "attempts": row.attempts})
                continue
            _, result = item.attempts[-1]
            outcome = result.outcome
            if outcome == "ambiguous" and item.idempotent:
                outcome = "transient"
            if outcome == "delivered" and not result.provider_message_id and len(item.attempts) == 1:
                outcome_rows["delivered"].append(row.id)
                stats.sent += 1
            elif outcome in ("sent", "delivered"):
                per_row.append({"i": row.id, "state": outcome, "provider_message_id": result.provider_message_id,
                                "sent_at": now, "delivered_at": now if outcome == "delivered" else None,
                                "reason": None, "detail": None})
                stats.sent += 1
            elif outcome == "transient" and row.attempts + 1 < ws.policy.settings.max_attempts:
                due = now + timedelta(seconds=backoff_seconds(row.attempts + 1))
                per_row.append({"i": row.id, "state": "queued", "due_at": due, "reason": result.error_code,
                                "detail": (result.error_message or "")[:500], "attempts": row.attempts + 1})
                stats.retried += 1
            elif outcome == "ambiguous":
                per_row.append({"i": row.id, "state": "unknown", "reason": result.error_code,
                                "detail": (result.error_message or "")[:500]})
                events[row.workspace_id].append((row.id, "unknown", result.error_code, {}))
                stats.unknown += 1
            else:
                per_row.append({"i": row.id, "state": "failed", "reason": result.error_code,
                                "detail": (result.error_message or "")[:500]})
                refunds[row.workspace_id] += [usage.as_key(r) for r in row.reservations or []]
                released.append(row.id)
                stats.failed += 1
            if outcome in ("sent", "delivered") and row.channel in ws.policy.settings.one_time_consent_channels:
                used.append(row.id)
        logged = _write_outcomes(session, attempt_id, now, outcome_rows, per_row)
        _write_attempts(session, [item for item in claimed if item.row.id not in logged], attempt_id)
        for workspace_id, keys in refunds.items():
            usage.refund(session, workspace_id, keys)
        settle_one_time_consents(session, released, used=False)
        settle_one_time_consents(session, used, used=True)
        for workspace_id, ws_events in events.items():
            record_events(session, workspace_id, ws_events)


def _write_outcomes(session: Session, attempt_id: str, now: datetime, grouped: dict[str, list[int]],
                    per_row: list[dict[str, Any]]) -> set[int]:
    """Write the outcomes, fenced by the attempt id; returns the messages whose attempt was logged too."""
    fence = _outbox.c.attempt_id == attempt_id
    delivered = grouped.get("delivered", [])
    logged: set[int] = set()
    if delivered and session.get_bind().dialect.name == "postgresql":
        # The usual batch (all delivered at the first call) in one statement: outcome and attempt log.
        session.execute(text(
            "WITH done AS (UPDATE outbox SET state = 'delivered', sent_at = :now, delivered_at = :now, "
            "locked_until = NULL, reason = NULL, detail = NULL WHERE attempt_id = :attempt "
            "AND id IN (SELECT unnest(CAST(:ids AS bigint[]))) RETURNING workspace_id, id, attempts) "
            "INSERT INTO message_attempts (workspace_id, outbox_id, attempt_id, number, at, outcome) "
            "SELECT workspace_id, id, :attempt, attempts, :now, 'delivered' FROM done"),
            {"now": now, "attempt": attempt_id, "ids": "{" + ",".join(map(str, delivered)) + "}"})
        logged.update(delivered)
        delivered = []
    for start in range(0, len(delivered), 1000):
        session.execute(update(_outbox).where(fence, one_of(session, _outbox.c.id, delivered[start:start + 1000]))
                        .values(state="delivered", sent_at=now, delivered_at=now, locked_until=None,
                                reason=None, detail=None))
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for values in per_row:
        by_shape[tuple(sorted(values))].append(values)
    for shape, params in by_shape.items():
        columns: dict[str, Any] = {name: bindparam(name) for name in shape if name != "i"}
        stmt = (update(_outbox).where(fence, _outbox.c.id == bindparam("i"))
                .values(locked_until=None, **columns))
        session.execute(stmt, params)
    return logged


ATTEMPT_COLUMNS = (("workspace_id", "bigint"), ("outbox_id", "bigint"), ("attempt_id", "text"), ("number", "integer"),
                   ("at", "timestamptz"), ("outcome", "text"), ("error_code", "text"), ("error_message", "text"),
                   ("provider_message_id", "text"))


def _write_attempts(session: Session, claimed: list[_Claimed], attempt_id: str) -> None:
    rows = []
    for item in claimed:
        first = item.row.attempts + 1
        for offset, (at, result) in enumerate(item.attempts):
            rows.append((item.row.workspace_id, item.row.id, attempt_id, first + offset, at, result.outcome,
                         result.error_code, (result.error_message or None) and result.error_message[:1000],
                         result.provider_message_id))
    insert_many(session.connection(), "message_attempts", ATTEMPT_COLUMNS, rows)


def has_due_messages(session: Session) -> bool:
    return session.scalar(select(OutboxMessage.id).where(OutboxMessage.state.in_(DUE_STATES),
                                                         OutboxMessage.due_at <= clock.now()).limit(1)) is not None

