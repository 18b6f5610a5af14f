from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    type: str
    namespace: str
    value: str
    verified: bool


class RollupOut(BaseModel):
    orders_count: int = 0
    total_spend_fen: int = 0
    refunded_fen: int = 0
    average_order_fen: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    last_interaction_at: datetime | None = None
    events_count: int = 0
    categories: dict[str, int] = {}


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    gender: str | None
    birthday: date | None
    phone: str | None
    email: str | None
    city: str | None
    province: str | None
    attributes: dict[str, Any]
    acquisition_channel: str | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    created_at: datetime


class CustomerDetailOut(CustomerOut):
    identities: list[IdentityOut]
    rollup: RollupOut
    merged_ids: list[int] = []
    requested_id: int | None = None


class CustomerListOut(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None


class TimelineEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any]


class TimelineOut(BaseModel):
    items: list[TimelineEventOut]
    next_before: int | None


class LinkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    other_customer_id: int
    identity_type: str
    identity_value: str
    status: str
