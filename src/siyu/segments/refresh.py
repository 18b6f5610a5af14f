"""The refresh engine of rule-bound sets: dynamic segments and auto tags ("targets").

Two ways in, one way out:

- `refresh_target` re-evaluates one target for the whole workspace. The rule's answer and the
  current members are compared inside the database (UNION ALL + GROUP BY), so only the changes —
  who enters, who leaves — come back to Python to be written.
- `reevaluate_customers` re-evaluates a few customers (those touched by new events) across every
  target at once: one statement per dependency level, with a 0/1 column per target, each rule
  restricted to those customers by `scope_ids`. Compiled rules are cached per rule version.

Both write changes with `write_segment_changes` / `tags.service.apply_rule_changes`, inside the
caller's transaction: readers see the membership before or after a refresh, never half of it.
Entering and leaving a segment is recorded as `segment_entered` / `segment_exited` events on the
customer's timeline (stable ids `seg:<segment>:<customer>:enter:<membership>`) and published as
domain events of the same names for journeys.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Text, bindparam, cast, func, literal, null, select, text, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.events.service import SystemEvent, record_system_events
from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.kit.clock import ensure_utc
from siyu.kit.timefmt import local
from siyu.rules.compiler import SCOPE, CompiledRule, compile_rule, customers, evaluation_select
from siyu.rules.references import NodeKey, dependency_order, referenced
from siyu.rules.tree import Rule, parse_rule
from siyu.segments.lifecycle import update_lifecycle
from siyu.segments.models import DYNAMIC, Segment, SegmentMembership, SegmentSize
from siyu.tags import service as tags
from siyu.tags.models import AUTO, CustomerTag, Tag
from siyu.workspaces.service import WorkspaceContext

CHUNK = 500
PUBLISH_CHUNK = 1000
memberships = table_of(SegmentMembership)


@dataclass(frozen=True)
class Target:
    kind: str  # "segment" | "tag"
    id: int
    name: str
    rule: Rule
    version: int
    refresh_minutes: int
    last_refreshed_at: datetime | None
    fingerprint: str

    @property
    def key(self) -> NodeKey:
        return (self.kind, self.id)


@dataclass
class RefreshOutcome:
    key: NodeKey
    entered: int
    exited: int
    size: int
    ms: int


_parsed: dict[str, Rule] = {}
_compiled: dict[tuple[Any, ...], CompiledRule] = {}
_statements: dict[tuple[Any, ...], Any] = {}
CACHE_LIMIT = 4096


def load_targets(session: Session, workspace_id: int) -> list[Target]:
    """Every auto tag and dynamic segment of the workspace, with its parsed rule. Rules are read as
    text and parsed once per distinct text (ids and versions alone can repeat: a recreated workspace)."""
    tags_part = select(literal("tag"), Tag.id, Tag.name, cast(Tag.rule, Text), Tag.rule_version, Tag.refresh_minutes,
                       Tag.last_refreshed_at).where(Tag.workspace_id == workspace_id, Tag.kind == AUTO,
                                                    Tag.rule.is_not(None))
    segments_part = select(literal("segment"), Segment.id, Segment.name, cast(Segment.rule, Text),
                           Segment.rule_version, Segment.refresh_minutes, Segment.last_refreshed_at).where(
        Segment.workspace_id == workspace_id, Segment.kind == DYNAMIC, Segment.rule.is_not(None))
    targets = []
    for kind, target_id, name, raw, version, minutes, refreshed in session.execute(union_all(tags_part,
                                                                                             segments_part)):
        fingerprint = hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()
        rule = _parsed.get(fingerprint)
        if rule is None:
            if len(_parsed) > CACHE_LIMIT:
                _parsed.clear()
            rule = _parsed[fingerprint] = parse_rule(orjson.loads(raw))
        targets.append(Target(kind, target_id, name, rule, version, minutes, ensure_utc(refreshed) if refreshed
                              else None, fingerprint))
    return sorted(targets, key=lambda t: t.key)


def target_levels(targets: list[Target]) -> list[list[Target]]:
    by_key = {t.key: t for t in targets}
    edges = {t.key: referenced(t.rule) for t in targets}
    return [[by_key[k] for k in level] for level in dependency_order(edges, by_key)]


def compiled_for(target: Target, ctx: WorkspaceContext, dialect: str, scoped: bool) -> CompiledRule:
    key = (ctx.id, ctx.timezone, dialect, target.kind, target.id, target.fingerprint, scoped)
    hit = _compiled.get(key)
    if hit is None:
        if len(_compiled) > CACHE_LIMIT:
            _compiled.clear()
            _statements.clear()
        hit = _compiled[key] = compile_rule(target.rule, workspace_id=ctx.id, timezone=ctx.timezone,
                                            dialect=dialect, now=clock.now(), prefix=f"{target.kind[0]}{target.id}",
                                            scoped=scoped)
    return hit


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# -- the whole workspace -------------------------------------------------------------------------

def refresh_target(session: Session, ctx: WorkspaceContext, target: Target, now: datetime | None = None
                   ) -> RefreshOutcome:
    """Re-evaluate one target for every customer and write the difference."""
    now = now or clock.now()
    started = time.perf_counter()
    model: type[Tag] | type[Segment] = Tag if target.kind == "tag" else Segment
    session.execute(select(model.id).where(model.id == target.id).with_for_update())  # one refresh at a time
    compiled = compiled_for(target, ctx, _dialect(session), scoped=False)
    rule_side = compiled.select().add_columns(literal(1).label("side"), cast(null(), BigInteger).label("mid"))
    if target.kind == "segment":
        current = select(memberships.c.customer_id, literal(2), memberships.c.id).where(
            memberships.c.workspace_id == ctx.id, memberships.c.segment_id == target.id,
            memberships.c.exited_at.is_(None))
    else:
        current = select(CustomerTag.customer_id, literal(2), cast(null(), BigInteger)).where(
            CustomerTag.workspace_id == ctx.id, CustomerTag.tag_id == target.id)
    both = union_all(rule_side, current).subquery()
    side = func.sum(both.c.side)
    diff = select(both.c.id, side, func.max(both.c.mid)).group_by(both.c.id).having(side != 3)
    entered: list[int] = []
    exited: list[tuple[int, int | None]] = []
    for customer_id, total, membership_id in session.execute(diff, compiled.params(now)):
        if total == 1:
            entered.append(int(customer_id))
        else:
            exited.append((int(customer_id), membership_id))
    if target.kind == "segment":
        entered_n, exited_n = write_segment_changes(
            session, ctx, [SegmentChange(target.id, target.name, sorted(entered), exited)], now)
    else:
        entered_n, exited_n = tags.apply_rule_changes(
            session, ctx, [tags.RuleChange(target.id, target.name, sorted(entered), sorted(c for c, _ in exited))], now)
    ms = int((time.perf_counter() - started) * 1000)
    size = _record_refreshed(session, ctx, target, now, ms)
    return RefreshOutcome(target.key, entered_n, exited_n, size, ms)


def _record_refreshed(session: Session, ctx: WorkspaceContext, target: Target, now: datetime, ms: int) -> int:
    if target.kind == "tag":
        size = tags.count_tagged(session, ctx.id, target.id)
        session.execute(update(Tag).where(Tag.id == target.id).values(
            size=size, last_refreshed_at=now, last_refresh_status="ok", last_error=None))
        return size
    size = int(session.scalar(select(func.count()).select_from(memberships).where(
        memberships.c.segment_id == target.id, memberships.c.exited_at.is_(None))) or 0)
    session.execute(update(Segment).where(Segment.id == target.id).values(
        size=size, last_refreshed_at=now, last_refresh_status="ok", last_error=None, last_refresh_ms=ms))
    record_size(session, ctx, target.id, size, now)
    return size


def record_size(session: Session, ctx: WorkspaceContext, segment_id: int, size: int, now: datetime) -> None:
    """Keep the day's size for the trend (the last write of a workspace-local day wins)."""
    day = local(now, ctx.timezone).date()
    insert_fn = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    stmt = insert_fn(SegmentSize).values(segment_id=segment_id, day=day, workspace_id=ctx.id, size=size)
    session.execute(stmt.on_conflict_do_update(index_elements=["segment_id", "day"], set_={"size": size}))


