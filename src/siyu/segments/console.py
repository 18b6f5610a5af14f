"""Console pages of segments and layering: the segment list with sizes and trends, the builder that
edits a rule with forms and shows the live count, a segment's page (members, refresh, export,
snapshot), the RFM matrix, lifecycle stages, and a customer's layers (a fragment of their page)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from siyu.customers.identities import STANDARD_IDENTITY_TYPES
from siyu.rules.tree import AGGREGATES, LIFECYCLE_STAGES, ORDER_MEASURES, RFM_CLASSES, RuleInvalid
from siyu.segments import builder as forms
from siyu.segments import layering, service
from siyu.segments.lifecycle import STAGE_LABELS
from siyu.segments.models import DYNAMIC
from siyu.segments.rfm import CLASS_LABELS
from siyu.tags.service import freshness, list_tags, parse_customer_csv
from siyu.web.console import EditorDep, ViewerDep, console_router
from siyu.web.deps import Db
from siyu.web.templating import N_, flash, render
from siyu.workspaces.service import WorkspaceContext

router = console_router()
MEMBERS_SHOWN = 50


def builder_options(db: Session, workspace: WorkspaceContext, *, exclude_segment: int | None = None) -> dict[str, Any]:
    """What the builder's selects offer: this workspace's tags and segments, and the language's words."""
    return {"kinds": forms.KINDS, "tag_choices": list_tags(db, workspace.id),
            "segment_choices": [s for s in service.list_segments(db, workspace.id) if s.id != exclude_segment],
            "identity_types": STANDARD_IDENTITY_TYPES, "aggregates": AGGREGATES, "measures": ORDER_MEASURES,
            "stages": LIFECYCLE_STAGES, "stage_labels": STAGE_LABELS, "rfm_classes": RFM_CLASSES,
            "class_labels": CLASS_LABELS}


def _form(request_form: Any) -> dict[str, list[str]]:
    return {key: [str(v) for v in request_form.getlist(key)] for key in request_form}


def _preview(db: Session, workspace: WorkspaceContext, builder: forms.Builder) -> int | None:
    """The live count of the rule being built, or None while it does not parse yet."""
    raw, ok = forms.parse(builder)
    if not ok:
        return None
    try:
        return service.preview_rule(db, workspace, raw, sample=0).count
    except RuleInvalid as exc:
        forms.check(builder, exc.issues, forms.to_rule(builder)[1])
        return None


def _builder_page(request: Request, db: Db, viewer: Any, builder: forms.Builder, *, segment: Any = None,
                  name: str = "", description: str = "", refresh_minutes: int = 60, status_code: int = 200,
                  target: str = "segment") -> Response:
    context = {"builder": builder, "count": _preview(db, viewer.workspace, builder), "segment": segment,
               "name": name, "description": description, "refresh_minutes": refresh_minutes, "target": target,
               **builder_options(db, viewer.workspace, exclude_segment=segment.id if segment else None)}
    return render(request, "segments/builder.html", context, status_code=status_code)


# -- lists and layering (fixed paths before /segments/{id}) ---------------------------------------

@router.get("/segments", name="segments")
def segments_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace
    segments = service.list_segments(db, ws.id)
    return render(request, "segments/list.html", {
        "segments": segments, "states": {s.id: freshness(s) for s in segments},
        "trends": service.size_trends(db, ws.id)})


@router.get("/segments/new", name="segment_new")
def new_segment(request: Request, db: Db, editor: EditorDep) -> Response:
    return _builder_page(request, db, editor, forms.Builder(items=[forms.Row("r0")]))


@router.post("/segments/builder", name="segment_builder")
async def builder_fragment(request: Request, db: Db, viewer: ViewerDep) -> Response:
    """The builder re-drawn after a change (a row added, a kind chosen) with its live count."""
    builder = forms.from_form(_form(await request.form()))
    context = {"builder": builder, "count": _preview(db, viewer.workspace, builder),
               **builder_options(db, viewer.workspace)}
    return render(request, "segments/_builder.html", context)


@router.post("/segments/new", name="segment_create")
async def create_segment(request: Request, db: Db, editor: EditorDep) -> Response:
    form = await request.form()
    builder = forms.from_form(_form(form))
    raw, ok = forms.parse(builder)
    name, description = str(form.get("name", "")), str(form.get("description", ""))
    minutes = int(str(form.get("refresh_minutes") or 60))
    if ok:
        try:
            segment = service.create_segment(db, editor.workspace, name=name, actor=editor.caller.actor, rule=raw,
                                             description=description, refresh_minutes=minutes)
        except RuleInvalid as exc:
            forms.check(builder, exc.issues, forms.to_rule(builder)[1])
        else:
            flash(request, N_("Segment saved. Its members are being counted."))
            return RedirectResponse(request.app.url_path_for("segment_detail", segment_id=segment.id), status_code=303)
    return _builder_page(request, db, editor, builder, name=name, description=description, refresh_minutes=minutes,
                         status_code=422)


