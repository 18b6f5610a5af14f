"""REST routes of messaging under /api/v1/messaging, plus the public ends of messages: provider
callbacks (signature-checked by the channel adapter), tracked links (/l/…) and unsubscribe (/u/…)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from siyu.messaging import broadcasts, deliveries, engagement, preferences, quotas, sending, settings, template_service
from siyu.messaging.channels import adapter_class, channel_names
from siyu.messaging.holdout import refresh_holdout
from siyu.messaging.schemas import (
    BroadcastDetailOut,
    BroadcastIn,
    BroadcastOut,
    BroadcastPreviewOut,
    ChannelIn,
    ContactStatusOut,
    MessageDetailOut,
    MessageListOut,
    MessageOut,
    OneTimeConsentIn,
    PreferenceIn,
    PreferenceListOut,
    PreferenceOut,
    PreviewIn,
    QuotaIn,
    QuotaOut,
    SandboxMessageOut,
    SendIn,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
)
from siyu.web.deps import Db, Reader, Writer

router = APIRouter(tags=["messaging"])
API = "/api/v1/messaging"


# -- templates -------------------------------------------------------------------------------------

@router.get(f"{API}/templates", response_model=list[TemplateOut])
def list_templates(caller: Reader, db: Db, channel: str | None = None, include_archived: bool = False) -> Any:
    return template_service.list_templates(db, caller.workspace.id, channel=channel, include_archived=include_archived)


@router.post(f"{API}/templates", response_model=TemplateOut, status_code=201,
             summary="Create a template; unknown variables are refused here, not at send time")
def create_template(caller: Writer, db: Db, body: TemplateIn) -> Any:
    return template_service.create_template(db, caller.workspace, **body.model_dump(), actor=caller.actor)


@router.get(f"{API}/templates/{{template_id}}", response_model=TemplateOut)
def get_template(caller: Reader, db: Db, template_id: int) -> Any:
    return template_service.get_template(db, caller.workspace.id, template_id)


@router.patch(f"{API}/templates/{{template_id}}", response_model=TemplateOut)
def update_template(caller: Writer, db: Db, template_id: int, body: TemplatePatch) -> Any:
    return template_service.update_template(db, caller.workspace, template_id, body.model_dump(exclude_unset=True),
                                            actor=caller.actor)


@router.post(f"{API}/templates/{{template_id}}/archive", response_model=TemplateOut)
def archive_template(caller: Writer, db: Db, template_id: int) -> Any:
    return template_service.archive_template(db, caller.workspace, template_id, actor=caller.actor)


@router.post(f"{API}/templates/{{template_id}}/preview", summary="Render a template for a real customer")
def preview_template(caller: Reader, db: Db, template_id: int, body: PreviewIn) -> dict[str, Any]:
    return template_service.preview_template(db, caller.workspace, template_id, body.customer_id, body.context)


# -- sending and the outbox --------------------------------------------------------------------------

@router.post(f"{API}/messages", response_model=MessageOut, summary="Send one message through the outbox",
             responses={200: {"description": "the key was used before: the first message"},
                        201: {"description": "written: queued, deferred or suppressed (see state, reason)"}})
def send_message(caller: Writer, db: Db, body: SendIn, response: Response) -> Any:
    message, created = sending.submit_message(db, caller.workspace, **body.model_dump(), source="api")
    response.status_code = 201 if created else 200
    return message


@router.get(f"{API}/messages", response_model=MessageListOut)
def list_messages(caller: Reader, db: Db, customer_id: int | None = None, broadcast_id: int | None = None,
                  state: str | None = None, channel: str | None = None, reason: str | None = None,
                  cursor: str | None = None, limit: int = Query(50, ge=1, le=200)) -> Any:
    page = deliveries.list_messages(db, caller.workspace.id, customer_id=customer_id, broadcast_id=broadcast_id,
                                    state=state, channel=channel, reason=reason, cursor=cursor, limit=limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get(f"{API}/messages/{{message_id}}", response_model=MessageDetailOut,
            summary="A message with every attempt and event: why it went, waited or did not")
def get_message(caller: Reader, db: Db, message_id: int) -> Any:
    story = deliveries.message_story(db, caller.workspace.id, message_id)
    return {**MessageOut.model_validate(story.message).model_dump(), "attempt_log": story.attempts,
            "events": story.events}


@router.post(f"{API}/messages/{{message_id}}/cancel", response_model=MessageOut)
def cancel_message(caller: Writer, db: Db, message_id: int) -> Any:
    return deliveries.cancel_message(db, caller.workspace, message_id, actor=caller.actor)


@router.post(f"{API}/messages/{{message_id}}/retry", response_model=MessageOut,
             summary="Send a failed or unknown message again (the policy decides afresh)")
def retry_message(caller: Writer, db: Db, message_id: int) -> Any:
    return deliveries.retry_message(db, caller.workspace, message_id, actor=caller.actor)


@router.get(f"{API}/sandbox/messages", response_model=list[SandboxMessageOut],
            summary="What the sandbox channel received (the demo's stand-in for a provider)")
def sandbox_messages(caller: Reader, db: Db, customer_id: int | None = None,
                     limit: int = Query(50, ge=1, le=500)) -> Any:
    return deliveries.sandbox_inbox(db, caller.workspace.id, customer_id=customer_id, limit=limit)


# -- customers: contact status, preferences, consents ----------------------------------------------------

@router.get(f"{API}/customers/{{customer_id}}/contact", response_model=ContactStatusOut,
            summary="Preferences, holdout, counters and recent messages of one customer")
def contact_status(caller: Reader, db: Db, customer_id: int) -> Any:
    status = deliveries.contact_status(db, caller.workspace, customer_id)
    return {"customer_id": status.customer_id, "preferences": status.preferences, "in_holdout": status.in_holdout,
            "usage": [{"limit_key": k, "period_start": p, "used": u} for k, p, u in status.usage],
            "ignored_in_a_row": status.ignored_in_a_row, "last_messages": status.last_messages}


@router.put(f"{API}/customers/{{customer_id}}/preferences", response_model=PreferenceOut,
            summary="Record a consent, opt-out or block for a channel ('*' = all) and purpose")
def set_preference(caller: Writer, db: Db, customer_id: int, body: PreferenceIn) -> Any:
    return preferences.set_preference(db, caller.workspace.id, customer_id, channel=body.channel,
                                      purpose=body.purpose, status=body.status, source="api", actor=caller.actor,
                                      note=body.note)


@router.post(f"{API}/customers/{{customer_id}}/one-time-consents", status_code=201,
             summary="Grant one-time subscription-message consents (each allows one send)")
def grant_one_time(caller: Writer, db: Db, customer_id: int, body: OneTimeConsentIn) -> dict[str, int]:
    return {"granted": preferences.grant_one_time_consents(db, caller.workspace.id, customer_id,
                                                           channel=body.channel, topic=body.topic, count=body.count)}


@router.get(f"{API}/preferences", response_model=PreferenceListOut, summary="Opt-outs, blocks and consents")
def list_preferences(caller: Reader, db: Db, status: str | None = None, channel: str | None = None,
                     cursor: str | None = None, limit: int = Query(50, ge=1, le=500)) -> Any:
    page = preferences.list_preferences(db, caller.workspace.id, status=status, channel=channel, cursor=cursor,
                                        limit=limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


# -- policy, quotas, channels ------------------------------------------------------------------------------

@router.get(f"{API}/policy", summary="The contact policy of this workspace")
def get_policy(caller: Reader, db: Db) -> dict[str, Any]:
    return settings.load_policy(db, caller.workspace.id).model_dump(mode="json")


@router.patch(f"{API}/policy", summary="Change top-level policy settings (the whole result is validated)")
def update_policy(caller: Writer, db: Db, body: dict[str, Any]) -> dict[str, Any]:
    return settings.update_policy(db, caller.workspace.id, body).model_dump(mode="json")


@router.post(f"{API}/holdout/refresh", summary="Record the current holdout draw per customer now")
def refresh_holdout_now(caller: Writer, db: Db) -> dict[str, int]:
    return {"members": refresh_holdout(db, caller.workspace.id)}


@router.get(f"{API}/quotas", response_model=list[QuotaOut], summary="Platform quotas in force (defaults and own)")
def list_quotas(caller: Reader, db: Db) -> Any:
    return quotas.quota_rows(db, caller.workspace.id)


@router.put(f"{API}/quotas", response_model=QuotaOut, summary="Set this workspace's quota (overrides a default)")
def set_quota(caller: Writer, db: Db, body: QuotaIn) -> Any:
    return quotas.set_quota(db, caller.workspace.id, **body.model_dump())


@router.get(f"{API}/channels", summary="Channels: the known adapters and this workspace's settings (secrets hidden)")
def list_channels(caller: Reader, db: Db) -> dict[str, Any]:
    configured = settings.load_channels(db, caller.workspace.id)
    return {"available": channel_names(),
            "configured": {name: {**s.model_dump(mode="json"), "config": adapter_class(name).redact(s.config)}
                           for name, s in configured.items()}}


@router.put(f"{API}/channels/{{channel}}", summary="Configure a channel (its adapter validates the config)")
def configure_channel(caller: Writer, db: Db, channel: str, body: ChannelIn) -> dict[str, Any]:
    saved = settings.configure_channel(db, caller.workspace.id, channel, body.model_dump())
    return {**saved.model_dump(mode="json"), "config": adapter_class(channel).redact(saved.config)}


# -- broadcasts --------------------------------------------------------------------------------------------

@router.get(f"{API}/broadcasts", response_model=list[BroadcastOut])
def list_broadcasts(caller: Reader, db: Db) -> Any:
    return broadcasts.list_broadcasts(db, caller.workspace.id)


@router.post(f"{API}/broadcasts", response_model=BroadcastOut, status_code=201, summary="Create a broadcast (draft)")
def create_broadcast(caller: Writer, db: Db, body: BroadcastIn) -> Any:
    return broadcasts.create_broadcast(db, caller.workspace, name=body.name, channel=body.channel,
                                       audience=body.audience.model_dump(exclude_none=True),
                                       variants=body.variant_list(), context=body.context, send_at=body.send_at,
                                       rate_per_minute=body.rate_per_minute, droppable=body.droppable,
                                       purpose=body.purpose, actor=caller.actor)


@router.get(f"{API}/broadcasts/{{broadcast_id}}", response_model=BroadcastDetailOut,
            summary="A broadcast with its progress and results per variant")
def get_broadcast(caller: Reader, db: Db, broadcast_id: int) -> Any:
    broadcast = broadcasts.get_broadcast(db, caller.workspace.id, broadcast_id)
    return {**BroadcastOut.model_validate(broadcast).model_dump(),
            "results": broadcasts.broadcast_results(db, caller.workspace.id, broadcast_id)}


@router.post(f"{API}/broadcasts/{{broadcast_id}}/preview", response_model=BroadcastPreviewOut,
             summary="How many the policy would send, defer and suppress, and why (nothing is written)")
def preview_broadcast(caller: Reader, db: Db, broadcast_id: int) -> Any:
    return broadcasts.preview_broadcast(db, caller.workspace, broadcast_id)


@router.post(f"{API}/broadcasts/{{broadcast_id}}/start", response_model=BroadcastOut)
def start_broadcast(caller: Writer, db: Db, broadcast_id: int) -> Any:
    return broadcasts.start_broadcast(db, caller.workspace, broadcast_id, actor=caller.actor)


@router.post(f"{API}/broadcasts/{{broadcast_id}}/pause", response_model=BroadcastOut)
def pause_broadcast(caller: Writer, db: Db, broadcast_id: int) -> Any:
    return broadcasts.pause_broadcast(db, caller.workspace, broadcast_id, actor=caller.actor)


@router.post(f"{API}/broadcasts/{{broadcast_id}}/resume", response_model=BroadcastOut)
def resume_broadcast(caller: Writer, db: Db, broadcast_id: int) -> Any:
    return broadcasts.resume_broadcast(db, caller.workspace, broadcast_id, actor=caller.actor)


@router.post(f"{API}/broadcasts/{{broadcast_id}}/cancel", response_model=BroadcastOut)
def cancel_broadcast(caller: Writer, db: Db, broadcast_id: int) -> Any:
    return broadcasts.cancel_broadcast(db, caller.workspace, broadcast_id, actor=caller.actor)


# -- the public ends of messages ------------------------------------------------------------------------

@router.post(f"{API}/receipts/{{workspace_id}}/{{channel}}", include_in_schema=True,
             summary="Provider callback: delivery reports and replies, signed per the channel's scheme")
async def provider_callback(request: Request, workspace_id: int, channel: str, db: Db) -> JSONResponse:
    body = await request.body()
    summary = engagement.take_receipts(db, workspace_id, channel, body, dict(request.headers))
    return JSONResponse({"delivered": summary.delivered, "failed": summary.failed, "replies": summary.replies,
                         "unmatched": summary.unmatched})


@router.get("/l/{code}", include_in_schema=False)
def follow_link(code: str, db: Db) -> RedirectResponse:
    return RedirectResponse(engagement.follow_link(db, code), status_code=302)


@router.get("/u/{code}", include_in_schema=False, response_class=HTMLResponse)
def unsubscribe_page(request: Request, code: str) -> HTMLResponse:
    """A confirmation page: link scanners follow GETs, so only the POST opts out."""
    from siyu.messaging.console import render_unsubscribe

    return render_unsubscribe(request, code, done=False)


@router.post("/u/{code}", include_in_schema=False, response_class=HTMLResponse)
def unsubscribe(request: Request, code: str, db: Db) -> HTMLResponse:
    """Opts out (also the RFC 8058 one-click POST a mail client sends for List-Unsubscribe)."""
    from siyu.messaging.console import render_unsubscribe

    engagement.unsubscribe(db, code)
    return render_unsubscribe(request, code, done=True)
