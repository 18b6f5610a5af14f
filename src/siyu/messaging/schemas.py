"""The messaging API's contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Purpose = Literal["marketing", "service"]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateIn(_In):
    name: Name
    channel: Annotated[str, Field(min_length=1, max_length=30)]
    kind: Literal["text", "text_image", "link_card", "miniprogram_card", "material"] = "text"
    purpose: Purpose = "marketing"
    subject: Annotated[str, Field(max_length=500)] | None = None
    body: Annotated[str, Field(max_length=20_000)] = ""
    payload: dict[str, Any] = {}


class TemplatePatch(_In):
    name: Name | None = None
    kind: Literal["text", "text_image", "link_card", "miniprogram_card", "material"] | None = None
    purpose: Purpose | None = None
    subject: Annotated[str, Field(max_length=500)] | None = None
    body: Annotated[str, Field(max_length=20_000)] | None = None
    payload: dict[str, Any] | None = None


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    channel: str
    kind: str
    purpose: str
    subject: str | None
    body: str
    payload: dict[str, Any]
    variables: list[str]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class PreviewIn(_In):
    customer_id: int
    context: dict[str, Any] = {}


class SendIn(_In):
    customer_id: int
    channel: Annotated[str, Field(min_length=1, max_length=30)]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)]
    template_id: int | None = None
    content: dict[str, Any] | None = None
    purpose: Purpose = "marketing"
    context: dict[str, Any] = {}
    droppable: bool = False
    due_at: datetime | None = None
    staff_id: Annotated[str, Field(max_length=100)] | None = None


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    channel: str
    purpose: str
    idempotency_key: str
    source: str
    template_id: int | None
    broadcast_id: int | None
    variant: str | None
    staff_id: str | None
    address: str | None
    content: dict[str, Any]
    state: str
    reason: str | None
    detail: str | None
    due_at: datetime
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    provider_message_id: str | None
    click_count: int
    clicked_at: datetime | None
    replied_at: datetime | None
    attributed_order_id: str | None
    attributed_fen: int | None


class MessageListOut(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    at: datetime
    outcome: str
    error_code: str | None
    error_message: str | None
    provider_message_id: str | None


class MessageEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    type: str
    reason: str | None
    details: dict[str, Any]
    at: datetime


class MessageDetailOut(MessageOut):
    attempt_log: list[AttemptOut]
    events: list[MessageEventOut]


class PreferenceIn(_In):
    channel: Annotated[str, Field(min_length=1, max_length=30)] = "*"
    purpose: Literal["marketing", "service", "*"] = "marketing"
    status: Literal["opted_in", "opted_out", "blocked"]
    note: Annotated[str, Field(max_length=500)] | None = None


class PreferenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    customer_id: int
    channel: str
    purpose: str
    status: str
    source: str
    note: str | None
    updated_at: datetime


class PreferenceListOut(BaseModel):
    items: list[PreferenceOut]
    next_cursor: str | None


class OneTimeConsentIn(_In):
    channel: Annotated[str, Field(min_length=1, max_length=30)]
    topic: Annotated[str, Field(max_length=200)] = ""
    count: Annotated[int, Field(ge=1, le=100)] = 1


class QuotaIn(_In):
    channel: Annotated[str, Field(min_length=1, max_length=30)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scope: Literal["customer", "staff", "workspace"]
    period: Literal["day", "week", "month"]
    max_count: Annotated[int, Field(ge=0)]
    purposes: list[Purpose] = []
    active: bool = True
    note: Annotated[str, Field(max_length=500)] = ""


class QuotaOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    workspace_id: int | None
    channel: str
    name: str
    scope: str
    period: str
    max_count: int
    purposes: list[str]
    active: bool
    note: str


class ChannelIn(_In):
    enabled: bool = True
    rate_per_minute: Annotated[int, Field(ge=1)] | None = None
    retry_tries: Annotated[int, Field(ge=1, le=10)] = 3
    retry_initial_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    retry_max_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    config: dict[str, Any] = {}


class AudienceIn(_In):
    kind: Literal["list", "csv", "tag", "segment", "all"]
    customer_ids: list[int] | None = None
    csv: str | None = None
    tag_id: int | None = None
    segment_id: int | None = None


class VariantIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=20)] | None = None
    template_id: int
    percent: Annotated[int, Field(ge=1, le=100)] | None = None


class BroadcastIn(_In):
    name: Name
    channel: Annotated[str, Field(min_length=1, max_length=30)]
    audience: AudienceIn
    template_id: int | None = None
    variants: list[VariantIn] = []
    purpose: Purpose = "marketing"
    context: dict[str, Any] = {}
    send_at: datetime | None = None
    rate_per_minute: Annotated[int, Field(ge=1)] | None = None
    droppable: bool = False

    def variant_list(self) -> list[dict[str, Any]]:
        if self.variants:
            return [v.model_dump(exclude_none=True) for v in self.variants]
        return [{"template_id": self.template_id}] if self.template_id is not None else []


class BroadcastOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    channel: str
    purpose: str
    audience: dict[str, Any]
    variants: list[dict[str, Any]]
    context: dict[str, Any]
    send_at: datetime | None
    rate_per_minute: int | None
    droppable: bool
    state: str
    audience_size: int
    filled_count: int
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class VariantResultsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    template_id: int
    percent: int
    total: int
    sent: int
    states: dict[str, int]
    suppressed_by_rule: dict[str, int]
    deferred_by_rule: dict[str, int]
    failed_by_reason: dict[str, int]
    clicked: int
    clicks: int
    replied: int
    orders: int
    revenue_fen: int


class BroadcastDetailOut(BroadcastOut):
    results: list[VariantResultsOut]


class BroadcastPreviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    audience_size: int
    send: int
    defer: int
    suppress: int
    deferred_by_rule: dict[str, int]
    suppressed_by_rule: dict[str, int]


class ContactStatusOut(BaseModel):
    customer_id: int
    preferences: list[PreferenceOut]
    in_holdout: bool
    usage: list[dict[str, Any]]
    ignored_in_a_row: int
    last_messages: list[MessageOut]


class SandboxMessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    outbox_id: int
    idempotency_key: str
    customer_id: int
    address: str | None
    content: dict[str, Any]
    received_at: datetime