@router.post("/segments/static", name="segment_create_static")
def create_static(request: Request, db: Db, editor: EditorDep, name: Annotated[str, Form()] = "",
                  customers: Annotated[str, Form()] = "") -> Response:
    ids, pairs = parse_customer_csv(customers)
    segment = service.create_segment(db, editor.workspace, name=name, actor=editor.caller.actor, kind="static",
                                     customer_ids=ids, identities=pairs)
    flash(request, N_("Static segment saved with %(count)s members."), count=segment.size)
    return RedirectResponse(request.app.url_path_for("segment_detail", segment_id=segment.id), status_code=303)


@router.get("/segments/rfm", name="rfm")
def rfm_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    overview = layering.rfm_overview(db, viewer.workspace)
    return render(request, "segments/rfm.html", {**overview, "summary": overview["last_run"].summary
                                                 if overview["last_run"] else {}})


@router.post("/segments/rfm/score", name="rfm_score")
def rfm_score(request: Request, db: Db, editor: EditorDep) -> Response:
    layering.score_rfm_later(db, editor.workspace)
    flash(request, N_("RFM scoring has started; the matrix updates when it is done."))
    return RedirectResponse(request.app.url_path_for("rfm"), status_code=303)


@router.post("/segments/rfm/settings", name="rfm_settings")
def rfm_settings(request: Request, db: Db, editor: EditorDep, window_days: Annotated[str, Form()] = "",
                 split_by: Annotated[str, Form()] = "average", r_high_days: Annotated[str, Form()] = "",
                 f_high_orders: Annotated[str, Form()] = "", m_high_yuan: Annotated[str, Form()] = "") -> Response:
    values: dict[str, Any] = {"window_days": int(window_days) if window_days.strip() else None, "split_by": split_by}
    if split_by == "thresholds":
        values.update(r_high_days=float(r_high_days or 0), f_high_orders=float(f_high_orders or 0),
                      m_high_fen=int(float(m_high_yuan or 0) * 100))
    layering.update_rfm_settings(db, editor.workspace, values)
    flash(request, N_("RFM settings saved. Score again to apply them."))
    return RedirectResponse(request.app.url_path_for("rfm"), status_code=303)


@router.get("/segments/lifecycle", name="lifecycle")
def lifecycle_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    return render(request, "segments/lifecycle.html", layering.lifecycle_overview(db, viewer.workspace))


@router.post("/segments/lifecycle/settings", name="lifecycle_settings")
async def lifecycle_settings(request: Request, db: Db, editor: EditorDep) -> Response:
    form = await request.form()
    values = {key: float(str(value)) if "factor" in key else int(str(value))
              for key, value in form.items() if key != "csrf_token" and str(value).strip()}
    layering.update_lifecycle_settings(db, editor.workspace, values)
    flash(request, N_("Lifecycle thresholds saved."))
    return RedirectResponse(request.app.url_path_for("lifecycle"), status_code=303)


@router.post("/segments/lifecycle/evaluate", name="lifecycle_evaluate")
def lifecycle_evaluate(request: Request, db: Db, editor: EditorDep) -> Response:
    layering.evaluate_lifecycle_later(db, editor.workspace)
    flash(request, N_("Stages are being recomputed."))
    return RedirectResponse(request.app.url_path_for("lifecycle"), status_code=303)


@router.get("/customers/{customer_id}/layers", name="customer_layers")
def customer_layers(request: Request, db: Db, viewer: ViewerDep, customer_id: int) -> Response:
    """A customer's tags, segments, lifecycle stage and RFM: a card of their page (loaded by HTMX)."""
    context = {"layers": service.customer_layers(db, viewer.workspace.id, customer_id), "class_labels": CLASS_LABELS,
               "stage_labels": STAGE_LABELS}
    is_fragment = request.headers.get("hx-request") == "true"
    return render(request, "segments/_layers.html" if is_fragment else "segments/layers.html", context)


# -- one segment ---------------------------------------------------------------------------------

@router.get("/segments/{segment_id}", name="segment_detail")
def segment_detail(request: Request, db: Db, viewer: ViewerDep, segment_id: int, cursor: str | None = None) -> Response:
    ws = viewer.workspace
    segment = service.get_segment(db, ws.id, segment_id)
    return render(request, "segments/detail.html", {
        "segment": segment, "state": freshness(segment), "trend": service.size_trend(db, ws.id, segment_id),
        "members": service.members(db, ws.id, segment_id, cursor=cursor, limit=MEMBERS_SHOWN),
        "users": service.segment_users(db, ws.id, segment_id), "identity_types": STANDARD_IDENTITY_TYPES})


