"""Segments: dynamic (a rule, refreshed by the worker) and static (an uploaded list or a snapshot);
previews of unsaved rules; members, export, size trend; a customer's layers; merges.

Rules are checked with `siyu.rules.references.check_rule` (paths in every error, no unknown tag
or segment, no circular reference); refreshes run off the request path (`scheduling`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.customers.service import customers_by_id, identities_by_customer, list_customers
from siyu.db.base import table_of
from siyu.domains import domain_modules
from siyu.jobs.service import enqueue
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.rules.compiler import compile_rule
from siyu.rules.references import NodeKey, check_rule, users_of
from siyu.rules.tree import RuleInvalid, RuleIssue, to_json
from siyu.segments import refresh, scheduling
from siyu.segments.errors import (
    BuiltinSegment,
    SegmentInUse,
    SegmentIsDynamic,
    SegmentIsStatic,
    SegmentNameTaken,
    SegmentNotFound,
)
from siyu.segments.lifecycle import STAGE_LABELS, stage_of
from siyu.segments.models import (
    DYNAMIC,
    STATIC,
    CustomerLifecycle,
    CustomerRfm,
    Segment,
    SegmentMembership,
    SegmentSize,
)
from siyu.segments.rfm import CLASS_LABELS, rfm_of
from siyu.tags import service as tags
from siyu.workspaces.service import WorkspaceContext

CHUNK = 500
PREVIEW_SAMPLE = 20
EXPORT_PAGE = 1000
REEVALUATE_JOB = "segments.reevaluate"
memberships = table_of(SegmentMembership)


# -- reading ---------------------------------------------------------------------------------------

def get_segment(session: Session, workspace_id: int, segment_id: int) -> Segment:
    segment = session.scalar(select(Segment).where(Segment.workspace_id == workspace_id, Segment.id == segment_id))
    if segment is None:
        raise SegmentNotFound(f"no segment {segment_id}", field="segment_id")
    return segment


def list_segments(session: Session, workspace_id: int, kind: str | None = None) -> list[Segment]:
    stmt = select(Segment).where(Segment.workspace_id == workspace_id)
    if kind is not None:
        stmt = stmt.where(Segment.kind == kind)
    return list(session.scalars(stmt.order_by(Segment.builtin_key.is_not(None), Segment.name)))


def member_ids(workspace_id: int, segment_id: int) -> Select[Any]:
    """A SELECT of a segment's current members, for `list_customers(customer_ids=...)` and other domains."""
    return select(memberships.c.customer_id).where(memberships.c.workspace_id == workspace_id,
                                                   memberships.c.segment_id == segment_id,
                                                   memberships.c.exited_at.is_(None))


def members(session: Session, workspace_id: int, segment_id: int, cursor: str | None = None,
            limit: int = 50) -> Any:
    get_segment(session, workspace_id, segment_id)
    return list_customers(session, workspace_id, customer_ids=member_ids(workspace_id, segment_id), cursor=cursor,
                          limit=limit)


def size_trend(session: Session, workspace_id: int, segment_id: int, days: int = 30) -> list[SegmentSize]:
    get_segment(session, workspace_id, segment_id)
    return list(reversed(list(session.scalars(
        select(SegmentSize).where(SegmentSize.workspace_id == workspace_id, SegmentSize.segment_id == segment_id)
        .order_by(SegmentSize.day.desc()).limit(days)))))


def size_trends(session: Session, workspace_id: int, days: int = 14) -> dict[int, list[int]]:
    """Sizes of the last `days` refreshed days of every segment, oldest first (list pages' sparklines)."""
    since = clock.now().date() - timedelta(days=days)
    trends: dict[int, list[int]] = {}
    for segment_id, size in session.execute(select(SegmentSize.segment_id, SegmentSize.size).where(
            SegmentSize.workspace_id == workspace_id, SegmentSize.day >= since)
            .order_by(SegmentSize.segment_id, SegmentSize.day)):
        trends.setdefault(segment_id, []).append(size)
    return trends


