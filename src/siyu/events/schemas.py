from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class IngestItemError(BaseModel):
    field: str | None
    code: str | None
    message: str | None


class IngestItemResult(BaseModel):
    index: int
    id: str | None
    status: str = Field(description="accepted | duplicate | rejected")
    customer_id: int | None = None
    error: IngestItemError | None = None


class BatchIn(BaseModel):
    events: list[Any] = Field(description="up to 1,000 events; each is validated on its own")


class BatchOut(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[IngestItemResult]


class EventOut(BaseModel):
    id: str
    type: str
    occurred_at: str
    properties: dict[str, Any]


class EventTypeIn(BaseModel):
    name: str
    description: str = ""
    required_properties: list[str] = Field(default_factory=list)
