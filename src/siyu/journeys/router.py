"""REST routes of journeys, runs, staff tasks (SOP) and consumption cycles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from siyu.journeys import analytics, cycles, service, staff_tasks, templates
from siyu.journeys.definitions import Issue
from siyu.journeys.models import Journey
from siyu.journeys.schemas import (
    CopyTemplateIn,
    CycleIn,
    CycleOut,
    DefinitionIn,
    EnrolIn,
    EnrolOut,
    JourneyDetailOut,
    JourneyIn,
    JourneyOut,
    JourneyPatch,
    MigrateIn,
    PredictionOut,
    RunDetailOut,
    RunListOut,
    RunOut,
    StaffStatsOut,
    StepLogOut,
    TaskAssignIn,
    TaskCloseIn,
    TaskIn,
    TaskListOut,
    TaskOut,
    TemplateOut,
    ValidationOut,
    VersionOut,
)
from siyu.kit.errors import Forbidden, ValidationFailed
from siyu.web.deps import Db, Ingestor, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["journeys"])


def _detail(journey: Journey, issues: list[Issue], version: int | None = None) -> dict[str, Any]:
    return {**JourneyOut.model_validate(journey).model_dump(), "definition": journey.draft, "valid": not issues,
            "issues": [i.as_dict() for i in issues], "published_version": version}


def _run_detail(detail: service.RunDetail) -> dict[str, Any]:
    return {**RunOut.model_validate(detail.run).model_dump(), "version": detail.version_number,
            "steps": [StepLogOut.model_validate(s) for s in detail.steps],
            "tasks": [TaskOut.model_validate(t) for t in detail.tasks]}


# -- journeys ----------------------------------------------------------------------------------

@router.get("/journeys", response_model=list[JourneyOut])
def list_journeys(caller: Reader, db: Db, status: str | None = None) -> list[Journey]:
    return service.list_journeys(db, caller.workspace.id, status)


@router.post("/journeys", response_model=JourneyDetailOut, status_code=201,
             summary="Save a draft journey; its issues (if any) come back with step ids")
def create_journey(caller: Writer, db: Db, body: JourneyIn) -> dict[str, Any]:
    draft = service.create_journey(db, caller.workspace, name=body.name, description=body.description,
                                   definition=body.definition, actor=caller.actor)
    return _detail(draft.journey, draft.issues)


@router.post("/journeys/validate", response_model=ValidationOut,
             summary="Check a definition without saving it: 422 journey_invalid names each issue's step")
def validate_definition(caller: Writer, db: Db, body: DefinitionIn) -> dict[str, Any]:
    service.validate(db, caller.workspace, body.definition)
    return {"valid": True, "issues": []}


@router.post("/journeys/import", response_model=JourneyDetailOut, status_code=201)
def import_journey(caller: Writer, db: Db, body: dict[str, Any]) -> dict[str, Any]:
    draft = service.import_journey(db, caller.workspace, body, actor=caller.actor)
    return _detail(draft.journey, draft.issues)


@router.get("/journeys/{journey_id}", response_model=JourneyDetailOut)
def get_journey(caller: Reader, db: Db, journey_id: int) -> dict[str, Any]:
    journey = service.get_journey(db, caller.workspace.id, journey_id)
    return _detail(journey, service.check_definition(db, caller.workspace, journey.draft)[1])


@router.patch("/journeys/{journey_id}", response_model=JourneyDetailOut)
def update_journey(caller: Writer, db: Db, journey_id: int, body: JourneyPatch) -> dict[str, Any]:
    draft = service.update_journey(db, caller.workspace, journey_id, actor=caller.actor, name=body.name,
                                   description=body.description, definition=body.definition)
    return _detail(draft.journey, draft.issues)


@router.post("/journeys/{journey_id}/validate", response_model=ValidationOut)
def validate_journey(caller: Writer, db: Db, journey_id: int) -> dict[str, Any]:
    journey = service.get_journey(db, caller.workspace.id, journey_id)
    service.validate(db, caller.workspace, journey.draft)
    return {"valid": True, "issues": []}


@router.post("/journeys/{journey_id}/publish", response_model=VersionOut,
             summary="Freeze the draft as a new version (refused while invalid)")
def publish_journey(caller: Writer, db: Db, journey_id: int) -> Any:
    return service.publish_journey(db, caller.workspace, journey_id, actor=caller.actor)


@router.post("/journeys/{journey_id}/pause", response_model=JourneyOut)
def pause_journey(caller: Writer, db: Db, journey_id: int) -> Any:
    return service.pause_journey(db, caller.workspace, journey_id, actor=caller.actor)


@router.post("/journeys/{journey_id}/resume", response_model=JourneyOut)
def resume_journey(caller: Writer, db: Db, journey_id: int) -> Any:
    return service.resume_journey(db, caller.workspace, journey_id, actor=caller.actor)


@router.post("/journeys/{journey_id}/archive", response_model=JourneyOut)
def archive_journey(caller: Writer, db: Db, journey_id: int) -> Any:
    return service.archive_journey(db, caller.workspace, journey_id, actor=caller.actor)


@router.get("/journeys/{journey_id}/versions", response_model=list[VersionOut])
def list_versions(caller: Reader, db: Db, journey_id: int) -> Any:
    return service.list_versions(db, caller.workspace.id, journey_id)


@router.get("/journeys/{journey_id}/export")
def export_journey(caller: Reader, db: Db, journey_id: int) -> dict[str, Any]:
    return service.export_journey(db, caller.workspace.id, journey_id)


@router.post("/journeys/{journey_id}/enrol", response_model=EnrolOut,
             summary="Enter customers (customer_ids) or a segment's members (segment_id, in a job)")
def enrol(caller: Writer, db: Db, journey_id: int, body: EnrolIn) -> dict[str, Any]:
    if (body.customer_ids is None) == (body.segment_id is None):
        raise ValidationFailed("give exactly one of customer_ids or segment_id", field="customer_ids")
    if body.segment_id is not None:
        return {"queued": service.enrol_segment_later(db, caller.workspace, journey_id, body.segment_id,
                                                      key=body.key)}
    return service.enrol_customers(db, caller.workspace, journey_id, body.customer_ids or [], key=body.key).as_dict()


@router.get("/journeys/{journey_id}/runs", response_model=RunListOut)
def list_runs(caller: Reader, db: Db, journey_id: int, status: str | None = None, step_id: str | None = None,
              cursor: str | None = None, limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
    page = service.list_runs(db, caller.workspace.id, journey_id, status=status, step_id=step_id, cursor=cursor,
                             limit=limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/journeys/{journey_id}/customers/{customer_id}", response_model=list[RunDetailOut],
            summary="Run inspector: a customer's runs in the journey with every executed step")
def customer_runs(caller: Reader, db: Db, journey_id: int, customer_id: int) -> list[dict[str, Any]]:
    return [_run_detail(d) for d in service.customer_runs(db, caller.workspace.id, journey_id, customer_id)]


@router.get("/journey-runs/{run_id}", response_model=RunDetailOut)
def get_run(caller: Reader, db: Db, run_id: int) -> dict[str, Any]:
    return _run_detail(service.get_run(db, caller.workspace.id, run_id))


@router.post("/journeys/{journey_id}/migrate-runs", summary="Move active runs of an older version to the "
                                                            "published one")
def migrate_runs(caller: Writer, db: Db, journey_id: int, body: MigrateIn) -> dict[str, int]:
    return {"moved": service.migrate_runs(db, caller.workspace, journey_id, from_version=body.from_version,
                                          step_map=body.step_map, actor=caller.actor)}


@router.get("/journeys/{journey_id}/analytics",
            summary="Entered, in each step, exits by reason, conversion against the holdout, A/B branches")
def journey_analytics(caller: Reader, db: Db, journey_id: int) -> dict[str, Any]:
    return analytics.journey_report(db, caller.workspace.id, journey_id).as_dict()


# -- ready-made journeys -----------------------------------------------------------------------

@router.get("/journey-templates", response_model=list[TemplateOut])
def list_templates(caller: Reader) -> list[dict[str, Any]]:
    return [{"key": t.key, "name": t.name, "description": t.description, "definition": t.definition,
             "slots": [{"name": s.name, "label": s.label} for s in t.slots]} for t in templates.TEMPLATES]


@router.post("/journey-templates/{key}/copy", response_model=JourneyDetailOut, status_code=201)
def copy_template(caller: Writer, db: Db, key: str, body: CopyTemplateIn) -> dict[str, Any]:
    draft = templates.copy_template(db, caller.workspace, key, actor=caller.actor, name=body.name,
                                    values=body.values)
    return _detail(draft.journey, draft.issues)


# -- staff tasks --------------------------------------------------------------------------------

@router.get("/staff-tasks", response_model=TaskListOut, summary="A task inbox (open tasks, soonest due first)")
def list_tasks(caller: Ingestor, db: Db, assignee_id: int | None = None, mine: bool = False,
               unassigned: bool = False, status: str | None = "open", overdue: bool = False,
               customer_id: int | None = None, journey_id: int | None = None, cursor: str | None = None,
               limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
    if mine:
        if caller.user_id is None:
            raise ValidationFailed("mine needs a console user, not an API key", field="mine")
        assignee_id = caller.user_id
    page = staff_tasks.list_tasks(db, caller.workspace.id, assignee_id=assignee_id, unassigned=unassigned,
                                  status=status or None, overdue=overdue, customer_id=customer_id,
                                  journey_id=journey_id, cursor=cursor, limit=limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post("/staff-tasks", response_model=TaskOut, status_code=201)
def create_task(caller: Writer, db: Db, body: TaskIn) -> Any:
    return staff_tasks.create_task(db, caller.workspace, title=body.title, due_at=body.due_at, actor=caller.actor,
                                   customer_id=body.customer_id, assignee_id=body.assignee_id,
                                   instructions=body.instructions, script=body.script, priority=body.priority,
                                   remind_at=body.remind_at, key=body.key)


@router.get("/staff-tasks/stats", response_model=list[StaffStatsOut], summary="Per staff member completion")
def task_stats(caller: Reader, db: Db) -> list[dict[str, Any]]:
    return [{**vars(s), "completion_rate": s.completion_rate, "on_time_rate": s.on_time_rate}
            for s in staff_tasks.staff_stats(db, caller.workspace.id)]


@router.get("/staff-tasks/{task_id}", response_model=TaskOut)
def get_task(caller: Ingestor, db: Db, task_id: int) -> Any:
    return staff_tasks.get_task(db, caller.workspace.id, task_id)


@router.post("/staff-tasks/{task_id}/close", response_model=TaskOut, summary="Mark done or skipped, with outcome")
def close_task(caller: Ingestor, db: Db, task_id: int, body: TaskCloseIn) -> Any:
    if caller.role == "staff":
        task = staff_tasks.get_task(db, caller.workspace.id, task_id)
        if task.assignee_id not in (None, caller.user_id):
            raise Forbidden("this task is assigned to someone else")
    return staff_tasks.close_task(db, caller.workspace, task_id, body.status, outcome=body.outcome,
                                  actor=caller.actor)


@router.post("/staff-tasks/{task_id}/assign", response_model=TaskOut)
def assign_task(caller: Writer, db: Db, task_id: int, body: TaskAssignIn) -> Any:
    return staff_tasks.reassign_task(db, caller.workspace, task_id, body.assignee_id)


# -- consumption cycles --------------------------------------------------------------------------

@router.get("/consumption-cycles", response_model=list[CycleOut])
def list_cycles(caller: Reader, db: Db) -> Any:
    return cycles.list_cycles(db, caller.workspace.id)


@router.put("/consumption-cycles", response_model=CycleOut, summary="Set the days one unit of a SKU or category "
                                                                    "lasts")
def set_cycle(caller: Writer, db: Db, body: CycleIn) -> Any:
    return cycles.set_cycle(db, caller.workspace.id, cycle_days=body.cycle_days, sku=body.sku,
                            category=body.category)


@router.delete("/consumption-cycles/{cycle_id}", status_code=204)
def delete_cycle(caller: Writer, db: Db, cycle_id: int) -> None:
    cycles.delete_cycle(db, caller.workspace.id, cycle_id)


@router.post("/consumption-cycles/seed-demo", summary="Set the demo catalogue's category cycles")
def seed_demo(caller: Writer, db: Db) -> dict[str, int]:
    return {"set": cycles.seed_demo_cycles(db, caller.workspace.id)}


@router.get("/consumption-cycles/predictions", response_model=list[PredictionOut],
            summary="When customers run out of a category (or SKU), and how it was predicted")
def predictions(caller: Reader, db: Db, customer_id: list[int] = Query(...), category: str | None = None,
                sku: str | None = None) -> list[dict[str, Any]]:
    if (category is None) == (sku is None):
        raise ValidationFailed("give exactly one of category or sku", field="category")
    found = cycles.predict(db, caller.workspace.id, customer_id, category=category, sku=sku)
    return [p.as_dict() for p in found.values()]