# -- checking and previewing rules --------------------------------------------------------------------

@dataclass
class RuleCheck:
    valid: bool
    issues: list[RuleIssue]
    rule: dict[str, Any] | None  # the canonical form, when valid


def validate_rule(session: Session, ctx: WorkspaceContext, raw: Any, *, segment_id: int | None = None,
                  tag_id: int | None = None) -> RuleCheck:
    """Check a rule without saving it; with the segment or tag it is meant for, circular references too."""
    owner: NodeKey | None = ("segment", segment_id) if segment_id else ("tag", tag_id) if tag_id else None
    try:
        return RuleCheck(True, [], to_json(check_rule(session, ctx.id, raw, owner=owner)))
    except RuleInvalid as exc:
        return RuleCheck(False, exc.issues, None)


# -- preview -----------------------------------------------------------------------------------------

@dataclass
class Preview:
    count: int
    sample: list[Any]


def preview_rule(session: Session, ctx: WorkspaceContext, raw: Any, sample: int = PREVIEW_SAMPLE) -> Preview:
    """How many customers an unsaved rule selects, and the newest `sample` of them."""
    rule = check_rule(session, ctx.id, raw, owner=None)
    compiled = compile_rule(rule, workspace_id=ctx.id, timezone=ctx.timezone,
                            dialect=session.get_bind().dialect.name, now=clock.now())
    # One evaluation of the rule gives both the count and the newest ids of the sample.
    selected = compiled.select().subquery()
    rows = session.execute(select(selected.c.id, func.count().over()).order_by(selected.c.id.desc())
                           .limit(max(sample, 1))).all()
    count = int(rows[0][1]) if rows else 0
    found = customers_by_id(session, ctx.id, [int(r[0]) for r in rows[:sample]])
    return Preview(count, [found[int(r[0])] for r in rows[:sample] if int(r[0]) in found])


# -- writing -----------------------------------------------------------------------------------------

def create_segment(session: Session, ctx: WorkspaceContext, *, name: str, actor: str, kind: str = DYNAMIC,
                   rule: Any = None, description: str = "", refresh_minutes: int = 60,
                   customer_ids: Iterable[int] = (), identities: Iterable[tuple[str, str]] = (),
                   source: str | None = None) -> Segment:
    """A dynamic segment (refreshed in the background from now on) or a static one from a list."""
    name = _name(session, ctx.id, name)
    if kind not in (DYNAMIC, STATIC):
        raise ValidationFailed("kind is dynamic or static", field="kind")
    if kind == DYNAMIC and rule is None:
        raise ValidationFailed("a dynamic segment needs a rule", field="rule")
    if kind == STATIC and rule is not None:
        raise SegmentIsStatic("a static segment has no rule; its members are a list", field="rule")
    stored = to_json(check_rule(session, ctx.id, rule, owner=None)) if rule is not None else None
    now = clock.now()
    segment = Segment(workspace_id=ctx.id, name=name, description=description, kind=kind, rule=stored,
                      rule_version=1 if stored else 0, source=source or ("rule" if kind == DYNAMIC else "upload"),
                      refresh_minutes=_refresh_minutes(refresh_minutes), size=0,
                      created_by=actor, created_at=now, updated_at=now)
    session.add(segment)
    session.flush()
    record_audit(session, ctx.id, actor, "segment.created", "segment", segment.id, {"name": name, "kind": kind})
    if kind == DYNAMIC:
        scheduling.schedule_refresh(session, ctx, [("segment", segment.id)])
    else:
        change_static_members(session, ctx, segment.id, actor=actor, add_ids=customer_ids, add_identities=identities)
    return segment


