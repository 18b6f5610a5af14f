"""Journeys: drafts, checks, versions, the journey's life (publish, pause, resume, archive), manual
enrolment, the run inspector and moving runs between versions.

A draft may be saved with issues (an editor saves work in progress); every issue is reported with
its step id. Publishing checks the draft — its graph and every reference to another domain — and
refuses while anything is wrong. Each publish makes a new immutable version: runs in flight finish
on the version they started on, unless an operator moves them explicitly (`migrate_runs`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.journeys import actions, enrolment
from siyu.journeys.definitions import Definition, Issue, parse_definition, references
from siyu.journeys.errors import (
    JourneyInvalid,
    JourneyNameTaken,
    JourneyNotFound,
    JourneyStateConflict,
    MigrationInvalid,
    RunNotFound,
)
from siyu.journeys.models import (
    ACTIVE,
    ARCHIVED,
    DRAFT,
    PAUSED,
    RUN_ACTIVE,
    RUN_EXITED,
    Journey,
    JourneyRun,
    JourneyStepLog,
    JourneyVersion,
    StaffTask,
)
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.kit.pagination import decode_cursor, encode_cursor
from siyu.workspaces.service import WorkspaceContext

MAX_ENROL = 10_000
KIND_LABELS = {"segment": "segment", "tag": "tag", "coupon_template": "coupon template",
               "message_template": "message template", "user": "user"}


# -- checking --------------------------------------------------------------------------------------

def check_definition(session: Session, ctx: WorkspaceContext, raw: Any) -> tuple[Definition | None, list[Issue]]:
    """The graph's issues and, when it has none, those of its references to other domains."""
    definition, issues = parse_definition(raw)
    if definition is None:
        return None, issues
    wanted: dict[str, set[int]] = {}
    for _, _, kind, ref_id in references(definition):
        wanted.setdefault(kind, set()).add(ref_id)
    missing = {kind: actions.missing_references(session, ctx, kind, ids) for kind, ids in wanted.items()}
    for step_id, where, kind, ref_id in references(definition):
        if ref_id in missing.get(kind, set()):
            issues.append(Issue(step_id, where, f"no {KIND_LABELS[kind]} {ref_id} in this workspace"))
    return (definition, []) if not issues else (None, issues)


def validate(session: Session, ctx: WorkspaceContext, raw: Any) -> Definition:
    definition, issues = check_definition(session, ctx, raw)
    if definition is None:
        raise JourneyInvalid(issues)
    return definition


# -- drafts ------------------------------------------------------------------------------------------

@dataclass
class JourneyDraft:
    journey: Journey
    issues: list[Issue]


def create_journey(session: Session, ctx: WorkspaceContext, *, name: str, definition: Any, actor: str,
                   description: str = "", template_key: str | None = None) -> JourneyDraft:
    name = _name(session, ctx.id, name)
    if not isinstance(definition, dict):
        raise ValidationFailed("the definition must be a JSON object", field="definition")
    now = clock.now()
    journey = Journey(workspace_id=ctx.id, name=name, description=description[:1000], status=DRAFT, draft=definition,
                      template_key=template_key, created_by=actor, created_at=now, updated_at=now)
    session.add(journey)
    session.flush()
    actions.record_audit(session, ctx.id, actor, "journey.created", "journey", journey.id, {"name": name})
    return JourneyDraft(journey, check_definition(session, ctx, definition)[1])


def update_journey(session: Session, ctx: WorkspaceContext, journey_id: int, *, actor: str, name: str | None = None,
                   description: str | None = None, definition: Any = None) -> JourneyDraft:
    journey = get_journey(session, ctx.id, journey_id)
    if journey.status == ARCHIVED:
        raise JourneyStateConflict(f"journey {journey.name!r} is archived", field="journey_id")
    if name is not None and name.strip() != journey.name:
        journey.name = _name(session, ctx.id, name)
    if description is not None:
        journey.description = description[:1000]
    if definition is not None:
        if not isinstance(definition, dict):
            raise ValidationFailed("the definition must be a JSON object", field="definition")
        journey.draft = definition
    journey.updated_at = clock.now()
    session.flush()
    actions.record_audit(session, ctx.id, actor, "journey.updated", "journey", journey.id, {"name": journey.name})
    return JourneyDraft(journey, check_definition(session, ctx, journey.draft)[1])


