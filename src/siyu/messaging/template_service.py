"""Saving, reading and previewing message templates; preparing a template (or inline content) to send."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.messaging.channels import adapter_class
from siyu.messaging.errors import TemplateInvalid, TemplateNameTaken, TemplateNotFound
from siyu.messaging.models import MessageTemplate
from siyu.messaging.outbox import PreparedTemplate
from siyu.messaging.templates import TemplateSpec, compile_spec, customer_variables, missing_context, validate_spec
from siyu.workspaces.service import WorkspaceContext

INLINE_KEYS = frozenset({"kind", "text", "subject", "image_url", "link", "miniprogram", "material_id",
                         "subscription_topic"})


def spec_of(template: MessageTemplate) -> TemplateSpec:
    return TemplateSpec(template.kind, template.body, template.subject, dict(template.payload or {}))


def create_template(session: Session, ctx: WorkspaceContext, *, name: str, channel: str, kind: str, body: str = "",
                    subject: str | None = None, payload: dict[str, Any] | None = None, purpose: str = "marketing",
                    actor: str) -> MessageTemplate:
    adapter_class(channel)
    spec = TemplateSpec(kind, body, subject, payload or {})
    variables = validate_spec(channel, spec)
    if session.scalar(select(MessageTemplate.id).where(MessageTemplate.workspace_id == ctx.id,
                                                       MessageTemplate.name == name)) is not None:
        raise TemplateNameTaken(f"a template named {name!r} exists", field="name")
    now = clock.now()
    template = MessageTemplate(workspace_id=ctx.id, name=name, channel=channel, kind=kind, purpose=purpose,
                               subject=subject, body=body, payload=payload or {}, variables=variables,
                               created_at=now, updated_at=now)
    session.add(template)
    session.flush()
    record_audit(session, ctx.id, actor, "template.created", "message_template", template.id, {"name": name})
    return template


def update_template(session: Session, ctx: WorkspaceContext, template_id: int, changes: dict[str, Any], *,
                    actor: str) -> MessageTemplate:
    template = get_template(session, ctx.id, template_id)
    fields = {"name", "kind", "body", "subject", "payload", "purpose"}
    unknown = set(changes) - fields
    if unknown:
        raise ValidationFailed(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    merged = {f: changes.get(f, getattr(template, f)) for f in fields}
    spec = TemplateSpec(merged["kind"], merged["body"], merged["subject"], merged["payload"] or {})
    variables = validate_spec(template.channel, spec)
    if merged["name"] != template.name and session.scalar(select(MessageTemplate.id).where(
            MessageTemplate.workspace_id == ctx.id, MessageTemplate.name == merged["name"])) is not None:
        raise TemplateNameTaken(f"a template named {merged['name']!r} exists", field="name")
    for key, value in merged.items():
        setattr(template, key, value)
    template.variables = variables
    template.updated_at = clock.now()
    session.flush()
    record_audit(session, ctx.id, actor, "template.updated", "message_template", template.id,
                 {"fields": sorted(changes)})
    return template


def archive_template(session: Session, ctx: WorkspaceContext, template_id: int, *, actor: str) -> MessageTemplate:
    template = get_template(session, ctx.id, template_id)
    template.archived_at = template.archived_at or clock.now()
    record_audit(session, ctx.id, actor, "template.archived", "message_template", template.id, {})
    session.flush()
    return template


def get_template(session: Session, workspace_id: int, template_id: int) -> MessageTemplate:
    template = session.scalar(select(MessageTemplate).where(MessageTemplate.workspace_id == workspace_id,
                                                            MessageTemplate.id == template_id))
    if template is None:
        raise TemplateNotFound(f"no template {template_id}", field="template_id")
    return template


def list_templates(session: Session, workspace_id: int, *, channel: str | None = None,
                   include_archived: bool = False) -> list[MessageTemplate]:
    stmt = select(MessageTemplate).where(MessageTemplate.workspace_id == workspace_id)
    if channel:
        stmt = stmt.where(MessageTemplate.channel == channel)
    if not include_archived:
        stmt = stmt.where(MessageTemplate.archived_at.is_(None))
    return list(session.scalars(stmt.order_by(MessageTemplate.id.desc()).limit(500)))


def preview_template(session: Session, ctx: WorkspaceContext, template_id: int, customer_id: int,
                     context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The template as this customer would get it (links not yet tracked); lists what the context lacks."""
    from siyu.customers.service import contact_profiles, resolve_customer_id

    template = get_template(session, ctx.id, template_id)
    survivor = resolve_customer_id(session, ctx.id, customer_id)
    (profile,) = contact_profiles(session, ctx.id, [survivor])
    from siyu.loyalty.service.members import tier_names_of

    tier = tier_names_of(session, ctx.id, [survivor]).get(survivor)
    context = context or {}
    variables: dict[str, Any] = {"workspace": {"name": ctx.name}, "customer": customer_variables(profile, tier),
                                 "unsubscribe_url": "(unsubscribe link)",
                                 **{k: context[k] for k in ("coupon", "staff", "params") if k in context}}
    content = compile_spec(spec_of(template)).render(variables)
    return {"template_id": template.id, "customer_id": survivor, "content": content,
            "missing": missing_context(list(template.variables), context)}


def prepare(session: Session, workspace_id: int, channel: str, *, template_id: int | None = None,
            content: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> PreparedTemplate:
    """A stored template or inline content, validated and compiled for `channel`; the send context
    must give every sender-supplied variable the template uses."""
    if (template_id is None) == (content is None):
        raise ValidationFailed("give either template_id or content", field="template_id")
    if template_id is not None:
        template = get_template(session, workspace_id, template_id)
        if template.archived_at is not None:
            raise TemplateInvalid(f"template {template_id} is archived", field="template_id")
        if template.channel != channel:
            raise TemplateInvalid(f"template {template_id} is for the {template.channel} channel, not {channel}",
                                  field="template_id")
        spec, variables = spec_of(template), list(template.variables)
    else:
        assert content is not None
        unknown = set(content) - INLINE_KEYS
        if unknown:
            raise ValidationFailed(f"content has unknown fields: {', '.join(sorted(unknown))}", field="content")
        payload = {k: v for k, v in content.items() if k not in ("kind", "text", "subject")}
        spec = TemplateSpec(str(content.get("kind", "text")), str(content.get("text", "")), content.get("subject"),
                            payload)
        variables = validate_spec(channel, spec)
    missing = missing_context(variables, context or {})
    if missing:
        raise ValidationFailed(f"the send context lacks {', '.join(missing)}, which the template uses",
                               field="context", code="template_context_missing")
    return PreparedTemplate(template_id, compile_spec(spec), tuple(variables),
                            str(spec.payload.get("subscription_topic", "")))
