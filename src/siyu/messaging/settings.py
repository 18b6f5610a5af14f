"""A workspace's contact policy and channel configuration: typed, validated, with safe defaults.

Stored as JSON in `messaging_settings` (one row per workspace); a workspace without a row gets
the defaults: quiet hours 21:30–08:30 for marketing, at most 1 marketing message a day and 3 a
week across channels, a 14-day cool-down after 5 ignored marketing messages, no holdout.
"""

from __future__ import annotations

import secrets
from datetime import datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.messaging.models import MessagingSettings

Purpose = Literal["marketing", "service"]
Period = Literal["day", "week", "month"]
PURPOSES: tuple[str, ...] = ("marketing", "service")
ChannelName = Annotated[str, Field(pattern=r"^(\*|[a-z][a-z0-9_]{1,29})$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuietHours(_Model):
    """Local times in the workspace's zone; a window that wraps midnight (21:30–08:30) is normal."""

    start: time = time(21, 30)
    end: time = time(8, 30)
    purposes: list[Purpose] = ["marketing"]

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self


class FrequencyCap(_Model):
    """At most `max` messages of `purpose` per customer per calendar `period` on `channel` ('*' = all)."""

    channel: ChannelName = "*"
    purpose: Purpose = "marketing"
    period: Period
    max: Annotated[int, Field(ge=0, le=1000)]

    @property
    def key(self) -> str:
        return f"cap:{self.purpose}:{self.channel}:{self.period}"


class Fatigue(_Model):
    """A customer who ignored the last `ignored_messages` marketing messages cools down."""

    ignored_messages: Annotated[int, Field(ge=1, le=100)] = 5
    cooldown_days: Annotated[int, Field(ge=1, le=365)] = 14


class Holdout(_Model):
    share: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    draw: Annotated[str, Field(min_length=1, max_length=64)] = "initial"
    rotate_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    drawn_at: datetime | None = None


class CalendarWindow(_Model):
    """A blackout (marketing waits until it ends) or a boost (caps multiplied), in local time."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    kind: Literal["blackout", "boost"]
    start: datetime
    end: datetime
    purposes: list[Purpose] = ["marketing"]
    cap_multiplier: Annotated[int, Field(ge=1, le=10)] = 2

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=None)  # wall-clock time in the workspace's zone

    @model_validator(mode="after")
    def _ordered(self) -> CalendarWindow:
        if self.end <= self.start:
            raise ValueError("a calendar window must end after it starts")
        return self


def _default_caps() -> list[FrequencyCap]:
    return [FrequencyCap(period="day", max=1), FrequencyCap(period="week", max=3)]


class PolicySettings(_Model):
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    frequency_caps: list[FrequencyCap] = Field(default_factory=_default_caps)
    fatigue: Fatigue | None = Field(default_factory=Fatigue)
    holdout: Holdout = Field(default_factory=Holdout)
    calendar: list[CalendarWindow] = []
    # "channel:purpose" pairs that need an explicit opt-in before anything is sent.
    require_opt_in: list[Annotated[str, Field(pattern=r"^[a-z*][a-z0-9_]*:(marketing|service)$")]] = []
    one_time_consent_channels: list[ChannelName] = ["miniprogram"]
    opt_out_keywords: list[str] = ["TD", "退订", "STOP", "UNSUBSCRIBE"]
    attribution_window_days: Annotated[int, Field(ge=1, le=90)] = 7
    reply_window_days: Annotated[int, Field(ge=1, le=30)] = 3
    send_lease_seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    track_links: bool = True
    public_base_url: str = "http://127.0.0.1:8000"

    @field_validator("frequency_caps")
    @classmethod
    def _unique_caps(cls, caps: list[FrequencyCap]) -> list[FrequencyCap]:
        keys = [c.key for c in caps]
        if len(keys) != len(set(keys)):
            raise ValueError("two frequency caps share channel, purpose and period")
        return caps

    def keyword_opts_out(self, text: str) -> bool:
        return text.strip().upper() in {k.upper() for k in self.opt_out_keywords}


class ChannelSettings(_Model):
    """One channel of a workspace: whether it is on, its broadcast pace and its adapter's config."""

    enabled: bool = True
    rate_per_minute: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    # In-call retries of a transient failure (exponential backoff with jitter), before the
    # message goes back to the queue for a later attempt.
    retry_tries: Annotated[int, Field(ge=1, le=10)] = 3
    retry_initial_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    retry_max_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    config: dict[str, Any] = {}


def _problem(exc: ValidationError, prefix: str) -> ValidationFailed:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    field = f"{prefix}.{where}" if where else prefix
    return ValidationFailed(f"{field}: {first['msg']}", field=field)


def parse_policy(data: dict[str, Any]) -> PolicySettings:
    try:
        return PolicySettings.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc, "policy") from exc


def parse_channel(name: str, data: dict[str, Any]) -> ChannelSettings:
    try:
        return ChannelSettings.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc, f"channels.{name}") from exc