def _name(session: Session, workspace_id: int, name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a journey needs a name of 1-200 characters", field="name")
    if session.scalar(select(Journey.id).where(Journey.workspace_id == workspace_id, Journey.name == name)):
        raise JourneyNameTaken(f"a journey named {name!r} exists", field="name")
    return name


def get_journey(session: Session, workspace_id: int, journey_id: int) -> Journey:
    journey = session.scalar(select(Journey).where(Journey.workspace_id == workspace_id, Journey.id == journey_id))
    if journey is None:
        raise JourneyNotFound(f"no journey {journey_id}", field="journey_id")
    return journey


def list_journeys(session: Session, workspace_id: int, status: str | None = None) -> list[Journey]:
    stmt = select(Journey).where(Journey.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(Journey.status == status)
    return list(session.scalars(stmt.order_by(Journey.id.desc())))


def list_versions(session: Session, workspace_id: int, journey_id: int) -> list[JourneyVersion]:
    get_journey(session, workspace_id, journey_id)
    return list(session.scalars(select(JourneyVersion).where(JourneyVersion.journey_id == journey_id)
                                .order_by(JourneyVersion.number.desc())))


def published_definition(session: Session, journey: Journey) -> tuple[JourneyVersion, Definition]:
    from siyu.journeys.engine import definition_of

    if journey.published_version_id is None:
        raise JourneyStateConflict(f"journey {journey.name!r} has not been published", field="journey_id")
    version = session.get(JourneyVersion, journey.published_version_id)
    assert version is not None
    return version, definition_of(session, version.id)


# -- the journey's life -------------------------------------------------------------------------

def publish_journey(session: Session, ctx: WorkspaceContext, journey_id: int, *, actor: str) -> JourneyVersion:
    """Freeze the draft as the next version; new entries start on it. Refused while invalid."""
    journey = get_journey(session, ctx.id, journey_id, )
    if journey.status == ARCHIVED:
        raise JourneyStateConflict(f"journey {journey.name!r} is archived", field="journey_id")
    definition = validate(session, ctx, journey.draft)
    number = int(session.scalar(select(func.coalesce(func.max(JourneyVersion.number), 0))
                                .where(JourneyVersion.journey_id == journey.id)) or 0) + 1
    version = JourneyVersion(workspace_id=ctx.id, journey_id=journey.id, number=number,
                             definition=dict(definition.raw), published_at=clock.now(), published_by=actor)
    session.add(version)
    session.flush()
    journey.published_version_id = version.id
    if journey.status == DRAFT:
        journey.status = ACTIVE
    journey.updated_at = clock.now()
    actions.record_audit(session, ctx.id, actor, "journey.published", "journey", journey.id, {"version": number})
    if definition.trigger.type == "replenishment":
        actions.enqueue_job(session, "journeys.backfill_replenishment", {"journey_id": journey.id}, ctx.id,
                            key=f"journeys.backfill:{version.id}")
    session.flush()
    return version


def pause_journey(session: Session, ctx: WorkspaceContext, journey_id: int, *, actor: str) -> Journey:
    """No new entries and no steps run; runs keep their place and their timers."""
    return _set_status(session, ctx, journey_id, PAUSED, (ACTIVE,), actor)


def resume_journey(session: Session, ctx: WorkspaceContext, journey_id: int, *, actor: str) -> Journey:
    """Runs whose time came while paused run now, oldest first."""
    return _set_status(session, ctx, journey_id, ACTIVE, (PAUSED,), actor)


def archive_journey(session: Session, ctx: WorkspaceContext, journey_id: int, *, actor: str) -> Journey:
    """End the journey: its active runs exit (reason `archived`) and nobody enters again."""
    journey = _set_status(session, ctx, journey_id, ARCHIVED, (DRAFT, ACTIVE, PAUSED), actor)
    session.execute(update(JourneyRun).where(JourneyRun.journey_id == journey.id, JourneyRun.status == RUN_ACTIVE)
                    .values(status=RUN_EXITED, exit_reason="archived", exited_at=clock.now(), due_at=None,
                            waiting_event=None))
    return journey


def _set_status(session: Session, ctx: WorkspaceContext, journey_id: int, status: str, allowed: tuple[str, ...],
                actor: str) -> Journey:
    journey = get_journey(session, ctx.id, journey_id)
    if journey.status == status:
        return journey
    if journey.status not in allowed:
        raise JourneyStateConflict(f"journey {journey.name!r} is {journey.status}; it cannot become {status}",
                                   field="journey_id")
    journey.status, journey.updated_at = status, clock.now()
    actions.record_audit(session, ctx.id, actor, f"journey.{status}", "journey", journey.id, {})
    session.flush()
    return journey


# -- manual enrolment --------------------------------------------------------------------------

def _enrollable(session: Session, ctx: WorkspaceContext, journey_id: int) -> tuple[Journey, JourneyVersion,
                                                                                     Definition]:
    journey = get_journey(session, ctx.id, journey_id)
    if journey.status != ACTIVE:
        raise JourneyStateConflict(f"journey {journey.name!r} is {journey.status}: only an active journey takes "
                                   "entries", field="journey_id")
    version, definition = published_definition(session, journey)
    return journey, version, definition


def enrol_customers(session: Session, ctx: WorkspaceContext, journey_id: int, customer_ids: list[int], *,
                    key: str | None = None) -> enrolment.EnrolResult:
    """Enter a list of customers now. `key` names the request: retrying it enters nobody twice."""
    if not customer_ids:
        raise ValidationFailed("name at least one customer", field="customer_ids")
    if len(customer_ids) > MAX_ENROL:
        raise ValidationFailed(f"at most {MAX_ENROL} customers per request; enrol a segment for more",
                               field="customer_ids")
    journey, version, definition = _enrollable(session, ctx, journey_id)
    cause = f"manual:{key or uuid.uuid4().hex}"
    return enrolment.enrol(session, ctx.id, journey.id, version.id, definition,
                           [enrolment.Entrant(cid, cause) for cid in customer_ids])


def enrol_segment_later(session: Session, ctx: WorkspaceContext, journey_id: int, segment_id: int, *,
                        key: str | None = None) -> str:
    """Enter the current members of a segment, in a job (a segment may hold millions)."""
    _enrollable(session, ctx, journey_id)
    if actions.missing_references(session, ctx, "segment", [segment_id]):
        raise ValidationFailed(f"no segment {segment_id} in this workspace", field="segment_id")
    cause = f"segment:{segment_id}:{key or uuid.uuid4().hex}"
    actions.enqueue_job(session, "journeys.enrol_segment", {"journey_id": journey_id, "segment_id": segment_id,
                                                            "cause": cause}, ctx.id, key=f"journeys.enrol:{cause}")
    return cause


def enrol_segment(session: Session, ctx: WorkspaceContext, journey_id: int, segment_id: int, cause: str
                  ) -> enrolment.EnrolResult:
    journey, version, definition = _enrollable(session, ctx, journey_id)
    member_ids = [int(cid) for cid in session.scalars(actions.segment_member_ids(ctx.id, segment_id))]
    return enrolment.enrol(session, ctx.id, journey.id, version.id, definition,
                           [enrolment.Entrant(cid, cause) for cid in member_ids])


# -- runs ----------------------------------------------------------------------------------------------

@dataclass
class RunDetail:
    run: JourneyRun
    steps: list[JourneyStepLog]
    tasks: list[StaffTask]
    version_number: int


def customer_runs(session: Session, workspace_id: int, journey_id: int, customer_id: int) -> list[RunDetail]:
    """The run inspector: every run of a customer in a journey, newest first, with its step log."""
    get_journey(session, workspace_id, journey_id)
    resolved = actions.resolve_customers(session, workspace_id, [customer_id])
    survivor = resolved.get(customer_id, customer_id)
    runs = list(session.scalars(select(JourneyRun).where(
        JourneyRun.workspace_id == workspace_id, JourneyRun.journey_id == journey_id,
        JourneyRun.customer_id.in_({customer_id, survivor})).order_by(JourneyRun.id.desc())))
    if not runs:
        raise RunNotFound(f"customer {customer_id} has no run in journey {journey_id}", field="customer_id")
    return [_detail(session, workspace_id, run) for run in runs]


def get_run(session: Session, workspace_id: int, run_id: int) -> RunDetail:
    run = session.scalar(select(JourneyRun).where(JourneyRun.workspace_id == workspace_id, JourneyRun.id == run_id))
    if run is None:
        raise RunNotFound(f"no run {run_id}", field="run_id")
    return _detail(session, workspace_id, run)


def _detail(session: Session, workspace_id: int, run: JourneyRun) -> RunDetail:
    steps = list(session.scalars(select(JourneyStepLog).where(JourneyStepLog.run_id == run.id)
                                 .order_by(JourneyStepLog.seq)))
    tasks = list(session.scalars(select(StaffTask).where(StaffTask.workspace_id == workspace_id,
                                                         StaffTask.run_id == run.id).order_by(StaffTask.id)))
    number = session.scalar(select(JourneyVersion.number).where(JourneyVersion.id == run.version_id)) or 0
    return RunDetail(run, steps, tasks, int(number))


@dataclass
class RunPage:
    items: list[JourneyRun]
    next_cursor: str | None


def list_runs(session: Session, workspace_id: int, journey_id: int, *, status: str | None = None,
              step_id: str | None = None, cursor: str | None = None, limit: int = 50) -> RunPage:
    get_journey(session, workspace_id, journey_id)
    limit = max(1, min(limit, 200))
    stmt = select(JourneyRun).where(JourneyRun.workspace_id == workspace_id, JourneyRun.journey_id == journey_id)
    if status:
        stmt = stmt.where(JourneyRun.status == status)
    if step_id:
        stmt = stmt.where(JourneyRun.step_id == step_id)
    if cursor:
        (last_id,) = decode_cursor(cursor)
        stmt = stmt.where(JourneyRun.id < int(last_id))
    rows = list(session.scalars(stmt.order_by(JourneyRun.id.desc()).limit(limit + 1)))
    return RunPage(rows[:limit], encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None)


def migrate_runs(session: Session, ctx: WorkspaceContext, journey_id: int, *, from_version: int,
                 step_map: dict[str, str] | None = None, actor: str) -> int:
    """Move the active runs of version `from_version` (its number) to the published version. Each
    run keeps its step (or goes to `step_map[step]`); a step with no place in the new version is
    refused, naming it. A run keeps what it waits for only if its new step is of the same type."""
    journey = get_journey(session, ctx.id, journey_id)
    target, definition = published_definition(session, journey)
    source = session.scalar(select(JourneyVersion).where(JourneyVersion.journey_id == journey.id,
                                                         JourneyVersion.number == from_version))
    if source is None:
        raise MigrationInvalid(f"journey {journey_id} has no version {from_version}", field="from_version")
    if source.id == target.id:
        raise MigrationInvalid("runs are already on the published version", field="from_version")
    from siyu.journeys.engine import definition_of

    old = definition_of(session, source.id)
    mapping = dict(step_map or {})
    in_use = [s for s in session.scalars(select(JourneyRun.step_id).distinct().where(
        JourneyRun.journey_id == journey.id, JourneyRun.version_id == source.id, JourneyRun.status == RUN_ACTIVE))
        if s is not None]
    lost = sorted(s for s in in_use if mapping.get(s, s) not in definition.steps)
    if lost:
        raise MigrationInvalid(f"steps {', '.join(lost)} have no place in version {target.number}; map them "
                               "with step_map", field="step_map", details={"steps": lost})
    moved = 0
    now = clock.now()
    for step_id in in_use:
        new_id = mapping.get(step_id, step_id)
        same_kind = old.steps[step_id].type == definition.steps[new_id].type
        values: dict[str, Any] = {"version_id": target.id, "step_id": new_id}
        if not same_kind:
            values.update(due_at=now, waiting_event=None)
        result = session.execute(update(JourneyRun).where(
            JourneyRun.journey_id == journey.id, JourneyRun.version_id == source.id, JourneyRun.status == RUN_ACTIVE,
            JourneyRun.step_id == step_id).values(**values))
        moved += int(getattr(result, "rowcount", 0) or 0)
        if not same_kind:
            _clear_waits(session, journey.id, target.id, new_id)
    actions.record_audit(session, ctx.id, actor, "journey.runs_migrated", "journey", journey.id,
                         {"from": from_version, "to": target.number, "runs": moved, "step_map": mapping})
    return moved


def _clear_waits(session: Session, journey_id: int, version_id: int, step_id: str) -> None:
    for run in session.scalars(select(JourneyRun).where(
            JourneyRun.journey_id == journey_id, JourneyRun.version_id == version_id,
            JourneyRun.status == RUN_ACTIVE, JourneyRun.step_id == step_id)):
        if "at" in (run.state or {}):
            run.state = {k: v for k, v in run.state.items() if k != "at"}


# -- export and import ----------------------------------------------------------------------

def export_journey(session: Session, workspace_id: int, journey_id: int) -> dict[str, Any]:
    journey = get_journey(session, workspace_id, journey_id)
    return {"name": journey.name, "description": journey.description, "definition": journey.draft}


def import_journey(session: Session, ctx: WorkspaceContext, document: Any, *, actor: str,
                   name: str | None = None) -> JourneyDraft:
    if not isinstance(document, dict) or not isinstance(document.get("definition"), dict):
        raise ValidationFailed("an exported journey has a name and a definition", field="definition")
    return create_journey(session, ctx, name=name or str(document.get("name") or ""), actor=actor,
                          description=str(document.get("description") or ""), definition=document["definition"])


def active_runs_of(session: Session, workspace_id: int, customer_id: int) -> list[JourneyRun]:
    return list(session.scalars(select(JourneyRun).where(JourneyRun.workspace_id == workspace_id,
                                                         JourneyRun.customer_id == customer_id,
                                                         JourneyRun.status == RUN_ACTIVE)))


def due_backlog(session: Session, now: datetime | None = None) -> int:
    """Active runs already due: the engine's backlog (for health pages)."""
    now = now or clock.now()
    return int(session.scalar(select(func.count()).select_from(JourneyRun).where(
        JourneyRun.status == RUN_ACTIVE, JourneyRun.due_at <= now)) or 0)