def update_segment(session: Session, ctx: WorkspaceContext, segment_id: int, *, actor: str,
                   name: str | None = None, description: str | None = None, rule: Any = None,
                   refresh_minutes: int | None = None) -> Segment:
    segment = get_segment(session, ctx.id, segment_id)
    if name is not None and name.strip() != segment.name:
        segment.name = _name(session, ctx.id, name)
    if description is not None:
        segment.description = description
    if refresh_minutes is not None:
        segment.refresh_minutes = _refresh_minutes(refresh_minutes)
    if rule is not None:
        if segment.kind == STATIC:
            raise SegmentIsStatic("a static segment has no rule; its members are a list", field="rule")
        if segment.builtin_key:
            raise BuiltinSegment(f"{segment.name!r} is ready-made; its rule cannot change", field="rule")
        stored = to_json(check_rule(session, ctx.id, rule, owner=("segment", segment.id)))
        if stored != segment.rule:
            segment.rule, segment.rule_version = stored, segment.rule_version + 1
            scheduling.schedule_refresh(session, ctx, [("segment", segment.id)])
    segment.updated_at = clock.now()
    session.flush()
    record_audit(session, ctx.id, actor, "segment.updated", "segment", segment.id, {"name": segment.name})
    return segment


def delete_segment(session: Session, ctx: WorkspaceContext, segment_id: int, actor: str) -> None:
    """Delete a segment and its membership history — refused, naming them, while rules or journeys use it."""
    segment = get_segment(session, ctx.id, segment_id)
    users = segment_users(session, ctx.id, segment.id)
    if users:
        raise SegmentInUse(f"segment {segment.name!r} is used by {', '.join(users)}", field="segment_id",
                           details={"used_by": users})
    record_audit(session, ctx.id, actor, "segment.deleted", "segment", segment.id,
                 {"name": segment.name, "size": segment.size})
    session.delete(segment)
    session.flush()


def segment_users(session: Session, workspace_id: int, segment_id: int) -> list[str]:
    """Who uses a segment: rules of auto tags and segments, and any domain exposing
    `siyu.<domain>.references.segment_users(session, workspace_id, segment_id)` (journeys)."""
    users = users_of(session, workspace_id, ("segment", segment_id))
    for module in domain_modules("references"):
        finder = getattr(module, "segment_users", None)
        if finder is not None:
            users.extend(finder(session, workspace_id, segment_id))
    return users


def refresh_now(session: Session, ctx: WorkspaceContext, segment_id: int) -> str | None:
    """Queue a refresh of a dynamic segment and of what depends on it; returns the chain id."""
    segment = get_segment(session, ctx.id, segment_id)
    if segment.kind != DYNAMIC:
        raise SegmentIsStatic(f"{segment.name!r} is static; it has nothing to refresh", field="segment_id")
    return scheduling.schedule_refresh(session, ctx, [("segment", segment.id)])


@dataclass
class MemberChange:
    added: int
    removed: int
    unknown: list[str]


def change_static_members(session: Session, ctx: WorkspaceContext, segment_id: int, *, actor: str,
                          add_ids: Iterable[int] = (), add_identities: Iterable[tuple[str, str]] = (),
                          remove_ids: Iterable[int] = (), remove_identities: Iterable[tuple[str, str]] = ()
                          ) -> MemberChange:
    """Add or remove members of a static segment by id or identity (a CSV upload)."""
    segment = get_segment(session, ctx.id, segment_id)
    if segment.kind != STATIC:
        raise SegmentIsDynamic(f"members of {segment.name!r} follow its rule", field="segment_id")
    to_add, unknown = tags.resolve_customers(session, ctx.id, customer_ids=add_ids, identities=add_identities)
    to_remove, unknown_removed = tags.resolve_customers(session, ctx.id, customer_ids=remove_ids,
                                                        identities=remove_identities)
    current = _current_of(session, segment.id, set(to_add) | set(to_remove))
    now = clock.now()
    entered = sorted(set(to_add) - set(current))
    exited: list[tuple[int, int | None]] = [(cid, current[cid]) for cid in sorted(set(to_remove) & set(current))]
    added, removed = refresh.write_segment_changes(
        session, ctx, [refresh.SegmentChange(segment.id, segment.name, entered, exited)], now)
    session.refresh(segment)
    refresh.record_size(session, ctx, segment.id, segment.size, now)
    segment.last_refreshed_at = now
    _reevaluate_later(session, ctx, entered + [cid for cid, _ in exited])
    record_audit(session, ctx.id, actor, "segment.members_changed", "segment", segment.id,
                 {"added": added, "removed": removed})
    return MemberChange(added, removed, unknown + unknown_removed)


