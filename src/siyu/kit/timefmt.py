"""Conversions between stored UTC and a workspace's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siyu.kit.errors import ValidationFailed


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"unknown time zone {name!r}", field="timezone") from exc


def parse_aware(value: str, field: str) -> datetime:
    """Parse ISO 8601 that must carry a zone; a naive timestamp is ambiguous and refused."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(f"not an ISO 8601 timestamp: {value!r}", field=field) from exc
    if parsed.tzinfo is None:
        raise ValidationFailed("timestamp must include a time zone offset", field=field)
    return parsed


def local(value: datetime, tz: str) -> datetime:
    return value.astimezone(zone(tz))
