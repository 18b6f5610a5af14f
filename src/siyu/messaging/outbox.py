"""Writing to the outbox: every message — one from another domain, or a broadcast's batch of
thousands — is decided by the contact policy, personalised and written here, in one transaction
with the inventory it reserves. Every worker polls the outbox for due rows (see
siyu.messaging.tasks), so a committed message needs no wake-up call.

`enqueue_message` is the send API of the other domains (journeys, coupons, loyalty, staff tasks).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db.bulk import Bulk
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.messaging import usage
from siyu.messaging.channels import adapter_class
from siyu.messaging.errors import ChannelDisabled, IdempotencyKeyReused, TemplateInvalid
from siyu.messaging.links import link_code, track_urls, unsubscribe_code
from siyu.messaging.models import OutboxMessage
from siyu.messaging.policy import Candidate, ContactPolicy, Decision, Mode
from siyu.messaging.preferences import claim_one_time_consents
from siyu.messaging.settings import ChannelSettings, load_channels, signing_secret
from siyu.messaging.sql import insert_many
from siyu.messaging.templates import CompiledTemplate, customer_variables
from siyu.workspaces.service import WorkspaceContext

STATE_OF = {"send": "queued", "defer": "deferred", "suppress": "suppressed"}
OUTBOX_COLUMNS = (("id", "bigint"), ("workspace_id", "bigint"), ("customer_id", "bigint"), ("channel", "text"),
                  ("purpose", "text"), ("idempotency_key", "text"), ("source", "text"), ("template_id", "bigint"),
                  ("broadcast_id", "bigint"), ("variant", "text"), ("staff_id", "text"), ("address", "text"),
                  ("content", "jsonb"), ("droppable", "boolean"), ("state", "text"), ("reason", "text"),
                  ("detail", "text"), ("due_at", "timestamptz"), ("reservations", "jsonb"), ("attempts", "integer"),
                  ("click_count", "integer"), ("created_at", "timestamptz"))


@dataclass(frozen=True)
class Sender:
    """What the messages of one write share."""

    channel: str
    purpose: str
    source: str
    context: dict[str, Any] = field(default_factory=dict)
    droppable: bool = False
    staff_id: str | None = None
    broadcast_id: int | None = None


@dataclass(frozen=True)
class PreparedTemplate:
    template_id: int | None
    compiled: CompiledTemplate
    variables: tuple[str, ...]
    topic: str = ""
    personal: bool = field(init=False)  # uses the customer's data

    def __post_init__(self) -> None:
        object.__setattr__(self, "personal", any(v == "customer" or v.startswith("customer.") for v in self.variables))


@dataclass(slots=True)
class Draft:
    customer_id: int
    idempotency_key: str
    due_at: datetime
    template: PreparedTemplate
    variant: str | None = None


@dataclass(slots=True)
class Written:
    id: int
    decision: Decision
    state: str
    created: bool = True  # False: the key was in the outbox already (a concurrent writer won); `id` is ours, unused


def channel_settings(session: Session, workspace_id: int, channel: str) -> ChannelSettings:
    """The channel's settings; refused when it is not set up or switched off for this workspace."""
    adapter_class(channel)
    settings = load_channels(session, workspace_id).get(channel)
    if settings is None:
        raise ChannelDisabled(f"the {channel} channel is not configured for this workspace", field="channel")
    if not settings.enabled:
        raise ChannelDisabled(f"the {channel} channel is switched off for this workspace", field="channel")
    return settings


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """A batch allocates some hundred thousand short-lived containers that reference counting frees;
    the cyclic collector would walk them again and again for nothing (a third of a fill's time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_messages(session: Session, ctx: WorkspaceContext, policy: ContactPolicy, sender: Sender,
                   drafts: Sequence[Draft], *, mode: Mode = "reserve", fail_on_render: bool = True) -> list[Written]:
    """Decide, personalise and write `drafts`; with mode="preview" only decide (nothing is written)."""
    if not drafts:
        return []
    with cyclic_gc_paused():
        return _write_messages(session, ctx, policy, sender, drafts, mode, fail_on_render)


def _write_messages(session: Session, ctx: WorkspaceContext, policy: ContactPolicy, sender: Sender,
                    drafts: Sequence[Draft], mode: Mode, fail_on_render: bool) -> list[Written]:
    customer_ids = [d.customer_id for d in drafts]
    address_type = adapter_class(sender.channel).address_type
    addresses: dict[int, str] = {}
    if address_type is not None:
        from siyu.customers.service import identity_values

        addresses = identity_values(session, ctx.id, customer_ids, address_type)
    candidates = [Candidate(d.customer_id, sender.channel, sender.purpose, d.due_at, sender.droppable,
                            sender.staff_id, address_type is not None and d.customer_id not in addresses,
                            d.template.topic) for d in drafts]
    decisions = policy.decide(session, candidates, mode)
    if mode == "preview":
        return [Written(0, decision, STATE_OF[decision.outcome]) for decision in decisions]
    ids = Bulk(session).allocate_ids("outbox", len(drafts))
    writer = _Renderer(session, ctx, policy, sender, [d for d, x in zip(drafts, decisions, strict=True)
                                                      if x.outcome != "suppress"])
    rows: list[tuple[Any, ...]] = []
    written: list[Written] = []
    now = clock.now()
    refunds: list[usage.UsageKey] = []
    one_time: list[tuple[int, int, str]] = []
    for outbox_id, draft, decision in zip(ids, drafts, decisions, strict=True):
        state, reason, detail = STATE_OF[decision.outcome], decision.rule, None
        content: dict[str, Any] = {}
        if decision.outcome != "suppress":
            try:
                content = writer.render(outbox_id, draft)
            except TemplateInvalid as exc:
                if fail_on_render:
                    raise
                state, reason, detail = "failed", "render_failed", exc.message[:500]
                refunds.extend(usage.as_key(r) for r in decision.reservations)
                decision.reservations = []
            if state != "failed" and sender.channel in policy.settings.one_time_consent_channels:
                one_time.append((outbox_id, draft.customer_id, draft.template.topic))
        rows.append((outbox_id, ctx.id, draft.customer_id, sender.channel, sender.purpose, draft.idempotency_key,
                     sender.source, draft.template.template_id, sender.broadcast_id, draft.variant, sender.staff_id,
                     addresses.get(draft.customer_id), content, sender.droppable, state, reason, detail,
                     decision.due_at, decision.reservations, 0, 0, now))
        written.append(Written(outbox_id, decision, state))
    _apply_one_time(session, ctx, sender.channel, one_time, written, rows, refunds)
    if refunds:
        usage.refund(session, ctx.id, refunds)
    inserted = insert_many(session.connection(), "outbox", OUTBOX_COLUMNS, rows,
                           conflict="(workspace_id, idempotency_key) DO NOTHING")
    if inserted < len(rows):
        _mark_lost(session, ctx.id, drafts, written)
    return written


def _mark_lost(session: Session, workspace_id: int, drafts: Sequence[Draft], written: list[Written]) -> None:
    """Which drafts' keys another writer stored first (the insert skipped them): `created=False`."""
    keys = [d.idempotency_key for d in drafts]
    stored: dict[str, int] = {}
    for start in range(0, len(keys), 5000):
        chunk = keys[start:start + 5000]
        stored.update({key: outbox_id for key, outbox_id in session.execute(
            select(OutboxMessage.idempotency_key, OutboxMessage.id).where(
                OutboxMessage.workspace_id == workspace_id, OutboxMessage.idempotency_key.in_(chunk)))})
    for draft, mine in zip(drafts, written, strict=True):
        if stored.get(draft.idempotency_key) != mine.id:
            mine.created = False


