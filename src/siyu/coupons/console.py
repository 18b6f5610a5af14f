"""Console pages of coupons: the templates with their stats (issued, redeemed, redemption rate, GMV
and discount of redeemed orders), a template's detail, creating a template, pausing one."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from siyu.coupons import service
from siyu.coupons.schemas import TemplateIn, TemplatePatch
from siyu.kit.errors import ValidationFailed
from siyu.web.console import EditorDep, ViewerDep, console_router
from siyu.web.deps import Db
from siyu.web.templating import N_, flash, render

router = console_router()
COUPONS_SHOWN = 50
EXAMPLE = {"name": "满200减20", "kind": "threshold_off", "amount_off_fen": 2000, "threshold_fen": 20000,
           "valid_days": 30, "total_stock": 10000, "per_customer_limit": 1, "categories": [], "skus": []}


@router.get("/coupons", name="coupons")
def coupons_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    templates = service.list_templates(db, viewer.workspace.id)
    return render(request, "coupons/list.html", {
        "templates": templates, "stats": service.template_stats(db, viewer.workspace.id, [t.id for t in templates]),
        "example": json.dumps(EXAMPLE, ensure_ascii=False, indent=2)})


@router.post("/coupons/templates", name="coupon_template_create")
def create_template(request: Request, db: Db, editor: EditorDep, template: Annotated[str, Form()] = "") -> Response:
    try:
        data = TemplateIn.model_validate(json.loads(template))
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"not JSON: {exc.msg} (line {exc.lineno})", field="template") from exc
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ValidationFailed(str(first["msg"]), field=".".join(str(p) for p in first["loc"]) or None) from exc
    created = service.create_template(db, editor.workspace, data, actor=editor.caller.actor)
    flash(request, N_("Coupon template created."))
    return RedirectResponse(request.app.url_path_for("coupon_template", template_id=str(created.id)), status_code=303)


@router.get("/coupons/templates/{template_id}", name="coupon_template")
def template_page(request: Request, db: Db, viewer: ViewerDep, template_id: int) -> Response:
    ws = viewer.workspace
    template = service.get_template(db, ws.id, template_id)
    coupons, _ = service.list_coupons(db, ws.id, template_id=template.id, limit=COUPONS_SHOWN)
    return render(request, "coupons/detail.html", {
        "template": template, "stats": service.template_stats(db, ws.id, [template.id])[template.id],
        "coupons": coupons})


@router.post("/coupons/templates/{template_id}/status", name="coupon_template_status")
def change_status(request: Request, db: Db, editor: EditorDep, template_id: int,
                  status: Annotated[str, Form()] = "") -> Response:
    try:
        patch = TemplatePatch.model_validate({"status": status})
    except ValidationError as exc:
        raise ValidationFailed("status is active, paused or archived", field="status") from exc
    service.update_template(db, editor.workspace, template_id, patch, actor=editor.caller.actor)
    flash(request, N_("Coupon template updated."))
    return RedirectResponse(request.app.url_path_for("coupon_template", template_id=str(template_id)),
                            status_code=303)
