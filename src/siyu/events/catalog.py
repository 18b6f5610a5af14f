"""The catalogue of standard event types and the validation of their properties.

Standard types have a properties model; custom types are accepted as free-form properties
(in strict mode only when registered). Money is integer fen: floats and negatives are refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, field_validator

Fen = Annotated[StrictInt, Field(ge=0, le=10**13)]
PositiveFen = Annotated[StrictInt, Field(gt=0, le=10**13)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class Props(BaseModel):
    model_config = ConfigDict(extra="allow")


class OrderItemIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    sku: ShortText
    name: Annotated[str, Field(max_length=300)] = ""
    category: Annotated[str, Field(max_length=100)] = "uncategorised"
    quantity: Annotated[StrictInt, Field(gt=0, le=100_000)] = 1
    unit_price_fen: Fen


class OrderPaidProps(Props):
    order_id: ShortText
    channel: Annotated[str, Field(min_length=1, max_length=50)] = "unknown"
    currency: str = "CNY"
    total_fen: Fen
    discount_fen: Fen = 0
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=500)]
    coupon_code: Annotated[str, Field(max_length=100)] | None = None


class OrderRefundedProps(Props):
    order_id: ShortText
    amount_fen: PositiveFen
    refund_id: ShortText | None = None
    reason: str | None = None


class StaffProps(Props):
    staff_id: str | None = None
    channel: str | None = None
    live_code: str | None = None


class GroupProps(Props):
    group_id: ShortText
    group_name: str | None = None


class PageViewProps(Props):
    page: Annotated[str, Field(max_length=2000)] = "/"
    title: str | None = None


class MessageProps(Props):
    text: Annotated[str, Field(max_length=10_000)] = ""
    staff_id: str | None = None


class FormProps(Props):
    form_id: str | None = None
    source: str | None = None


class CouponRedeemedProps(Props):
    coupon_code: ShortText
    order_id: str | None = None


class ShareProps(Props):
    content_id: str | None = None
    channel: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel_not_blank(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


STANDARD_TYPES: dict[str, type[Props]] = {
    "page_view": PageViewProps,
    "contact_added": StaffProps,
    "contact_deleted": StaffProps,
    "message_received": MessageProps,
    "group_joined": GroupProps,
    "group_left": GroupProps,
    "lead_submitted": FormProps,
    "form_submitted": FormProps,
    "order_paid": OrderPaidProps,
    "order_refunded": OrderRefundedProps,
    "coupon_redeemed": CouponRedeemedProps,
    "check_in": Props,
    "share": ShareProps,
    # A profile update without an action (customer imports, CRM syncs): traits and identities only.
    "identify": Props,
    # Emitted by siyu itself (segments, lifecycle, loyalty); accepted from outside too.
    "segment_entered": Props,
    "segment_exited": Props,
    "lifecycle_changed": Props,
    "tier_changed": Props,
}

# Events that count as the customer interacting with the brand (for last_interaction_at).
INTERACTION_TYPES = frozenset({
    "page_view", "contact_added", "message_received", "group_joined", "lead_submitted", "form_submitted",
    "order_paid", "coupon_redeemed", "check_in", "share",
})

_ADAPTERS: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(model) for name, model in STANDARD_TYPES.items()}


def properties_adapter(event_type: str) -> TypeAdapter[Any] | None:
    return _ADAPTERS.get(event_type)


def catalogue() -> list[dict[str, Any]]:
    """The catalogue as data, for the API and the docs."""
    return [{"type": name, "schema": model.model_json_schema()} for name, model in STANDARD_TYPES.items()]
