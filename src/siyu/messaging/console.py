"""Console pages of messaging (templates in web/templates/messaging/): the outbox at a glance,
broadcasts (create, preview, start, pause, resume, cancel, results), message templates (with a
preview for a real customer), deliveries and why each went or did not, a customer's message history
and contact status, opt-outs, and the policy, quotas and channels. And the public unsubscribe page.

Routes stay thin: each calls one service function; JSON fields are parsed here, validated there."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from siyu.kit.errors import ValidationFailed
from siyu.kit.timefmt import zone
from siyu.messaging import broadcasts, deliveries, preferences, quotas, settings, template_service
from siyu.messaging.channels import adapter_class, channel_names
from siyu.web.console import EditorDep, ViewerDep, console_router
from siyu.web.deps import Db
from siyu.web.templating import N_, flash, render

router = console_router()
ACTIONS = {"start": broadcasts.start_broadcast, "pause": broadcasts.pause_broadcast,
           "resume": broadcasts.resume_broadcast, "cancel": broadcasts.cancel_broadcast}
ACTION_DONE = {"start": N_("Broadcast scheduled."), "pause": N_("Broadcast paused."),
               "resume": N_("Broadcast resumed."), "cancel": N_("Broadcast cancelled.")}


def render_unsubscribe(request: Request, code: str, *, done: bool) -> HTMLResponse:
    return render(request, "messaging/unsubscribe.html", {"done": done, "code": code})


def _json_field(text: str, field: str) -> Any:
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"{field} is not JSON: {exc.msg} (line {exc.lineno})", field=field) from exc


def _redirect(request: Request, route: str, **params: Any) -> Response:
    return RedirectResponse(request.app.url_path_for(route, **{k: str(v) for k, v in params.items()}),
                            status_code=303)


# -- overview and broadcasts --------------------------------------------------------------------

@router.get("/messaging", name="messaging")
def overview(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace.id
    return render(request, "messaging/overview.html", {
        "counts": deliveries.state_counts(db, ws), "broadcasts": broadcasts.list_broadcasts(db, ws, limit=20)})


@router.get("/messaging/broadcasts/new", name="messaging_broadcast_new")
def broadcast_form(request: Request, db: Db, editor: EditorDep) -> Response:
    return render(request, "messaging/broadcast_new.html", {
        "templates": template_service.list_templates(db, editor.workspace.id),
        "channels": sorted(settings.load_channels(db, editor.workspace.id))})


@router.post("/messaging/broadcasts", name="messaging_broadcast_create")
def create_broadcast(request: Request, db: Db, editor: EditorDep, name: Annotated[str, Form()] = "",
                     channel: Annotated[str, Form()] = "sandbox", template_id: Annotated[int, Form()] = 0,
                     template_b: Annotated[int | None, Form()] = None, split_a: Annotated[int, Form()] = 50,
                     audience_kind: Annotated[str, Form()] = "all", audience_ref: Annotated[str, Form()] = "",
                     audience_csv: Annotated[str, Form()] = "", send_at: Annotated[str, Form()] = "",
                     rate_per_minute: Annotated[int | None, Form()] = None,
                     context: Annotated[str, Form()] = "{}") -> Response:
    variants: list[dict[str, Any]] = [{"template_id": template_id}]
    if template_b:
        variants = [{"name": "A", "template_id": template_id, "percent": split_a},
                    {"name": "B", "template_id": template_b, "percent": 100 - split_a}]
    audience = _audience(audience_kind, audience_ref, audience_csv)
    when = datetime.fromisoformat(send_at).replace(tzinfo=zone(editor.workspace.timezone)) if send_at else None
    broadcast = broadcasts.create_broadcast(
        db, editor.workspace, name=name.strip() or "群发", channel=channel, audience=audience, variants=variants,
        context=_json_field(context, "context"), send_at=when, rate_per_minute=rate_per_minute or None,
        actor=editor.caller.actor)
    flash(request, N_("Broadcast saved as a draft. Check the preview, then start it."))
    return _redirect(request, "messaging_broadcast", broadcast_id=broadcast.id)


def _audience(kind: str, ref: str, csv: str) -> dict[str, Any]:
    if kind == "csv":
        return {"kind": "csv", "csv": csv}
    if kind == "list":
        try:
            return {"kind": "list", "customer_ids": [int(p) for p in ref.replace(",", " ").split()]}
        except ValueError as exc:
            raise ValidationFailed("customer ids are numbers separated by spaces or commas",
                                   field="audience.customer_ids") from exc
    if kind in ("tag", "segment"):
        if not ref.strip().isdigit():
            raise ValidationFailed(f"give the {kind}'s number", field=f"audience.{kind}_id")
        return {"kind": kind, f"{kind}_id": int(ref)}
    return {"kind": kind}


@router.get("/messaging/broadcasts/{broadcast_id}", name="messaging_broadcast")
def broadcast_page(request: Request, db: Db, viewer: ViewerDep, broadcast_id: int, preview: bool = False) -> Response:
    ws = viewer.workspace
    broadcast = broadcasts.get_broadcast(db, ws.id, broadcast_id)
    return render(request, "messaging/broadcast.html", {
        "broadcast": broadcast, "results": broadcasts.broadcast_results(db, ws.id, broadcast_id),
        "preview": broadcasts.preview_broadcast(db, ws, broadcast_id) if preview or broadcast.state == "draft"
        else None})


@router.post("/messaging/broadcasts/{broadcast_id}/{action}", name="messaging_broadcast_action")
def broadcast_action(request: Request, db: Db, editor: EditorDep, broadcast_id: int, action: str) -> Response:
    if action not in ACTIONS:
        raise ValidationFailed(f"no action {action!r}", field="action")
    ACTIONS[action](db, editor.workspace, broadcast_id, actor=editor.caller.actor)
    flash(request, ACTION_DONE[action])
    return _redirect(request, "messaging_broadcast", broadcast_id=broadcast_id)


# -- templates -------------------------------------------------------------------------------------

@router.get("/messaging/templates", name="messaging_templates")
def templates_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    return render(request, "messaging/templates.html", {
        "templates": template_service.list_templates(db, viewer.workspace.id, include_archived=True),
        "channels": channel_names()})


@router.post("/messaging/templates", name="messaging_template_create")
def create_template(request: Request, db: Db, editor: EditorDep, name: Annotated[str, Form()] = "",
                    channel: Annotated[str, Form()] = "sandbox", kind: Annotated[str, Form()] = "text",
                    purpose: Annotated[str, Form()] = "marketing", subject: Annotated[str, Form()] = "",
                    body: Annotated[str, Form()] = "", payload: Annotated[str, Form()] = "{}") -> Response:
    template = template_service.create_template(
        db, editor.workspace, name=name.strip(), channel=channel, kind=kind, purpose=purpose,
        subject=subject or None, body=body, payload=_json_field(payload, "payload"), actor=editor.caller.actor)
    flash(request, N_("Template saved."))
    return _redirect(request, "messaging_template", template_id=template.id)


@router.get("/messaging/templates/{template_id}", name="messaging_template")
def template_page(request: Request, db: Db, viewer: ViewerDep, template_id: int, customer_id: int | None = None,
                  context: str = "") -> Response:
    ws = viewer.workspace
    preview = (template_service.preview_template(db, ws, template_id, customer_id, _json_field(context, "context"))
               if customer_id else None)
    return render(request, "messaging/template.html", {
        "template": template_service.get_template(db, ws.id, template_id), "preview": preview,
        "customer_id": customer_id or "", "context": context})


@router.post("/messaging/templates/{template_id}/archive", name="messaging_template_archive")
def archive_template(request: Request, db: Db, editor: EditorDep, template_id: int) -> Response:
    template_service.archive_template(db, editor.workspace, template_id, actor=editor.caller.actor)
    flash(request, N_("Template archived."))
    return _redirect(request, "messaging_template", template_id=template_id)


# -- deliveries and customers ---------------------------------------------------------------------

@router.get("/messaging/messages", name="messaging_messages")
def messages_page(request: Request, db: Db, viewer: ViewerDep, state: str = "", channel: str = "", reason: str = "",
                  broadcast_id: int | None = None, cursor: str | None = None) -> Response:
    page = deliveries.list_messages(db, viewer.workspace.id, state=state or None, channel=channel or None,
                                    reason=reason or None, broadcast_id=broadcast_id, cursor=cursor, limit=50)
    return render(request, "messaging/messages.html", {
        "page": page, "filters": {"state": state, "channel": channel, "reason": reason,
                                  "broadcast_id": broadcast_id or ""}})


@router.get("/messaging/messages/{message_id}", name="messaging_message")
def message_page(request: Request, db: Db, viewer: ViewerDep, message_id: int) -> Response:
    return render(request, "messaging/message.html",
                  {"story": deliveries.message_story(db, viewer.workspace.id, message_id)})


@router.get("/messaging/customers/{customer_id}", name="messaging_customer")
def customer_page(request: Request, db: Db, viewer: ViewerDep, customer_id: int) -> Response:
    return render(request, "messaging/customer.html",
                  {"status": deliveries.contact_status(db, viewer.workspace, customer_id),
                   "channels": ["*", *channel_names()]})


@router.post("/messaging/customers/{customer_id}/preferences", name="messaging_customer_preference")
def set_preference(request: Request, db: Db, editor: EditorDep, customer_id: int,
                   channel: Annotated[str, Form()] = "*", purpose: Annotated[str, Form()] = "marketing",
                   status: Annotated[str, Form()] = "opted_out", note: Annotated[str, Form()] = "") -> Response:
    row = preferences.set_preference(db, editor.workspace.id, customer_id, channel=channel, purpose=purpose,
                                     status=status, source="console", actor=editor.caller.actor, note=note or None)
    flash(request, N_("Contact preference saved."))
    return _redirect(request, "messaging_customer", customer_id=row.customer_id)


@router.get("/messaging/preferences", name="messaging_preferences")
def preferences_page(request: Request, db: Db, viewer: ViewerDep, status: str = "opted_out",
                     cursor: str | None = None) -> Response:
    page = preferences.list_preferences(db, viewer.workspace.id, status=status or None, cursor=cursor, limit=50)
    return render(request, "messaging/preferences.html", {"page": page, "status": status})


# -- policy, quotas, channels -----------------------------------------------------------------------

@router.get("/messaging/policy", name="messaging_policy")
def policy_page(request: Request, db: Db, viewer: ViewerDep) -> Response:
    ws = viewer.workspace.id
    policy = settings.load_policy(db, ws)
    configured = settings.load_channels(db, ws)
    return render(request, "messaging/policy.html", {
        "policy": policy, "policy_json": json.dumps(policy.model_dump(mode="json"), ensure_ascii=False, indent=2),
        "quotas": quotas.quota_rows(db, ws), "channel_names": channel_names(),
        "channels": {name: {**s.model_dump(mode="json"), "config": adapter_class(name).redact(s.config)}
                     for name, s in configured.items()}})


@router.post("/messaging/policy", name="messaging_policy_save")
def save_policy(request: Request, db: Db, editor: EditorDep, policy: Annotated[str, Form()] = "{}") -> Response:
    changes = _json_field(policy, "policy")
    if not isinstance(changes, dict):
        raise ValidationFailed("the policy is a JSON object", field="policy")
    settings.update_policy(db, editor.workspace.id, changes)
    flash(request, N_("Contact policy saved."))
    return _redirect(request, "messaging_policy")


@router.post("/messaging/quotas", name="messaging_quota_save")
def save_quota(request: Request, db: Db, editor: EditorDep, channel: Annotated[str, Form()] = "",
               name: Annotated[str, Form()] = "", scope: Annotated[str, Form()] = "customer",
               period: Annotated[str, Form()] = "day", max_count: Annotated[int, Form()] = 1,
               active: Annotated[bool, Form()] = False) -> Response:
    quotas.set_quota(db, editor.workspace.id, channel=channel.strip(), name=name.strip(), scope=scope, period=period,
                     max_count=max_count, purposes=[], active=active)
    flash(request, N_("Platform quota saved."))
    return _redirect(request, "messaging_policy")


@router.post("/messaging/channels/{channel}", name="messaging_channel_save")
def save_channel(request: Request, db: Db, editor: EditorDep, channel: str, config: Annotated[str, Form()] = "{}",
                 enabled: Annotated[bool, Form()] = False,
                 rate_per_minute: Annotated[int | None, Form()] = None) -> Response:
    settings.configure_channel(db, editor.workspace.id, channel, {
        "enabled": enabled, "rate_per_minute": rate_per_minute or None, "config": _json_field(config, "config")})
    flash(request, N_("Channel saved."))
    return _redirect(request, "messaging_policy")