def tag_members(session: Session, ctx: WorkspaceContext, segment_id: int, tag_id: int, *, actor: str,
                remove: bool = False) -> tags.TaggingResult:
    """Put a manual tag on (or take it off) every current member of a segment."""
    get_segment(session, ctx.id, segment_id)
    ids = [int(i) for i in session.scalars(member_ids(ctx.id, segment_id))]
    change = tags.untag_customers if remove else tags.tag_customers
    return change(session, ctx, tag_id, actor=actor, customer_ids=ids)


def snapshot_segment(session: Session, ctx: WorkspaceContext, segment_id: int, *, name: str, actor: str) -> Segment:
    """A static copy of a segment's members as they are now."""
    source = get_segment(session, ctx.id, segment_id)
    ids = [int(i) for i in session.scalars(member_ids(ctx.id, source.id).order_by(memberships.c.customer_id))]
    return create_segment(session, ctx, name=name, actor=actor, kind=STATIC, customer_ids=ids, source="snapshot",
                          description=f"snapshot of {source.name} at {clock.now().isoformat(timespec='minutes')}")


def _current_of(session: Session, segment_id: int, customer_ids: set[int]) -> dict[int, int]:
    """customer id → open stay id, for those of `customer_ids` in the segment."""
    found: dict[int, int] = {}
    ids = sorted(customer_ids)
    for start in range(0, len(ids), CHUNK):
        found.update({int(cid): int(mid) for cid, mid in session.execute(
            select(memberships.c.customer_id, memberships.c.id).where(
                memberships.c.segment_id == segment_id, memberships.c.exited_at.is_(None),
                memberships.c.customer_id.in_(ids[start:start + CHUNK])))})
    return found


def _reevaluate_later(session: Session, ctx: WorkspaceContext, customer_ids: list[int]) -> None:
    """Rules may read this membership: re-evaluate these customers off the request path."""
    for start in range(0, len(customer_ids), 1000):
        enqueue(session, REEVALUATE_JOB, {"workspace_id": ctx.id, "customer_ids": customer_ids[start:start + 1000]},
                workspace_id=ctx.id)


def _name(session: Session, workspace_id: int, name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 100:
        raise ValidationFailed("name must be 1-100 characters", field="name")
    if session.scalar(select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.name == cleaned)):
        raise SegmentNameTaken(f"a segment named {cleaned!r} exists", field="name")
    return cleaned


def _refresh_minutes(minutes: int) -> int:
    if not 5 <= minutes <= 7 * 24 * 60:
        raise ValidationFailed("refresh_minutes must be between 5 and 10080", field="refresh_minutes")
    return minutes


# -- export ------------------------------------------------------------------------------------------

def export_rows(session: Session, ctx: WorkspaceContext, segment_id: int, identity_types: list[str]
                ) -> Iterator[list[str]]:
    """CSV rows of a segment's members: id, name, then one column per chosen identity type
    (several values of one type are joined with '|'). Streams page by page."""
    get_segment(session, ctx.id, segment_id)
    yield ["customer_id", "name", *identity_types]
    last = 0
    while True:
        ids = [int(i) for i in session.scalars(member_ids(ctx.id, segment_id).where(memberships.c.customer_id > last)
                                               .order_by(memberships.c.customer_id).limit(EXPORT_PAGE))]
        if not ids:
            return
        profiles = customers_by_id(session, ctx.id, ids)
        known = identities_by_customer(session, ctx.id, ids) if identity_types else {}
        for cid in ids:
            values = {t: "|".join(i.value for i in known.get(cid, []) if i.type == t) for t in identity_types}
            customer = profiles.get(cid)
            yield [str(cid), (customer.name or "") if customer else "", *(values[t] for t in identity_types)]
        last = ids[-1]


