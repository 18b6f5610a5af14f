"""Turning one raw event (API JSON, JSONL line, CSV row) into a validated event, or a clear rejection."""

from __future__ import annotations

import re
import sys
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from siyu.customers.identities import resolve_identity
from siyu.customers.resolution import EventIdentity
from siyu.events.catalog import OrderItemIn, OrderPaidProps, properties_adapter
from siyu.kit.errors import ValidationFailed
from siyu.workspaces.service import WorkspaceContext

MAX_IDENTITIES = 20
PROFILE_FIELDS = ("name", "gender", "birthday", "phone", "email", "city", "province", "acquisition_channel")
GENDERS = frozenset({"male", "female", "unknown"})
# Clocks of senders drift; an event further in the future than this is a bug upstream.
_FUTURE_TOLERANCE = timedelta(days=1)


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(min_length=1, max_length=50)]
    value: Annotated[str, Field(min_length=1, max_length=300)]
    namespace: Annotated[str, Field(max_length=100)] = ""
    verified: StrictBool = False


class EventIn(BaseModel):
    """The ingestion contract. `identities` is a list of objects, or a {type: value} shorthand."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=200)]
    type: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]
    occurred_at: AwareDatetime
    identities: list[IdentityIn] | dict[str, str]
    traits: dict[str, Any] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class OrderLine(NamedTuple):
    sku: str
    name: str
    category: str
    quantity: int
    unit_price_fen: int


class PaidOrder(NamedTuple):
    """The order an `order_paid` event carries, as validated (plain tuples: cheap to build and to pickle)."""

    order_id: str
    channel: str
    currency: str
    total_fen: int
    discount_fen: int
    coupon_code: str | None
    items: tuple[OrderLine, ...]


class RefundFacts(NamedTuple):
    """What storing an `order_refunded` event needs from its properties."""

    refund_id: str
    order_id: str
    amount_fen: int


class ValidEvent(msgspec.Struct, array_like=True, tag=True, tag_field="outcome", gc=False):
    """An event ready to store. Its properties are kept as the JSON text stored (what the writer needs;
    the importer sends events between processes), with the facts of an order or refund alongside.

    A msgspec struct: the importer sends batches of them between processes as MessagePack, which msgspec
    decodes straight into these objects in C, several times faster than unpickling (`gc=False`: an
    event never takes part in a reference cycle)."""

    index: int
    event_id: str
    type: str
    occurred_at: datetime
    identities: list[EventIdentity]
    traits: dict[str, Any]
    properties_json: str
    order: PaidOrder | None = None
    refund: RefundFacts | None = None
    customer_ref: int = 0  # filled by identity resolution
    # occurred_at as a SQLite store writes it, when the importer's reading process formatted it
    # (`ReadingJob.sqlite_times`): the storing process then has one thing less to do per row.
    sqlite_occurred_at: str = ""


def _valid_event(index: int, event_id: str, event_type: str, occurred_at: datetime, identities: list[EventIdentity],
                 traits: dict[str, Any], properties: dict[str, Any], order: PaidOrder | None) -> ValidEvent:
    """Raises orjson.JSONEncodeError for properties that are not plain JSON (only Python callers can send those)."""
    refund = None
    if event_type == "order_refunded":
        if not properties.get("refund_id"):  # absent or null: the event is the refund's identity
            properties = {**properties, "refund_id": event_id}
        refund = RefundFacts(str(properties["refund_id"]), str(properties["order_id"]), int(properties["amount_fen"]))
    return ValidEvent(index, event_id, sys.intern(event_type), occurred_at, identities, traits,
                      orjson.dumps(properties).decode(), order, refund)


class Rejection(msgspec.Struct, array_like=True, tag=True, tag_field="outcome", gc=False):
    index: int
    event_id: str | None
    field: str | None
    code: str
    message: str


def _loc(parts: tuple[int | str, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _from_pydantic(index: int, event_id: str | None, exc: ValidationError, prefix: str = "") -> Rejection:
    error = exc.errors(include_url=False)[0]
    loc = _loc(tuple(error["loc"]))
    if prefix:
        loc = f"{prefix}.{loc}" if loc else prefix
    return Rejection(index, event_id, loc or None, "invalid_" + error["type"].split(".")[0], error["msg"])


IdentityItem = tuple[str, str, str, bool]  # type, value, namespace, verified


def _identities(items: list[IdentityItem], ctx: WorkspaceContext) -> list[EventIdentity]:
    if not items:
        raise ValidationFailed("at least one identity is required", field="identities", code="missing_identity")
    if len(items) > MAX_IDENTITIES:
        raise ValidationFailed(f"at most {MAX_IDENTITIES} identities", field="identities")
    resolved: list[EventIdentity] = []
    seen = set()
    for position, (identity_type, value, namespace, verified) in enumerate(items):
        try:
            identity = _event_identity(identity_type, value, namespace, verified, ctx.strong_identity_types)
        except ValidationFailed as exc:
            exc.field = f"identities[{position}].value" if exc.code != "invalid_identity_type" \
                else f"identities[{position}].type"
            raise
        if identity.key not in seen:
            seen.add(identity.key)
            resolved.append(identity)
    return resolved


@lru_cache(maxsize=65_536)
def _event_identity(identity_type: str, value: str, namespace: str, verified: bool,
                    strong_types: frozenset[str]) -> EventIdentity:
    """Customers come back, so do their identities: normalising a phone number costs more than looking
    it up here. Invalid ones raise, and are not kept."""
    return EventIdentity.of(resolve_identity(identity_type, value, namespace, verified, strong_types))


def clean_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Profile fields and custom attributes carried by an event; unknown keys become attributes."""
    cleaned: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in traits.items():
        if value is None or value == "":
            continue
        if key == "birthday":
            cleaned[key] = _birthday(value)
        elif key == "gender":
            gender = str(value).lower()
            if gender not in GENDERS:
                raise ValidationFailed("gender must be male, female or unknown", field="traits.gender")
            cleaned[key] = gender
        elif key == "attributes" and isinstance(value, dict):
            attributes.update(value)
        elif key in PROFILE_FIELDS:
            if not isinstance(value, str) or len(value) > 300:
                raise ValidationFailed("must be a string of at most 300 characters", field=f"traits.{key}")
            cleaned[key] = value.strip()
        else:
            attributes[key] = value
    if attributes:
        _check_storable(attributes)
        cleaned["attributes"] = attributes
    return cleaned


