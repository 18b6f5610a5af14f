"""Console pages of journeys: the list, a journey's graph with counts and its funnel, the JSON editor,
the run inspector, and the staff task inbox."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from siyu.journeys import analytics, service, staff_tasks
from siyu.journeys.definitions import Step, parse_definition
from siyu.journeys.errors import RunNotFound
from siyu.kit.errors import ValidationFailed
from siyu.web.console import EditorDep, ViewerDep, console_router
from siyu.web.deps import Db
from siyu.web.templating import N_, NavEntry, add_nav_entry, flash, render

router = console_router()
add_nav_entry(NavEntry(N_("Staff tasks"), "staff_tasks", "check", "engage"), before="jobs")


def graph_layers(steps: Mapping[str, Step], start: str) -> list[list[Step]]:
    """Steps by their distance from the start (breadth first): the columns of the graph view."""
    depth = {start: 0}
    order = [start]
    for step_id in order:
        for target in steps[step_id].edges.values():
            if target is not None and target in steps and target not in depth:
                depth[target] = depth[step_id] + 1
                order.append(target)
    layers: list[list[Step]] = []
    for step_id in order:
        while len(layers) <= depth[step_id]:
            layers.append([])
        layers[depth[step_id]].append(steps[step_id])
    return layers


@router.get("/journeys", name="journeys")
def journeys_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    items = service.list_journeys(db, viewer.workspace.id)
    return render(request, "journeys/list.html", {"journeys": items})


@router.get("/journeys/{journey_id}", name="journey_detail")
def journey_page(request: Request, db: Db, viewer: ViewerDep, journey_id: int, customer_id: int | None = None
                 ) -> Response:
    ws = viewer.workspace
    journey = service.get_journey(db, ws.id, journey_id)
    parsed, issues = parse_definition(journey.draft)
    if journey.published_version_id is not None:
        _, parsed = service.published_definition(db, journey)
    report = analytics.journey_report(db, ws.id, journey.id)
    runs: list[service.RunDetail] = []
    if customer_id is not None:
        try:
            runs = service.customer_runs(db, ws.id, journey.id, customer_id)
        except RunNotFound:
            runs = []
    return render(request, "journeys/detail.html", {
        "journey": journey, "issues": issues or service.check_definition(db, ws, journey.draft)[1],
        "layers": graph_layers(parsed.steps, parsed.start) if parsed else [], "report": report,
        "definition_json": json.dumps(journey.draft, ensure_ascii=False, indent=2),
        "customer_id": customer_id, "runs": runs})


@router.post("/journeys/{journey_id}/definition", name="journey_save")
def save_definition(request: Request, db: Db, editor: EditorDep, journey_id: int,
                    definition: Annotated[str, Form()] = "") -> Response:
    try:
        document = json.loads(definition)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"not JSON: {exc.msg} (line {exc.lineno})", field="definition") from exc
    if isinstance(document, dict) and isinstance(document.get("definition"), dict):
        document = document["definition"]  # an exported journey was pasted
    draft = service.update_journey(db, editor.workspace, journey_id, actor=editor.caller.actor, definition=document)
    flash(request, N_("Draft saved.") if not draft.issues else N_("Draft saved with issues."),
          "success" if not draft.issues else "warning")
    return RedirectResponse(request.app.url_path_for("journey_detail", journey_id=journey_id), status_code=303)


@router.post("/journeys/{journey_id}/{action}", name="journey_action")
def journey_action(request: Request, db: Db, editor: EditorDep, journey_id: int, action: str) -> Response:
    actions: dict[str, Any] = {"publish": service.publish_journey, "pause": service.pause_journey,
                               "resume": service.resume_journey, "archive": service.archive_journey}
    if action not in actions:
        raise ValidationFailed(f"unknown action {action}", field="action")
    actions[action](db, editor.workspace, journey_id, actor=editor.caller.actor)
    flash(request, N_("Done."))
    return RedirectResponse(request.app.url_path_for("journey_detail", journey_id=journey_id), status_code=303)


@router.get("/staff-tasks", name="staff_tasks")
def tasks_page(request: Request, db: Db, viewer: ViewerDep, scope: str = "mine") -> Response:
    ws = viewer.workspace
    if scope == "unassigned":
        page = staff_tasks.list_tasks(db, ws.id, unassigned=True, limit=200)
    elif scope == "all":
        page = staff_tasks.list_tasks(db, ws.id, limit=200)
    else:
        page = staff_tasks.list_tasks(db, ws.id, assignee_id=viewer.caller.user_id, limit=200)
    return render(request, "journeys/tasks.html", {"tasks": page.items, "scope": scope,
                                                   "stats": staff_tasks.staff_stats(db, ws.id)})


@router.post("/staff-tasks/{task_id}/close", name="staff_task_close")
def close_task(request: Request, db: Db, viewer: ViewerDep, task_id: int, status: Annotated[str, Form()] = "done",
               outcome: Annotated[str, Form()] = "") -> Response:
    task = staff_tasks.get_task(db, viewer.workspace.id, task_id)
    if not viewer.can_write and task.assignee_id not in (None, viewer.caller.user_id):
        raise ValidationFailed("this task is assigned to someone else", field="task_id")
    staff_tasks.close_task(db, viewer.workspace, task_id, status, outcome=outcome, actor=viewer.caller.actor)
    flash(request, N_("Task closed."))
    return RedirectResponse(request.app.url_path_for("staff_tasks"), status_code=303)