def _row(session: Session, workspace_id: int) -> MessagingSettings | None:
    return session.scalar(select(MessagingSettings).where(MessagingSettings.workspace_id == workspace_id))


def _create_row(session: Session, workspace_id: int) -> MessagingSettings:
    """Insert the workspace's row unless a concurrent transaction did so first."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(MessagingSettings).values(
        workspace_id=workspace_id, policy={}, channels={}, signing_secret=secrets.token_hex(32),
        updated_at=clock.now()).on_conflict_do_nothing())
    row = _row(session, workspace_id)
    assert row is not None
    return row


def signing_secret(session: Session, workspace_id: int) -> str:
    """The workspace's secret for link and unsubscribe codes, created on first use."""
    row = _row(session, workspace_id) or _create_row(session, workspace_id)
    return row.signing_secret


def load_policy(session: Session, workspace_id: int) -> PolicySettings:
    row = _row(session, workspace_id)
    return PolicySettings.model_validate(row.policy) if row is not None and row.policy else PolicySettings()


def load_channels(session: Session, workspace_id: int) -> dict[str, ChannelSettings]:
    row = _row(session, workspace_id)
    stored = row.channels if row is not None else {}
    channels = {"sandbox": ChannelSettings()}
    channels.update({name: ChannelSettings.model_validate(value) for name, value in (stored or {}).items()})
    return channels


def _save(session: Session, workspace_id: int, *, policy: dict[str, Any] | None = None,
          channels: dict[str, Any] | None = None) -> MessagingSettings:
    row = _row(session, workspace_id)
    if row is None:
        row = _create_row(session, workspace_id)
    if policy is not None:
        row.policy = policy
    if channels is not None:
        row.channels = channels
    row.updated_at = clock.now()
    session.flush()
    return row


def update_policy(session: Session, workspace_id: int, changes: dict[str, Any]) -> PolicySettings:
    """Merge top-level keys into the stored policy; the result must validate as a whole."""
    current = load_policy(session, workspace_id).model_dump(mode="json")
    current.update(changes)
    policy = parse_policy(current)
    _save(session, workspace_id, policy=policy.model_dump(mode="json"))
    return policy


def save_policy(session: Session, workspace_id: int, policy: PolicySettings) -> None:
    _save(session, workspace_id, policy=policy.model_dump(mode="json"))


def configure_channel(session: Session, workspace_id: int, name: str, data: dict[str, Any]) -> ChannelSettings:
    """Set one channel's settings; the adapter validates its own config before anything is stored."""
    from siyu.messaging.channels import adapter_class
    from siyu.messaging.channels.base import SECRET_FIELDS

    settings = parse_channel(name, data)
    row = _row(session, workspace_id)
    stored = dict(row.channels) if row is not None else {}
    previous = (stored.get(name) or {}).get("config", {})
    for key in SECRET_FIELDS:  # a form shows secrets as ***: sending that back keeps the secret
        if settings.config.get(key) == "***" and key in previous:
            settings.config[key] = previous[key]
    settings.config = adapter_class(name).validate_config(settings.config)
    stored[name] = settings.model_dump(mode="json")
    _save(session, workspace_id, channels=stored)
    return settings