def record_failure(session: Session, kind: str, target_id: int, error: BaseException) -> None:
    """A refresh that failed is visible on its segment or tag, never silent."""
    model: type[Tag] | type[Segment] = Tag if kind == "tag" else Segment
    text = f"{type(error).__name__}: {error}"[:2000]
    session.execute(update(model).where(model.id == target_id).values(last_refresh_status="failed",
                                                                      last_error=text))


# -- writing segment changes ---------------------------------------------------------------------

@dataclass
class SegmentChange:
    """Who enters a segment, and who leaves it (with their open stay's id when known)."""

    segment_id: int
    segment_name: str
    entered: list[int]
    exited: list[tuple[int, int | None]]


def write_segment_changes(session: Session, ctx: WorkspaceContext, changes: list[SegmentChange], now: datetime
                          ) -> tuple[int, int]:
    """Open stays for who entered, close the open stays of who left — for any number of segments in a
    handful of statements — then record and publish both. A concurrent refresh that got there first
    makes these writes no-ops, not duplicates. Returns (stays opened, stays closed)."""
    insert_fn = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    entering = [{"workspace_id": ctx.id, "segment_id": c.segment_id, "customer_id": cid, "entered_at": now,
                 "exited_at": None} for c in changes for cid in c.entered]
    opened: list[tuple[int, int, int]] = []  # (stay id, segment id, customer id)
    for start in range(0, len(entering), CHUNK * 4):
        stmt = (insert_fn(memberships)
                .on_conflict_do_nothing(index_elements=["segment_id", "customer_id"],
                                        index_where=memberships.c.exited_at.is_(None))
                .returning(memberships.c.id, memberships.c.segment_id, memberships.c.customer_id))
        opened.extend(_stay(row) for row in session.execute(stmt, entering[start:start + CHUNK * 4]))
    closing = [mid for c in changes for _, mid in c.exited if mid is not None]
    closed: list[tuple[int, int, int]] = []
    returning = (memberships.c.id, memberships.c.segment_id, memberships.c.customer_id)
    for start in range(0, len(closing), CHUNK):
        closed.extend(_stay(row) for row in session.execute(
            update(memberships).where(memberships.c.id.in_(closing[start:start + CHUNK]),
                                      memberships.c.exited_at.is_(None)).values(exited_at=now).returning(*returning)))
    for change in changes:  # stays whose id the caller did not know
        unknown = [cid for cid, mid in change.exited if mid is None]
        for start in range(0, len(unknown), CHUNK):
            closed.extend(_stay(row) for row in session.execute(
                update(memberships).where(memberships.c.segment_id == change.segment_id,
                                          memberships.c.customer_id.in_(unknown[start:start + CHUNK]),
                                          memberships.c.exited_at.is_(None)).values(exited_at=now)
                .returning(*returning)))
    deltas: dict[int, int] = defaultdict(int)
    for _, segment_id, _ in opened:
        deltas[segment_id] += 1
    for _, segment_id, _ in closed:
        deltas[segment_id] -= 1
    if deltas:
        segments = table_of(Segment)
        session.execute(update(segments).where(segments.c.id == bindparam("sid"))
                        .values(size=segments.c.size + bindparam("delta")),
                        [{"sid": sid, "delta": d} for sid, d in sorted(deltas.items()) if d])
    names = {c.segment_id: c.segment_name for c in changes}
    _announce(session, ctx, names, "segment_entered", "enter", opened, now)
    _announce(session, ctx, names, "segment_exited", "exit", closed, now)
    return len(opened), len(closed)