def _check_storable(attributes: dict[str, Any]) -> None:
    """Attributes are stored as JSON: an integer beyond 64 bits (which a CSV cell can hold) is refused here."""
    try:
        orjson.dumps(attributes)
    except orjson.JSONEncodeError:
        for key, value in attributes.items():
            try:
                orjson.dumps(value)
            except orjson.JSONEncodeError as exc:
                raise ValidationFailed("must be a JSON value, numbers within 64 bits",
                                       field=f"traits.{key}") from exc
        raise


def _birthday(value: Any) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValidationFailed("birthday must be a date YYYY-MM-DD", field="traits.birthday") from exc


def validate_event(index: int, raw: Any, ctx: WorkspaceContext, known_custom_types: frozenset[str],
                   received_at: datetime) -> ValidEvent | Rejection:
    if not isinstance(raw, dict):
        return Rejection(index, None, None, "invalid_type", "an event must be a JSON object")
    fast = _well_formed(index, raw, ctx, known_custom_types, received_at)
    if fast is not None:
        return fast
    event_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    try:
        envelope = EventIn.model_validate(raw)
    except ValidationError as exc:
        return _from_pydantic(index, event_id, exc)
    try:
        return _validated(index, envelope, ctx, known_custom_types, received_at)
    except ValidationFailed as exc:
        return Rejection(index, envelope.id, exc.field, exc.code, exc.message)


def _identity_items(index: int, envelope: EventIn) -> list[IdentityItem] | Rejection:
    if not isinstance(envelope.identities, dict):
        return [(i.type, i.value, i.namespace, i.verified) for i in envelope.identities]
    items: list[IdentityItem] = []
    for key, value in envelope.identities.items():  # the {type: value} shorthand: same limits as the list form
        try:
            identity = IdentityIn(type=key, value=value)
        except ValidationError as exc:
            return _from_pydantic(index, envelope.id, exc, f"identities.{key}")
        items.append((identity.type, identity.value, identity.namespace, identity.verified))
    return items


