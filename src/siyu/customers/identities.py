"""Identity types, normalisation and strength.

Only strong identities merge profiles. Which types are strong is configurable per workspace
(`settings["strong_identity_types"]`); a phone is strong only when it is verified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from siyu.kit.errors import ValidationFailed

STANDARD_IDENTITY_TYPES = (
    "wecom_external_userid", "wechat_unionid", "wechat_openid", "phone", "email", "douyin_openid",
    "xhs_userid", "app_user_id", "member_no",
)
DEFAULT_STRONG_TYPES = ("wecom_external_userid", "wechat_unionid", "member_no", "app_user_id", "phone")
# Types whose strength also requires `verified=True`.
VERIFIED_ONLY_TYPES = frozenset({"phone", "email"})
CUSTOM_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,49}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class IdentityKey:
    type: str
    namespace: str
    value: str


@dataclass(frozen=True, slots=True)
class ResolvedIdentity:
    key: IdentityKey
    verified: bool
    strong: bool


@lru_cache(maxsize=200_000)
def normalise_phone(raw: str) -> str:
    """Return E.164 (+8613812345678). Numbers without a country code are taken as mainland China."""
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(f"not a phone number: {raw!r}", code="invalid_phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed(f"not a valid phone number: {raw!r}", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    value = raw.strip().lower()
    if not EMAIL_PATTERN.match(value):
        raise ValidationFailed(f"not an email address: {raw!r}", code="invalid_email")
    return value


def normalise_value(identity_type: str, raw: str) -> str:
    if identity_type == "phone":
        return normalise_phone(raw)
    if identity_type == "email":
        return normalise_email(raw)
    value = raw.strip()
    if not value:
        raise ValidationFailed("identity value is empty", code="empty_identity")
    return value


def check_identity_type(identity_type: str) -> None:
    if identity_type not in STANDARD_IDENTITY_TYPES and not CUSTOM_TYPE_PATTERN.match(identity_type):
        raise ValidationFailed(f"identity type {identity_type!r} is not a valid name "
                               "(lowercase letters, digits, underscore)", code="invalid_identity_type")


def is_strong(identity_type: str, verified: bool, strong_types: frozenset[str]) -> bool:
    if identity_type not in strong_types:
        return False
    return verified or identity_type not in VERIFIED_ONLY_TYPES


def resolve_identity(identity_type: str, value: str, namespace: str, verified: bool,
                     strong_types: frozenset[str]) -> ResolvedIdentity:
    check_identity_type(identity_type)
    key = IdentityKey(identity_type, namespace.strip(), normalise_value(identity_type, value))
    return ResolvedIdentity(key, verified, is_strong(identity_type, verified, strong_types))
