"""Console pages of tags: groups and tags with their sizes, manual tagging by pasted ids or
identities, auto tags built with the segment builder, and the preset auto tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from siyu.segments import builder as forms
from siyu.segments.console import builder_options
from siyu.tags import presets, service
from siyu.tags.models import AUTO
from siyu.web.console import EditorDep, ViewerDep, console_router
from siyu.web.deps import Db
from siyu.web.templating import N_, flash, render

router = console_router()
MEMBERS_SHOWN = 50


@router.get("/tags", name="tags")
def tags_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace
    tags = service.list_tags(db, ws.id)
    groups = service.list_groups(db, ws.id)
    return render(request, "tags/list.html", {
        "groups": groups, "tags": tags, "states": {t.id: service.freshness(t) for t in tags},
        "group_names": {g.id: g.name for g in groups}})


@router.post("/tags/groups", name="tag_group_create")
def create_group(request: Request, db: Db, editor: EditorDep, name: Annotated[str, Form()] = "") -> Response:
    service.create_group(db, editor.workspace, name)
    flash(request, N_("Tag group saved."))
    return RedirectResponse(request.app.url_path_for("tags"), status_code=303)


@router.post("/tags/new", name="tag_create")
def create_tag(request: Request, db: Db, editor: EditorDep, name: Annotated[str, Form()] = "",
               group_id: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "") -> Response:
    tag = service.create_tag(db, editor.workspace, name=name, actor=editor.caller.actor, description=description,
                             group_id=int(group_id) if group_id.strip() else None)
    flash(request, N_("Tag saved."))
    return RedirectResponse(request.app.url_path_for("tag_detail", tag_id=tag.id), status_code=303)


@router.post("/tags/presets", name="tag_presets")
def install_presets(request: Request, db: Db, editor: EditorDep) -> Response:
    presets.install_presets(db, editor.workspace, actor=editor.caller.actor)
    flash(request, N_("Preset auto tags installed; they fill in the background."))
    return RedirectResponse(request.app.url_path_for("tags"), status_code=303)


@router.get("/tags/auto/new", name="tag_auto_new")
def new_auto_tag(request: Request, db: Db, editor: EditorDep) -> Response:
    return render(request, "segments/builder.html", {
        "builder": forms.Builder(items=[forms.Row("r0")]), "count": None, "segment": None, "name": "",
        "description": "", "refresh_minutes": 60, "target": "tag",
        "groups": service.list_groups(db, editor.workspace.id),
        **builder_options(db, editor.workspace)})


@router.post("/tags/auto/new", name="tag_auto_create")
async def create_auto_tag(request: Request, db: Db, editor: EditorDep) -> Response:
    form = await request.form()
    builder = forms.from_form({key: [str(v) for v in form.getlist(key)] for key in form})
    raw, ok = forms.parse(builder)
    name, group_id = str(form.get("name", "")), str(form.get("group_id", "")).strip()
    if ok:
        tag = service.create_tag(db, editor.workspace, name=name, actor=editor.caller.actor, rule=raw,
                                 description=str(form.get("description", "")),
                                 refresh_minutes=int(str(form.get("refresh_minutes") or 60)),
                                 group_id=int(group_id) if group_id else None)
        flash(request, N_("Auto tag saved; it fills in the background."))
        return RedirectResponse(request.app.url_path_for("tag_detail", tag_id=tag.id), status_code=303)
    return render(request, "segments/builder.html", {
        "builder": builder, "count": None, "segment": None, "name": name, "description": form.get("description", ""),
        "refresh_minutes": form.get("refresh_minutes", 60), "target": "tag",
        "groups": service.list_groups(db, editor.workspace.id), **builder_options(db, editor.workspace)},
        status_code=422)


@router.get("/tags/{tag_id}", name="tag_detail")
def tag_detail(request: Request, db: Db, viewer: ViewerDep, tag_id: int, cursor: str | None = None) -> Response:
    ws = viewer.workspace
    tag = service.get_tag(db, ws.id, tag_id)
    return render(request, "tags/detail.html", {
        "tag": tag, "state": service.freshness(tag), "is_auto": tag.kind == AUTO,
        "members": service.tagged_customers(db, ws.id, tag_id, cursor, MEMBERS_SHOWN),
        "users": service.tag_users(db, ws.id, tag_id),
        "group": service.get_group(db, ws.id, tag.group_id) if tag.group_id else None})


@router.post("/tags/{tag_id}/apply", name="tag_apply")
def apply_tag(request: Request, db: Db, editor: EditorDep, tag_id: int, customers: Annotated[str, Form()] = "",
              remove: Annotated[bool, Form()] = False) -> Response:
    """Put the tag on (or take it off) the customers of a pasted CSV: ids, or identities."""
    ids, pairs = service.parse_customer_csv(customers)
    change = service.untag_customers if remove else service.tag_customers
    result = change(db, editor.workspace, tag_id, actor=editor.caller.actor, customer_ids=ids, identities=pairs)
    flash(request, N_("%(changed)s changed, %(unchanged)s unchanged, %(unknown)s not found."), changed=result.changed,
          unchanged=result.unchanged, unknown=len(result.unknown))
    return RedirectResponse(request.app.url_path_for("tag_detail", tag_id=tag_id), status_code=303)


@router.post("/tags/{tag_id}/delete", name="tag_delete")
def delete_tag(request: Request, db: Db, editor: EditorDep, tag_id: int) -> Response:
    service.delete_tag(db, editor.workspace, tag_id, editor.caller.actor)
    flash(request, N_("Tag deleted."))
    return RedirectResponse(request.app.url_path_for("tags"), status_code=303)