def _apply_one_time(session: Session, ctx: WorkspaceContext, channel: str, wanted: list[tuple[int, int, str]],
                    written: list[Written], rows: list[tuple[Any, ...]], refunds: list[usage.UsageKey]) -> None:
    """Claim a one-time consent for each message that needs one; without one it is suppressed
    (a concurrent writer may have taken the consent the policy counted)."""
    if not wanted:
        return
    claimed = claim_one_time_consents(session, ctx.id, channel, wanted)
    position = {w.id: i for i, w in enumerate(written)}
    for outbox_id, _, _ in wanted:
        if outbox_id in claimed:
            continue
        i = position[outbox_id]
        refunds.extend(usage.as_key(r) for r in written[i].decision.reservations)
        written[i].decision = Decision("suppress", written[i].decision.due_at, "no_subscription_consent")
        written[i].state = "suppressed"
        row = dict(zip([name for name, _ in OUTBOX_COLUMNS], rows[i], strict=True))
        row.update(state="suppressed", reason="no_subscription_consent", reservations=[])
        rows[i] = tuple(row.values())


class _Renderer:
    """Personalises drafts: loads the profiles it needs once, signs links per message."""

    def __init__(self, session: Session, ctx: WorkspaceContext, policy: ContactPolicy, sender: Sender,
                 drafts: list[Draft]) -> None:
        self.sender = sender
        self.track = policy.settings.track_links
        self.base = policy.settings.public_base_url.rstrip("/")
        self.secret = signing_secret(session, ctx.id)
        self.unsubscribe = sender.channel == "email" and sender.purpose == "marketing"
        shared: dict[str, Any] = {k: sender.context[k] for k in ("coupon", "staff", "params") if k in sender.context}
        self.shared: dict[str, Any] = {"workspace": {"name": ctx.name}, **shared}
        personal = [d.customer_id for d in drafts if d.template.personal]
        self.profiles: dict[int, Any] = {}
        self.tiers: dict[int, str] = {}  # loyalty tier names, when a template shows the tier
        if personal:
            from siyu.customers.service import contact_profiles

            templates = {id(d.template): d.template for d in drafts}.values()
            attributes = any(_uses_attributes(t.variables) for t in templates)
            self.profiles = {row.id: row for row in contact_profiles(session, ctx.id, personal,
                                                                     with_attributes=attributes)}
            if any("customer.tier" in t.variables for t in templates):
                from siyu.loyalty.service.members import tier_names_of

                self.tiers = tier_names_of(session, ctx.id, personal)
        self._static: dict[int, dict[str, Any]] = {}

    def render(self, outbox_id: int, draft: Draft) -> dict[str, Any]:
        template = draft.template
        wants_unsubscribe = self.unsubscribe or "unsubscribe_url" in template.variables
        if not template.personal and not wants_unsubscribe and not self.track:
            cached = self._static.get(id(template))
            if cached is None:
                cached = self._static[id(template)] = template.compiled.render(self.shared)
            return cached
        variables = dict(self.shared)
        profile = self.profiles.get(draft.customer_id)
        if profile is not None:
            variables["customer"] = customer_variables(profile, self.tiers.get(draft.customer_id))
        unsubscribe_url = f"{self.base}/u/{unsubscribe_code(self.secret, outbox_id)}" if wants_unsubscribe else None
        variables["unsubscribe_url"] = unsubscribe_url
        content = template.compiled.render(variables)
        if unsubscribe_url is not None:
            content["unsubscribe_url"] = unsubscribe_url
        if self.track:
            self._track(outbox_id, content)
        return content

    def _track(self, outbox_id: int, content: dict[str, Any]) -> None:
        links: list[str] = []

        def short(index: int) -> str:
            return f"{self.base}/l/{link_code(self.secret, outbox_id, index)}"

        if content.get("text"):
            content["text"] = track_urls(content["text"], short, links)
        link = content.get("link")
        if isinstance(link, dict) and link.get("url"):
            if link["url"] not in links:
                links.append(link["url"])
            link["url"] = short(links.index(link["url"]))
        if links:
            content["links"] = links


def _uses_attributes(variables: tuple[str, ...]) -> bool:
    """Whether a template reads customer attributes (the tier is one); a bare `customer` may too."""
    fields = [v for v in variables if v.startswith("customer.")]
    return "customer" in variables and (not fields or bool({"customer.attributes", "customer.tier"} & set(fields)))


def existing_message(session: Session, workspace_id: int, idempotency_key: str) -> OutboxMessage | None:
    return session.scalar(select(OutboxMessage).where(OutboxMessage.workspace_id == workspace_id,
                                                      OutboxMessage.idempotency_key == idempotency_key))


def check_same_request(existing: OutboxMessage, customer_id: int, channel: str) -> OutboxMessage:
    if existing.customer_id != customer_id or existing.channel != channel:
        raise IdempotencyKeyReused(
            f"idempotency key {existing.idempotency_key!r} was used for another message (#{existing.id})",
            field="idempotency_key")
    return existing


def check_key(idempotency_key: str) -> str:
    key = idempotency_key.strip()
    if not key or len(key) > 200:
        raise ValidationFailed("idempotency_key must be 1-200 characters", field="idempotency_key")
    return key