# -- a customer's layers -------------------------------------------------------------------------------

def customer_layers(session: Session, workspace_id: int, customer_id: int) -> dict[str, Any]:
    """Tags, segments, lifecycle stage and RFM of one customer (for the profile page and API)."""
    from siyu.customers.service import resolve_customer_id

    survivor = resolve_customer_id(session, workspace_id, customer_id)
    segments = session.execute(select(Segment, memberships.c.entered_at)
                               .join(memberships, memberships.c.segment_id == Segment.id)
                               .where(Segment.workspace_id == workspace_id, memberships.c.customer_id == survivor,
                                      memberships.c.exited_at.is_(None)).order_by(Segment.name)).all()
    stage = stage_of(session, workspace_id, survivor)
    scores = rfm_of(session, workspace_id, survivor)
    return {
        "customer_id": survivor,
        "tags": [{"id": t.id, "name": t.name, "kind": t.kind, "group_id": t.group_id, "source": a.source,
                  "added_by": a.added_by, "added_at": a.added_at} for t, a in tags.tags_of(session, workspace_id,
                                                                                           survivor)],
        "segments": [{"id": s.id, "name": s.name, "kind": s.kind, "entered_at": entered} for s, entered in segments],
        "lifecycle": None if stage is None else {"stage": stage.stage, "label": STAGE_LABELS[stage.stage],
                                                 "previous_stage": stage.previous_stage, "since": stage.since},
        "rfm": None if scores is None else {
            "recency_days": round(scores.recency_days, 1), "frequency": scores.frequency,
            "monetary_fen": scores.monetary_fen, "r_score": scores.r_score, "f_score": scores.f_score,
            "m_score": scores.m_score, "class": scores.rfm_class, "label": CLASS_LABELS.get(scores.rfm_class, "")},
    }


# -- merges ------------------------------------------------------------------------------------------

def apply_merge(session: Session, ctx: WorkspaceContext, survivor_id: int, absorbed_id: int) -> None:
    """After a merge: manual tags and static memberships move to the survivor, the absorbed profile's
    other stays close (silently: the person did not leave), and the survivor is re-evaluated."""
    now = clock.now()
    tags.move_tags_on_merge(session, ctx, survivor_id, absorbed_id)
    static = session.execute(select(Segment.id, Segment.name).join(memberships, memberships.c.segment_id == Segment.id)
                             .where(Segment.workspace_id == ctx.id, Segment.kind == STATIC,
                                    memberships.c.customer_id == absorbed_id, memberships.c.exited_at.is_(None))).all()
    closed = session.execute(update(memberships).where(memberships.c.workspace_id == ctx.id,
                                                       memberships.c.customer_id == absorbed_id,
                                                       memberships.c.exited_at.is_(None))
                             .values(exited_at=now).returning(memberships.c.segment_id)).scalars().all()
    for segment_id in closed:
        session.execute(update(Segment).where(Segment.id == segment_id).values(size=Segment.size - 1))
    for segment_id, name in static:
        if not _current_of(session, segment_id, {survivor_id}):
            refresh.write_segment_changes(session, ctx, [refresh.SegmentChange(segment_id, name, [survivor_id], [])],
                                          now)
    for model in (CustomerLifecycle, CustomerRfm):
        session.execute(delete(model).where(model.workspace_id == ctx.id, model.customer_id == absorbed_id))
    refresh.reevaluate_customers(session, ctx, [survivor_id], now)
