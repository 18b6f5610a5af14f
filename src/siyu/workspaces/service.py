"""Workspaces, users and API keys: creation, login, key verification."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.customers.identities import DEFAULT_STRONG_TYPES
from siyu.kit import clock
from siyu.kit.errors import NotFound, ValidationFailed
from siyu.kit.timefmt import zone
from siyu.workspaces.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRole,
    SlugTaken,
    WorkspaceNotFound,
)
from siyu.workspaces.models import ApiKey, User, Workspace

ROLES = ("owner", "operator", "staff", "analyst")
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_hasher = PasswordHasher()
KEY_USE_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class WorkspaceContext:
    """What the business rules need to know about the workspace they act in."""

    id: int
    slug: str
    name: str
    timezone: str
    currency: str
    strong_identity_types: frozenset[str]
    strict_events: bool
    settings: dict[str, Any]


def context_of(workspace: Workspace) -> WorkspaceContext:
    settings = workspace.settings or {}
    return WorkspaceContext(
        id=workspace.id, slug=workspace.slug, name=workspace.name, timezone=workspace.timezone,
        currency=workspace.currency,
        strong_identity_types=frozenset(settings.get("strong_identity_types", DEFAULT_STRONG_TYPES)),
        strict_events=bool(settings.get("strict_events", False)), settings=settings,
    )


def create_workspace(session: Session, slug: str, name: str, timezone: str = "Asia/Shanghai",
                     currency: str = "CNY") -> Workspace:
    if not SLUG_PATTERN.match(slug):
        raise ValidationFailed("slug must be 2-63 lowercase letters, digits or dashes", field="slug")
    zone(timezone)
    if currency != "CNY":
        raise ValidationFailed("only CNY is supported as a workspace currency", field="currency")
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise SlugTaken(f"workspace {slug!r} already exists", field="slug")
    workspace = Workspace(slug=slug, name=name, timezone=timezone, currency=currency,
                          settings={"strong_identity_types": list(DEFAULT_STRONG_TYPES), "strict_events": False},
                          created_at=clock.now())
    session.add(workspace)
    session.flush()
    return workspace


def get_workspace(session: Session, slug_or_id: str | int) -> Workspace:
    if isinstance(slug_or_id, int) or str(slug_or_id).isdigit():
        workspace = session.get(Workspace, int(slug_or_id))
    else:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == slug_or_id))
    if workspace is None:
        raise WorkspaceNotFound(f"no workspace {slug_or_id!r}", field="workspace")
    return workspace


def list_workspaces(session: Session) -> list[Workspace]:
    return list(session.scalars(select(Workspace).order_by(Workspace.id)))


def update_workspace_settings(session: Session, workspace: Workspace, changes: dict[str, Any]) -> Workspace:
    merged = dict(workspace.settings or {})
    merged.update(changes)
    workspace.settings = merged
    session.flush()
    return workspace


def create_user(session: Session, workspace: Workspace, email: str, name: str, password: str,
                role: str = "operator") -> User:
    if role not in ROLES:
        raise InvalidRole(f"role must be one of {', '.join(ROLES)}", field="role")
    email = email.strip().lower()
    if "@" not in email:
        raise ValidationFailed("not an email address", field="email")
    if len(password) < 8:
        raise ValidationFailed("password must have at least 8 characters", field="password")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(f"a user with email {email} exists", field="email")
    user = User(workspace_id=workspace.id, email=email, name=name, role=role,
                password_hash=_hasher.hash(password), is_active=True, created_at=clock.now())
    session.add(user)
    session.flush()
    return user


def authenticate_user(session: Session, email: str, password: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower(), User.is_active.is_(True)))
    if user is None:
        _hasher.hash(password)  # same cost either way: no user enumeration by timing
        raise InvalidCredentials("wrong email or password")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise InvalidCredentials("wrong email or password") from exc
    user.last_login_at = clock.now()
    return user


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def list_users(session: Session, workspace_id: int) -> list[User]:
    return list(session.scalars(select(User).where(User.workspace_id == workspace_id).order_by(User.id)))


def _hash_key(secret: str) -> str:
    # API keys are 256-bit random secrets, so a fast hash is enough (no dictionary to defend against).
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, workspace: Workspace, name: str, role: str = "operator") -> tuple[ApiKey, str]:
    """Create a key; the secret is returned once and only its hash is stored."""
    if role not in ROLES:
        raise InvalidRole(f"role must be one of {', '.join(ROLES)}", field="role")
    prefix = secrets.token_hex(4)
    secret = f"sk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(workspace_id=workspace.id, name=name, role=role, prefix=prefix, key_hash=_hash_key(secret),
                 created_at=clock.now())
    session.add(key)
    session.flush()
    return key, secret


def verify_api_key(session: Session, secret: str) -> ApiKey:
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != "sk":
        raise InvalidCredentials("API key is malformed")
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None)))
    if key is None or not secrets.compare_digest(key.key_hash, _hash_key(secret)):
        raise InvalidCredentials("API key is not valid")
    now = clock.now()
    if key.last_used_at is None or now - key.last_used_at > KEY_USE_RESOLUTION:
        # Recorded at minute resolution so a busy integration does not write on every request.
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    return key


def list_api_keys(session: Session, workspace_id: int) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)))


def revoke_api_key(session: Session, workspace_id: int, key_id: int) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id))
    if key is None:
        raise NotFound(f"no API key {key_id}", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
    return key