def _validated(index: int, envelope: EventIn, ctx: WorkspaceContext, known_custom_types: frozenset[str],
               received_at: datetime) -> ValidEvent | Rejection:
    occurred_at = envelope.occurred_at.astimezone(UTC)
    if occurred_at > received_at.replace(microsecond=0) + _FUTURE_TOLERANCE:
        raise ValidationFailed("occurred_at is in the future", field="occurred_at", code="future_timestamp")
    adapter = properties_adapter(envelope.type)
    order: PaidOrder | None = None
    properties = envelope.properties
    if adapter is not None:
        try:
            parsed = adapter.validate_python(properties)
        except ValidationError as exc:
            return _from_pydantic(index, envelope.id, exc, "properties")
        if isinstance(parsed, OrderPaidProps):
            order = PaidOrder(parsed.order_id, parsed.channel, parsed.currency, parsed.total_fen, parsed.discount_fen,
                              parsed.coupon_code, tuple(OrderLine(i.sku, i.name, i.category, i.quantity,
                                                                  i.unit_price_fen) for i in parsed.items))
            if parsed.currency != ctx.currency:
                raise ValidationFailed(f"currency must be {ctx.currency}", field="properties.currency",
                                       code="wrong_currency")
            properties = parsed.model_dump(mode="json", exclude_none=True)
    elif ctx.strict_events and envelope.type not in known_custom_types:
        raise ValidationFailed(f"unknown event type {envelope.type!r} (strict mode)", field="type",
                               code="unknown_event_type")
    items = _identity_items(index, envelope)
    if isinstance(items, Rejection):
        return items
    identities, traits = _identities(items, ctx), clean_traits(envelope.traits or {})
    try:
        return _valid_event(index, envelope.id, envelope.type, occurred_at, identities, traits, properties, order)
    except orjson.JSONEncodeError:
        return Rejection(index, envelope.id, "properties", "invalid_properties", "properties must be plain JSON values")


# -- the fast path ---------------------------------------------------------------------------------
# Most events are well formed, and for them pydantic costs more than everything else ingestion does.
# `_well_formed` gives exactly the ValidEvent the contract above gives, checked by hand: every check
# is as strict as the contract's or stricter, and anything unusual (a missing or extra field, a value
# of another type, a number as a timestamp, an extra property that is not a plain value...) returns
# None so the event takes the pydantic path, which also explains what is wrong. The contract stays
# the one definition; tests/events/test_ingest_equivalence.py checks both paths agree.

_EVENT_KEYS = frozenset(EventIn.model_fields)
_IDENTITY_KEYS = frozenset(IdentityIn.model_fields)
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_ORDER_FIELDS = frozenset(OrderPaidProps.model_fields)
_ITEM_FIELDS = frozenset(OrderItemIn.model_fields)
_FEN_MAX = 10**13
_PLAIN = (str, int, bool)  # extra properties the contract passes through unchanged


def _text(value: Any, shortest: int, longest: int) -> bool:
    return type(value) is str and shortest <= len(value) <= longest