def _stay(row: Any) -> tuple[int, int, int]:
    return int(row[0]), int(row[1]), int(row[2])


def _announce(session: Session, ctx: WorkspaceContext, names: dict[int, str], event_type: str, verb: str,
              stays: list[tuple[int, int, int]], now: datetime) -> None:
    """Timeline events for the stays (one write), then one domain event per segment and chunk."""
    stays = sorted(stays, key=lambda s: (s[1], s[0]))
    event_ids: dict[int, int] = {}
    for start in range(0, len(stays), PUBLISH_CHUNK * 10):
        chunk = stays[start:start + PUBLISH_CHUNK * 10]
        rows = record_system_events(session, ctx, [
            SystemEvent(f"seg:{sid}:{cid}:{verb}:{mid}", event_type, cid, now,
                        {"segment_id": sid, "segment_name": names[sid], "membership_id": mid})
            for mid, sid, cid in chunk])
        event_ids.update(zip((mid for mid, _, _ in chunk), rows, strict=False))
    by_segment: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for mid, sid, cid in stays:
        by_segment[sid].append((mid, cid))
    for sid, entries in by_segment.items():
        for start in range(0, len(entries), PUBLISH_CHUNK):
            part = entries[start:start + PUBLISH_CHUNK]
            publish(session, event_type, {"workspace_id": ctx.id, "segment_id": sid,
                                          "event_ids": [event_ids[mid] for mid, _ in part if mid in event_ids],
                                          "customer_ids": sorted(cid for _, cid in part)},
                    workspace_id=ctx.id, key=f"seg:{sid}:{verb}:{part[0][0]}:{part[-1][0]}")


# -- a few customers, every target ---------------------------------------------------------------

@dataclass
class ReevaluationOutcome:
    customers: int = 0
    entered: int = 0
    exited: int = 0


