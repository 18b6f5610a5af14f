"""Entering customers into a journey: entry rules, the holdout, one active run per customer.

Every entry has a key: `once` journeys use the same key for every entry, so the unique
(journey, customer, entry_key) lets a customer in only once ever; other journeys key an entry by
its cause (the event, the enrolment request, the birthday of that year), so replaying a trigger
never enters anyone twice. A partial unique index allows one active run per journey and customer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db.bulk import Bulk
from siyu.journeys import actions
from siyu.journeys.definitions import Definition
from siyu.journeys.models import RUN_ACTIVE, JourneyRun
from siyu.journeys.sql import insert_returning
from siyu.kit import clock

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Entrant:
    customer_id: int
    cause: str  # what made them enter: "event:991", "manual:ab12", "date:birthday:2026-12-01"
    start_at: datetime | None = None  # later than now for scheduled entries (dates, replenishment)
    state: dict[str, Any] | None = None


@dataclass
class EnrolResult:
    entered: int = 0
    holdout: int = 0
    already_active: int = 0
    not_eligible: int = 0  # the entry rule refused them (once, or once per period)
    unknown: list[int] = field(default_factory=list)

    def add(self, other: EnrolResult) -> None:
        self.entered += other.entered
        self.holdout += other.holdout
        self.already_active += other.already_active
        self.not_eligible += other.not_eligible
        self.unknown.extend(other.unknown)

    def as_dict(self) -> dict[str, Any]:
        return {"entered": self.entered, "holdout": self.holdout, "already_active": self.already_active,
                "not_eligible": self.not_eligible, "unknown": self.unknown[:100], "unknown_count": len(self.unknown)}


def in_holdout(journey_id: int, customer_id: int, percent: float) -> bool:
    """Deterministic per journey and customer, so a customer stays on the same side on re-entry."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"holdout:{journey_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < percent * 100


def enrol(session: Session, workspace_id: int, journey_id: int, version_id: int, definition: Definition,
          entrants: Sequence[Entrant], now: datetime | None = None) -> EnrolResult:
    """Create runs for the entrants the entry rules let in (first entrant per customer wins)."""
    now = now or clock.now()
    result = EnrolResult()
    for start in range(0, len(entrants), CHUNK):
        result.add(_enrol_chunk(session, workspace_id, journey_id, version_id, definition,
                                entrants[start:start + CHUNK], now))
    return result


def _enrol_chunk(session: Session, workspace_id: int, journey_id: int, version_id: int, definition: Definition,
                 entrants: Sequence[Entrant], now: datetime) -> EnrolResult:
    result = EnrolResult()
    resolved = actions.resolve_customers(session, workspace_id, [e.customer_id for e in entrants])
    chosen: dict[int, Entrant] = {}
    for entrant in entrants:
        survivor = resolved.get(entrant.customer_id)
        if survivor is None:
            result.unknown.append(entrant.customer_id)
        elif survivor not in chosen:
            chosen[survivor] = entrant
    if not chosen:
        return result
    ids = sorted(chosen)
    entry = definition.entry
    recent: set[int] = set()
    if entry.mode == "once_per_period" and entry.period_days:
        cutoff = now - timedelta(days=entry.period_days)
        recent = {cid for cid, last in session.execute(
            select(JourneyRun.customer_id, func.max(JourneyRun.entered_at))
            .where(JourneyRun.journey_id == journey_id, JourneyRun.customer_id.in_(ids))
            .group_by(JourneyRun.customer_id)) if last is not None and _aware(last) > cutoff}
    goal = definition.goal
    rows: list[tuple[Any, ...]] = []
    for customer_id in ids:
        if customer_id in recent:
            result.not_eligible += 1
            continue
        entrant = chosen[customer_id]
        start_at = max(entrant.start_at, now) if entrant.start_at else now
        rows.append((workspace_id, journey_id, version_id, customer_id, RUN_ACTIVE, definition.start, start_at, 0,
                     {"cause": entrant.cause, **(entrant.state or {})},
                     in_holdout(journey_id, customer_id, definition.holdout_percent),
                     "once" if entry.mode == "once" else entrant.cause[:200], now, start_at,
                     goal.event_type if goal else None, start_at + goal.within if goal else None, 0))
    if not rows:
        return result
    # The unique keys refuse a second active run (the partial index) and an entry already made; only
    # then is it worth asking which (asking first, for every chunk, cost a scan of the journey's runs).
    inserted = insert_returning(Bulk(session), "journey_runs", RUN_INSERT_COLUMNS, rows, conflict="DO NOTHING",
                                returning="customer_id, holdout")
    result.entered = len(inserted)
    result.holdout = sum(1 for _, holdout in inserted if holdout)
    if len(inserted) < len(rows):
        entered = {int(customer_id) for customer_id, _ in inserted}
        skipped = [row[3] for row in rows if row[3] not in entered]
        active = _active_among(session, journey_id, skipped)
        result.already_active = len(active)
        result.not_eligible += len(skipped) - len(active)
    return result


def _active_among(session: Session, journey_id: int, customer_ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(customer_ids), CHUNK):
        found.update(session.scalars(select(JourneyRun.customer_id).where(
            JourneyRun.journey_id == journey_id, JourneyRun.status == RUN_ACTIVE,
            JourneyRun.customer_id.in_(customer_ids[start:start + CHUNK]))))
    return found


RUN_INSERT_COLUMNS = (("workspace_id", "bigint"), ("journey_id", "bigint"), ("version_id", "bigint"),
                      ("customer_id", "bigint"), ("status", "text"), ("step_id", "text"), ("due_at", "timestamptz"),
                      ("seq", "integer"), ("state", "jsonb"), ("holdout", "boolean"), ("entry_key", "text"),
                      ("entered_at", "timestamptz"), ("started_at", "timestamptz"), ("goal_event", "text"),
                      ("goal_until", "timestamptz"), ("attempts", "integer"))


def _aware(value: datetime) -> datetime:
    from siyu.kit.clock import ensure_utc

    return ensure_utc(value)