def _fen(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _FEN_MAX


def _str_keys(mapping: dict[Any, Any]) -> bool:
    return all(type(key) is str for key in mapping)


def plain_timestamp(stamp: str, received_at: datetime) -> datetime | None:
    """`occurred_at` in UTC when written plainly (ISO 8601 with a zone) and not in the future; None
    for anything else, which the contract then judges."""
    if _TIMESTAMP.fullmatch(stamp) is None:
        return None
    try:
        occurred_at = datetime.fromisoformat(stamp).astimezone(UTC)
    except ValueError:
        return None
    return None if occurred_at > received_at.replace(microsecond=0) + _FUTURE_TOLERANCE else occurred_at


def _well_formed(index: int, raw: Any, ctx: WorkspaceContext, known_custom_types: frozenset[str],
                 received_at: datetime) -> ValidEvent | None:
    if not raw.keys() <= _EVENT_KEYS:
        return None
    event_id, event_type, stamp = raw.get("id"), raw.get("type"), raw.get("occurred_at")
    properties, traits = raw.get("properties", {}), raw.get("traits")
    if not (_text(event_id, 1, 200) and type(event_type) is str and _TYPE_NAME.fullmatch(event_type)
            and type(stamp) is str and type(properties) is dict and _str_keys(properties)
            and (traits is None or (type(traits) is dict and _str_keys(traits)))):
        return None
    occurred_at = plain_timestamp(stamp, received_at)
    if occurred_at is None:
        return None
    order: PaidOrder | None = None
    if event_type == "order_paid":
        paid = _paid_order(properties)
        if paid is None or paid[0].currency != ctx.currency:
            return None
        order, properties = paid
    elif event_type == "page_view":
        page, title = properties.get("page", "/"), properties.get("title")
        if not (_text(page, 0, 2000) and (title is None or type(title) is str)):
            return None
    elif (adapter := properties_adapter(event_type)) is not None:
        try:
            adapter.validate_python(properties)
        except ValidationError:
            return None
    elif ctx.strict_events and event_type not in known_custom_types:
        return None
    items = _raw_identity_items(raw.get("identities"))
    if items is None:
        return None
    try:
        return _valid_event(index, event_id, event_type, occurred_at, _identities(items, ctx),
                            clean_traits(traits or {}), properties, order)
    except (ValidationFailed, orjson.JSONEncodeError):
        return None


def _raw_identity_items(raw: Any) -> list[IdentityItem] | None:
    items: list[IdentityItem] = []
    if type(raw) is dict:
        for key, value in raw.items():
            if not (_text(key, 1, 50) and _text(value, 1, 300)):
                return None
            items.append((key, value, "", False))
        return items
    if type(raw) is not list:
        return None
    for item in raw:
        if type(item) is not dict or not item.keys() <= _IDENTITY_KEYS:
            return None
        fields: Any = item  # checked by hand below
        identity_type, value = fields.get("type"), fields.get("value")
        namespace, verified = fields.get("namespace", ""), fields.get("verified", False)
        if not (_text(identity_type, 1, 50) and _text(value, 1, 300) and _text(namespace, 0, 100)
                and type(verified) is bool):
            return None
        items.append((identity_type, value, namespace, verified))
    return items


def _plain_extras(mapping: dict[str, Any], fields: frozenset[str]) -> dict[str, Any] | None:
    extras = {key: value for key, value in mapping.items() if key not in fields}
    return extras if all(type(value) in _PLAIN for value in extras.values()) else None


def _paid_order(props: Any) -> tuple[PaidOrder, dict[str, Any]] | None:
    """The order and the properties as the contract dumps them (defaults filled in, field order kept)."""
    order_id, channel, currency = props.get("order_id"), props.get("channel", "unknown"), props.get("currency", "CNY")
    total, discount, coupon, items = (props.get("total_fen"), props.get("discount_fen", 0), props.get("coupon_code"),
                                      props.get("items"))
    extras = _plain_extras(props, _ORDER_FIELDS)
    if not (extras is not None and _text(order_id, 1, 200) and _text(channel, 1, 50) and type(currency) is str
            and _fen(total) and _fen(discount) and (coupon is None or _text(coupon, 0, 100))
            and type(items) is list and 0 < len(items) <= 500):
        return None
    lines: list[OrderLine] = []
    dumped: list[dict[str, Any]] = []
    for item in items:
        if type(item) is not dict or not _str_keys(item):
            return None
        fields: Any = item  # checked by hand below
        sku, name, category = fields.get("sku"), fields.get("name", ""), fields.get("category", "uncategorised")
        quantity, price = fields.get("quantity", 1), fields.get("unit_price_fen")
        item_extras = _plain_extras(item, _ITEM_FIELDS)
        if not (item_extras is not None and _text(sku, 1, 200) and _text(name, 0, 300) and _text(category, 0, 100)
                and type(quantity) is int and 0 < quantity <= 100_000 and _fen(price)):
            return None
        lines.append(OrderLine(sku, name, category, quantity, price))
        dumped.append({"sku": sku, "name": name, "category": category, "quantity": quantity, "unit_price_fen": price,
                       **item_extras})
    properties: dict[str, Any] = {"order_id": order_id, "channel": channel, "currency": currency, "total_fen": total,
                                  "discount_fen": discount, "items": dumped}
    if coupon is not None:
        properties["coupon_code"] = coupon
    properties.update(extras)
    return PaidOrder(order_id, channel, currency, total, discount, coupon, tuple(lines)), properties

