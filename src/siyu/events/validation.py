"""Turning one raw event (API JSON, JSONL line, CSV row) into a validated event, or a clear rejection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from siyu.customers.identities import ResolvedIdentity, resolve_identity
from siyu.events.catalog import OrderPaidProps, properties_adapter
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


@dataclass(slots=True)
class ValidEvent:
    index: int
    event_id: str
    type: str
    occurred_at: datetime
    identities: list[ResolvedIdentity]
    traits: dict[str, Any]
    properties: dict[str, Any]
    order: OrderPaidProps | None = None
    customer_ref: int = 0  # filled by identity resolution
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Rejection:
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


def _identities(raw: list[IdentityIn] | dict[str, str], ctx: WorkspaceContext) -> list[ResolvedIdentity]:
    items = ([IdentityIn(type=k, value=v) for k, v in raw.items()] if isinstance(raw, dict) else raw)
    if not items:
        raise ValidationFailed("at least one identity is required", field="identities", code="missing_identity")
    if len(items) > MAX_IDENTITIES:
        raise ValidationFailed(f"at most {MAX_IDENTITIES} identities", field="identities")
    resolved: list[ResolvedIdentity] = []
    seen = set()
    for position, item in enumerate(items):
        try:
            identity = resolve_identity(item.type, item.value, item.namespace, item.verified,
                                        ctx.strong_identity_types)
        except ValidationFailed as exc:
            exc.field = f"identities[{position}].value" if exc.code != "invalid_identity_type" \
                else f"identities[{position}].type"
            raise
        if identity.key not in seen:
            seen.add(identity.key)
            resolved.append(identity)
    return resolved


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
        cleaned["attributes"] = attributes
    return cleaned


def _birthday(value: Any) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValidationFailed("birthday must be a date YYYY-MM-DD", field="traits.birthday") from exc


def validate_event(index: int, raw: Any, ctx: WorkspaceContext, known_custom_types: frozenset[str],
                   received_at: datetime) -> ValidEvent | Rejection:
    if not isinstance(raw, dict):
        return Rejection(index, None, None, "invalid_type", "an event must be a JSON object")
    event_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    try:
        envelope = EventIn.model_validate(raw)
    except ValidationError as exc:
        return _from_pydantic(index, event_id, exc)
    try:
        return _validated(index, envelope, ctx, known_custom_types, received_at)
    except ValidationFailed as exc:
        return Rejection(index, envelope.id, exc.field, exc.code, exc.message)


def _validated(index: int, envelope: EventIn, ctx: WorkspaceContext, known_custom_types: frozenset[str],
               received_at: datetime) -> ValidEvent | Rejection:
    occurred_at = envelope.occurred_at.astimezone(UTC)
    if occurred_at > received_at.replace(microsecond=0) + _FUTURE_TOLERANCE:
        raise ValidationFailed("occurred_at is in the future", field="occurred_at", code="future_timestamp")
    adapter = properties_adapter(envelope.type)
    order: OrderPaidProps | None = None
    properties = envelope.properties
    if adapter is not None:
        try:
            parsed = adapter.validate_python(properties)
        except ValidationError as exc:
            return _from_pydantic(index, envelope.id, exc, "properties")
        if isinstance(parsed, OrderPaidProps):
            order = parsed
            if parsed.currency != ctx.currency:
                raise ValidationFailed(f"currency must be {ctx.currency}", field="properties.currency",
                                       code="wrong_currency")
            properties = parsed.model_dump(mode="json", exclude_none=True)
    elif ctx.strict_events and envelope.type not in known_custom_types:
        raise ValidationFailed(f"unknown event type {envelope.type!r} (strict mode)", field="type",
                               code="unknown_event_type")
    if envelope.type == "order_refunded" and "refund_id" not in properties:
        properties = {**properties, "refund_id": envelope.id}
    return ValidEvent(index=index, event_id=envelope.id, type=envelope.type, occurred_at=occurred_at,
                      identities=_identities(envelope.identities, ctx),
                      traits=clean_traits(envelope.traits or {}), properties=properties, order=order)

