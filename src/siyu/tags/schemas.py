from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=100)]
MAX_BULK = 10_000


class IdentityRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(min_length=1, max_length=50)]
    value: Annotated[str, Field(min_length=1, max_length=300)]


class TagGroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Annotated[str, Field(max_length=500)] = ""
    position: int = 0


class TagGroupPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    position: int | None = None


class TagGroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    position: int


class TagIn(BaseModel):
    """A manual tag; with a `rule`, an auto tag kept true by the worker."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    group_id: int | None = None
    description: Annotated[str, Field(max_length=500)] = ""
    rule: dict[str, Any] | None = None
    external_key: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    refresh_minutes: int = 60


class TagPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    group_id: int | None = None
    clear_group: bool = False
    description: Annotated[str, Field(max_length=500)] | None = None
    rule: dict[str, Any] | None = None
    refresh_minutes: int | None = None


class TagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    group_id: int | None
    external_key: str
    description: str
    kind: str
    rule: dict[str, Any] | None
    preset: str | None
    size: int
    refresh_minutes: int
    last_refreshed_at: datetime | None
    last_refresh_status: str | None
    last_error: str | None
    freshness: str
    created_at: datetime
    updated_at: datetime


class TaggingIn(BaseModel):
    """Who: customer ids, identities, or every current member of a segment."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: Annotated[list[int], Field(max_length=MAX_BULK)] = []
    identities: Annotated[list[IdentityRef], Field(max_length=MAX_BULK)] = []
    segment_id: int | None = None


class TaggingOut(BaseModel):
    changed: int
    unchanged: int
    unknown: list[str]
    unknown_count: int


class CustomerTagOut(BaseModel):
    tag_id: int
    name: str
    kind: str
    group_id: int | None
    source: str
    added_by: str
    added_at: datetime


class TagHistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tag_id: int
    tag_name: str
    action: str
    source: str
    actor: str
    at: datetime