@router.get("/segments/{segment_id}/edit", name="segment_edit")
def edit_segment(request: Request, db: Db, editor: EditorDep, segment_id: int) -> Response:
    segment = service.get_segment(db, editor.workspace.id, segment_id)
    try:
        builder = forms.from_rule(segment.rule or {})
    except forms.NotEditable:
        builder = forms.Builder(error=N_("This rule nests deeper than the builder shows; edit it through the API."))
    return _builder_page(request, db, editor, builder, segment=segment, name=segment.name,
                         description=segment.description, refresh_minutes=segment.refresh_minutes)


@router.post("/segments/{segment_id}/edit", name="segment_update")
async def update_segment(request: Request, db: Db, editor: EditorDep, segment_id: int) -> Response:
    segment = service.get_segment(db, editor.workspace.id, segment_id)
    form = await request.form()
    builder = forms.from_form(_form(form))
    raw, ok = forms.parse(builder)
    name, description = str(form.get("name", "")), str(form.get("description", ""))
    minutes = int(str(form.get("refresh_minutes") or 60))
    if ok:
        try:
            service.update_segment(db, editor.workspace, segment_id, actor=editor.caller.actor, name=name,
                                   description=description, refresh_minutes=minutes,
                                   rule=raw if segment.kind == DYNAMIC and not segment.builtin_key else None)
        except RuleInvalid as exc:
            forms.check(builder, exc.issues, forms.to_rule(builder)[1])
        else:
            flash(request, N_("Segment saved. Its members are being counted."))
            return RedirectResponse(request.app.url_path_for("segment_detail", segment_id=segment_id), status_code=303)
    return _builder_page(request, db, editor, builder, segment=segment, name=name, description=description,
                         refresh_minutes=minutes, status_code=422)


@router.post("/segments/{segment_id}/refresh", name="segment_refresh")
def refresh_segment(request: Request, db: Db, editor: EditorDep, segment_id: int) -> Response:
    service.refresh_now(db, editor.workspace, segment_id)
    flash(request, N_("Refresh queued."))
    return RedirectResponse(request.app.url_path_for("segment_detail", segment_id=segment_id), status_code=303)


@router.post("/segments/{segment_id}/snapshot", name="segment_snapshot")
def snapshot_segment(request: Request, db: Db, editor: EditorDep, segment_id: int,
                     name: Annotated[str, Form()] = "") -> Response:
    copy = service.snapshot_segment(db, editor.workspace, segment_id, name=name, actor=editor.caller.actor)
    flash(request, N_("Snapshot saved with %(count)s members."), count=copy.size)
    return RedirectResponse(request.app.url_path_for("segment_detail", segment_id=copy.id), status_code=303)


@router.post("/segments/{segment_id}/members", name="segment_members")
def change_members(request: Request, db: Db, editor: EditorDep, segment_id: int,
                   customers: Annotated[str, Form()] = "", remove: Annotated[bool, Form()] = False) -> Response:
    ids, pairs = parse_customer_csv(customers)
    kwargs: dict[str, Any] = ({"remove_ids": ids, "remove_identities": pairs} if remove
                              else {"add_ids": ids, "add_identities": pairs})
    change = service.change_static_members(db, editor.workspace, segment_id, actor=editor.caller.actor, **kwargs)
    flash(request, N_("%(added)s added, %(removed)s removed, %(unknown)s not found."), added=change.added,
          removed=change.removed, unknown=len(change.unknown))
    return RedirectResponse(request.app.url_path_for("segment_detail", segment_id=segment_id), status_code=303)


@router.post("/segments/{segment_id}/delete", name="segment_delete")
def delete_segment(request: Request, db: Db, editor: EditorDep, segment_id: int) -> Response:
    service.delete_segment(db, editor.workspace, segment_id, editor.caller.actor)
    flash(request, N_("Segment deleted."))
    return RedirectResponse(request.app.url_path_for("segments"), status_code=303)


@router.get("/segments/{segment_id}/export.csv", name="segment_export")
def export_segment(request: Request, db: Db, viewer: ViewerDep, segment_id: int) -> Response:
    segment = service.get_segment(db, viewer.workspace.id, segment_id)
    types = [t for t in request.query_params.getlist("identities") if t]
    sessions = request.app.state.sessions
    workspace = viewer.workspace
    db.commit()  # end this request's unit of work (and SQLite's write lock): the stream reads on its own

    def stream() -> Iterator[str]:
        with sessions() as session:
            for row in service.export_rows(session, workspace, segment_id, types):
                buffer = io.StringIO()
                csv.writer(buffer).writerow(row)
                yield buffer.getvalue()

    return StreamingResponse(stream(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="segment-{segment.id}.csv"'})