def reevaluate_customers(session: Session, ctx: WorkspaceContext, customer_ids: Iterable[int],
                         now: datetime | None = None) -> ReevaluationOutcome:
    """Bring lifecycle stage, auto tags and dynamic segments of these customers up to date."""
    now = now or clock.now()
    outcome = ReevaluationOutcome()
    wanted = sorted(set(customer_ids))
    if wanted and _dialect(session) == "postgresql":
        # The same few statements run for every batch of events: once the driver has prepared them,
        # PostgreSQL reuses one plan instead of planning the fifty-rule statement at every run.
        session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    targets = load_targets(session, ctx.id) if wanted else []
    for start in range(0, len(wanted), CHUNK):
        live, members, stays = _current_members(session, ctx, targets, wanted[start:start + CHUNK])
        if not live:
            continue
        outcome.customers += len(live)
        update_lifecycle(session, ctx, now, customer_ids=live)
        if targets:
            _reevaluate_chunk(session, ctx, targets, live, members, stays, now, outcome)
    return outcome


def _reevaluate_chunk(session: Session, ctx: WorkspaceContext, targets: list[Target], ids: list[int],
                      members: dict[NodeKey, set[int]], stays: dict[tuple[int, int], int], now: datetime,
                      outcome: ReevaluationOutcome) -> None:
    dialect = _dialect(session)
    for level in target_levels(targets):
        compiled = [compiled_for(t, ctx, dialect, scoped=True) for t in level]
        statement_key = (ctx.id, ctx.timezone, dialect, tuple((t.key, t.fingerprint) for t in level))
        stmt = _statements.get(statement_key)
        if stmt is None:
            stmt = _statements[statement_key] = evaluation_select(compiled, ctx.id)
        params: dict[str, Any] = {SCOPE: ids}
        for rule in compiled:
            params.update(rule.params(now))
        holds: dict[NodeKey, set[int]] = defaultdict(set)
        for row in session.execute(stmt, params):
            for target, flag in zip(level, row[1:], strict=True):
                if flag:
                    holds[target.key].add(int(row[0]))
        segment_changes: list[SegmentChange] = []
        tag_changes: list[tags.RuleChange] = []
        for target in level:
            now_in, was_in = holds[target.key], members[target.key]
            entered, left = sorted(now_in - was_in), sorted(was_in - now_in)
            if target.kind == "segment" and (entered or left):
                segment_changes.append(SegmentChange(target.id, target.name, entered,
                                                     [(cid, stays.get((target.id, cid))) for cid in left]))
            elif entered or left:
                tag_changes.append(tags.RuleChange(target.id, target.name, entered, left))
        for n_in, n_out in (write_segment_changes(session, ctx, segment_changes, now) if segment_changes else (0, 0),
                            tags.apply_rule_changes(session, ctx, tag_changes, now) if tag_changes else (0, 0)):
            outcome.entered += n_in
            outcome.exited += n_out


def _current_members(session: Session, ctx: WorkspaceContext, targets: list[Target], ids: list[int]
                     ) -> tuple[list[int], dict[NodeKey, set[int]], dict[tuple[int, int], int]]:
    """In one round trip: which of `ids` are live customers of the workspace (not merged away), which
    of them are in each target now, and the open stay id of each segment membership."""
    members: dict[NodeKey, set[int]] = defaultdict(set)
    stays: dict[tuple[int, int], int] = {}
    segment_ids = [t.id for t in targets if t.kind == "segment"]
    tag_ids = [t.id for t in targets if t.kind == "tag"]
    parts: list[Any] = [select(literal("live"), literal(0), customers.c.id, cast(null(), BigInteger)).where(
        customers.c.workspace_id == ctx.id, customers.c.merged_into_id.is_(None), customers.c.id.in_(ids))]
    if segment_ids:
        parts.append(select(literal("segment"), memberships.c.segment_id, memberships.c.customer_id,
                            memberships.c.id).where(
            memberships.c.customer_id.in_(ids), memberships.c.exited_at.is_(None),
            memberships.c.segment_id.in_(segment_ids)))
    if tag_ids:
        parts.append(select(literal("tag"), CustomerTag.tag_id, CustomerTag.customer_id, cast(null(), BigInteger))
                     .where(CustomerTag.customer_id.in_(ids), CustomerTag.tag_id.in_(tag_ids)))
    query: Any = union_all(*parts) if len(parts) > 1 else parts[0]
    live: list[int] = []
    for row in session.execute(query).all():
        kind, target_id, cid, mid = str(row[0]), int(row[1]), int(row[2]), row[3]
        if kind == "live":
            live.append(cid)
            continue
        members[(kind, target_id)].add(cid)
        if mid is not None:
            stays[(target_id, cid)] = int(mid)
    return sorted(live), members, stays
