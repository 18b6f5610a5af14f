"""Console pages of the membership programme: set-up (settings and the tier ladder with benefits),
and a member's detail (tier, progress to the next tier, points with the ledger, coupons)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from siyu.kit.errors import ValidationFailed
from siyu.loyalty import service
from siyu.loyalty.errors import ProgrammeNotConfigured
from siyu.loyalty.schemas import ProgrammeIn, ProgrammeOut, TierIn, TiersIn
from siyu.web.console import EditorDep, ViewerDep, console_router
from siyu.web.deps import Db
from siyu.web.templating import N_, flash, render

router = console_router()
LEDGER_SHOWN = 50
MEMBERS_SHOWN = 20


def _invalid(exc: ValidationError) -> ValidationFailed:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return ValidationFailed(str(first["msg"]), field=field)


def _tiers_json(tiers: list[Any]) -> str:
    rows = [TierIn.model_validate(t, from_attributes=True).model_dump() for t in tiers]
    return json.dumps({"tiers": rows}, ensure_ascii=False, indent=2)


@router.get("/loyalty", name="loyalty")
def loyalty_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace
    try:
        programme = service.get_programme(db, ws.id)
    except ProgrammeNotConfigured:
        return render(request, "loyalty/overview.html", {"programme": None, "defaults": ProgrammeIn()})
    tiers = service.ladder(db, ws.id).tiers
    members, _ = service.list_members(db, ws.id, limit=MEMBERS_SHOWN)
    return render(request, "loyalty/overview.html", {
        "programme": programme, "defaults": ProgrammeIn(), "tiers": tiers, "tiers_json": _tiers_json(tiers),
        "counts": service.tier_member_counts(db, ws.id), "runs": service.benefit_runs(db, ws.id),
        "members": members, "tier_names": {t.id: t.name for t in tiers}})


@router.post("/loyalty/programme", name="loyalty_programme_save")
def save_programme(request: Request, db: Db, editor: EditorDep, name: Annotated[str, Form()] = "",
                   points_per_yuan: Annotated[int, Form()] = 1, return_window_days: Annotated[int, Form()] = 7,
                   tier_metric: Annotated[str, Form()] = "spend_fen", tier_window: Annotated[str, Form()] = "lifetime",
                   tier_window_months: Annotated[str, Form()] = "", benefit_day: Annotated[int, Form()] = 1,
                   member_day: Annotated[str, Form()] = "",
                   allow_negative_balance: Annotated[bool, Form()] = False) -> Response:
    ws = editor.workspace
    try:
        current = ProgrammeOut.model_validate(service.get_programme(db, ws.id)).model_dump(
            include=set(ProgrammeIn.model_fields))
    except ProgrammeNotConfigured:
        current = ProgrammeIn().model_dump()
    current.update(name=name, points_per_yuan=points_per_yuan, return_window_days=return_window_days,
                   tier_metric=tier_metric, tier_window=tier_window,
                   tier_window_months=int(tier_window_months) if tier_window_months.strip() else None,
                   benefit_day=benefit_day, member_day=int(member_day) if member_day.strip() else None,
                   allow_negative_balance=allow_negative_balance)
    try:
        data = ProgrammeIn.model_validate(current)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    service.configure_programme(db, ws, data, actor=editor.caller.actor)
    flash(request, N_("Programme saved."))
    return RedirectResponse(request.app.url_path_for("loyalty"), status_code=303)


@router.post("/loyalty/tiers", name="loyalty_tiers_save")
def save_tiers(request: Request, db: Db, editor: EditorDep, tiers: Annotated[str, Form()] = "") -> Response:
    try:
        data = TiersIn.model_validate(json.loads(tiers))
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"not JSON: {exc.msg} (line {exc.lineno})", field="tiers") from exc
    except ValidationError as exc:
        raise _invalid(exc) from exc
    service.set_tiers(db, editor.workspace, data.tiers, actor=editor.caller.actor)
    flash(request, N_("Tier ladder saved."))
    return RedirectResponse(request.app.url_path_for("loyalty"), status_code=303)


@router.get("/loyalty/member", name="loyalty_member_lookup")
def member_lookup(request: Request, viewer: ViewerDep, customer_id: int) -> Response:
    return RedirectResponse(request.app.url_path_for("loyalty_member", customer_id=str(customer_id)),
                            status_code=303)


@router.get("/loyalty/members/{customer_id}", name="loyalty_member")
def member_page(request: Request, db: Db, viewer: ViewerDep, customer_id: int) -> Response:
    from siyu.coupons.service import list_coupons

    ws = viewer.workspace
    summary = service.member_summary(db, ws, customer_id)
    entries, _ = service.member_ledger(db, ws.id, customer_id, limit=LEDGER_SHOWN)
    coupons, _ = list_coupons(db, ws.id, customer_id=summary.member.customer_id, limit=50)
    tiers = service.ladder(db, ws.id).tiers
    return render(request, "loyalty/member.html", {
        "summary": summary, "member": summary.member, "entries": entries, "coupons": coupons,
        "history": service.tier_history(db, ws.id, customer_id), "tier_names": {t.id: t.name for t in tiers}})
