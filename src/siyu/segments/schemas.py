from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from siyu.customers.schemas import CustomerOut
from siyu.tags.schemas import MAX_BULK, IdentityRef

Name = Annotated[str, Field(min_length=1, max_length=100)]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Any
    segment_id: int | None = None  # the segment or tag it is meant for: also checks circular references
    tag_id: int | None = None


class RuleIssueOut(BaseModel):
    path: str
    message: str


class RuleCheckOut(BaseModel):
    valid: bool
    errors: list[RuleIssueOut]
    rule: dict[str, Any] | None


class PreviewOut(BaseModel):
    count: int
    sample: list[CustomerOut]


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Annotated[str, Field(max_length=500)] = ""
    kind: str = "dynamic"
    rule: Any = None
    refresh_minutes: int = 60
    customer_ids: Annotated[list[int], Field(max_length=MAX_BULK)] = []
    identities: Annotated[list[IdentityRef], Field(max_length=MAX_BULK)] = []


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    rule: Any = None
    refresh_minutes: int | None = None


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    kind: str
    source: str
    builtin_key: str | None
    rule: dict[str, Any] | None
    size: int
    refresh_minutes: int
    last_refreshed_at: datetime | None
    last_refresh_status: str | None
    last_error: str | None
    last_refresh_ms: int | None
    freshness: str
    created_at: datetime
    updated_at: datetime


class MembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add_customer_ids: Annotated[list[int], Field(max_length=MAX_BULK)] = []
    add_identities: Annotated[list[IdentityRef], Field(max_length=MAX_BULK)] = []
    remove_customer_ids: Annotated[list[int], Field(max_length=MAX_BULK)] = []
    remove_identities: Annotated[list[IdentityRef], Field(max_length=MAX_BULK)] = []


class MembersOut(BaseModel):
    added: int
    removed: int
    unknown: list[str]


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class RefreshOut(BaseModel):
    queued: bool
    chain: str | None


class SizeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: date
    size: int


class LayeringRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    last_run_at: datetime | None
    status: str
    error: str | None
    duration_ms: int
    summary: dict[str, Any]


class LifecycleOut(BaseModel):
    counts: dict[str, int]
    labels: dict[str, str]
    settings: dict[str, Any]
    last_run: LayeringRunOut | None


class RfmOut(BaseModel):
    settings: dict[str, Any]
    labels: dict[str, str]
    last_run: LayeringRunOut | None
    segments: dict[str, int]


class LayersOut(BaseModel):
    customer_id: int
    tags: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    lifecycle: dict[str, Any] | None
    rfm: dict[str, Any] | None
