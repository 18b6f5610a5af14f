"""Opaque keyset cursors: a cursor is the last seen sort key, base64-encoded JSON."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from siyu.kit.errors import ValidationFailed


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ValidationFailed("cursor is not valid", field="cursor") from exc
    if not isinstance(value, list):
        raise ValidationFailed("cursor is not valid", field="cursor")
    return value
