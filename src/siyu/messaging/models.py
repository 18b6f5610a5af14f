"""Tables of outbound messaging: the outbox and its attempts and events, templates, broadcasts,
contact preferences, usage inventory (caps and platform quotas), holdout, the sandbox inbox and
per-workspace settings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, JsonDoc, UTCDateTime

# Outbox states. queued/deferred are due rows; sending is claimed by a worker (with a lease);
# sent/delivered/failed/suppressed/cancelled/unknown are where a row ends.
DUE_STATES = ("queued", "deferred")
FINAL_STATES = ("sent", "delivered", "failed", "suppressed", "cancelled", "unknown")
_DUE_WHERE = text("state IN ('queued', 'deferred')")
_SENDING_WHERE = text("state = 'sending'")
_PROVIDER_WHERE = text("provider_message_id IS NOT NULL")


class OutboxMessage(Base):
    """One message to one customer on one channel, keyed by what caused it (`idempotency_key`)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_outbox_due", "due_at", sqlite_where=_DUE_WHERE, postgresql_where=_DUE_WHERE),
        Index("ix_outbox_sending", "locked_until", sqlite_where=_SENDING_WHERE, postgresql_where=_SENDING_WHERE),
        Index("ix_outbox_customer", "workspace_id", "customer_id", "id"),
        Index("ix_outbox_broadcast", "broadcast_id", "state"),
        Index("ix_outbox_provider", "workspace_id", "provider_message_id", sqlite_where=_PROVIDER_WHERE,
              postgresql_where=_PROVIDER_WHERE),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(30))
    purpose: Mapped[str] = mapped_column(String(20))  # marketing | service
    idempotency_key: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(50), default="api")
    template_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    broadcast_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    variant: Mapped[str | None] = mapped_column(String(20), nullable=True)
    staff_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # What is sent: text, subject, image_url, link, miniprogram, material_id; links = tracked URLs.
    content: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    droppable: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(100), nullable=True)  # the rule or error code
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Inventory this message holds: [[limit_key, subject, period_start], ...]; refunded if it never goes.
    reservations: Mapped[list[list[str]]] = mapped_column(JsonDoc, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempt_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    click_count: Mapped[int] = mapped_column(Integer, default=0)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    engaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attributed_order_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attributed_fen: Mapped[int | None] = mapped_column(BigId, nullable=True)


class MessageAttempt(Base):
    """One call of a channel adapter for one message. Append-only."""

    __tablename__ = "message_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    outbox_id: Mapped[int] = mapped_column(BigId, index=True)
    attempt_id: Mapped[str] = mapped_column(String(36))
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(12))  # sent | delivered | transient | permanent | ambiguous
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class MessageEvent(Base):
    """What happened to a message after it was written: deferred or suppressed at dispatch,
    recovered after a crash, receipts, clicks, replies, attributed orders. Append-only."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    outbox_id: Mapped[int] = mapped_column(BigId, index=True)
    type: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(String(100), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageTemplate(Base):
    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(30))
    kind: Mapped[str] = mapped_column(String(30))  # text | text_image | link_card | miniprogram_card | material
    purpose: Mapped[str] = mapped_column(String(20), default="marketing")
    subject: Mapped[str | None] = mapped_column(String(500), nullable=True)
    body: Mapped[str] = mapped_column(Text, default="")
    # Kind-specific fields: image_url, link {url, title, description}, miniprogram {appid, page, title},
    # material_id, subscription_topic. Strings in it are templates too.
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    variables: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Broadcast(Base):
    """A 群发: one audience, one channel, one or more template variants, a send time."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_ws", "workspace_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(30))
    purpose: Mapped[str] = mapped_column(String(20), default="marketing")
    audience: Mapped[dict[str, Any]] = mapped_column(JsonDoc)  # {"kind": "list"|"all"|"segment"|"tag", ...}
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc)  # [{"name", "template_id", "percent"}]
    context: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    droppable: Mapped[bool] = mapped_column(Boolean, default=False)
    # draft → scheduled → filling → sending → completed; paused and cancelled on the way.
    state: Mapped[str] = mapped_column(String(12), default="draft")
    audience_size: Mapped[int] = mapped_column(Integer, default=0)
    filled_count: Mapped[int] = mapped_column(Integer, default=0)
    fill_cursor: Mapped[int] = mapped_column(BigId, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BroadcastAudienceMember(Base):
    """The customers of a list audience (ids or CSV), resolved when the broadcast is created."""

    __tablename__ = "broadcast_audience"

    broadcast_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)


class ContactPreference(Base):
    """Consent, opt-out or block of one customer for a channel ('*' = all) and purpose ('*' = all)."""

    __tablename__ = "contact_preferences"
    __table_args__ = (UniqueConstraint("workspace_id", "customer_id", "channel", "purpose"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(30))
    purpose: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))  # opted_in | opted_out | blocked
    source: Mapped[str] = mapped_column(String(50))  # sms_reply | unsubscribe_link | api | console | merge
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OneTimeConsent(Base):
    """A one-time subscription-message consent (一次性订阅): one send each, consumed on use."""

    __tablename__ = "one_time_consents"
    __table_args__ = (Index("ix_one_time_consents_customer", "workspace_id", "customer_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(30))
    topic: Mapped[str] = mapped_column(String(200), default="")
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outbox_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # reserved by this message
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PlatformQuota(Base):
    """A platform's sending limit as data. Rows without a workspace are the defaults every workspace
    gets; a workspace row with the same channel and name replaces the default."""

    __tablename__ = "platform_quotas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    channel: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(12))  # customer | staff | workspace
    period: Mapped[str] = mapped_column(String(8))  # day | week | month
    max_count: Mapped[int] = mapped_column(Integer)
    purposes: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactUsage(Base):
    """Inventory consumed in one period: a frequency cap or a platform quota, per subject
    (a customer id, a staff id, or '*' for the workspace). Changed only by conditional increments."""

    __tablename__ = "contact_usage"

    workspace_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    limit_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class HoldoutMember(Base):
    """A customer in the global holdout: never receives marketing, for measuring uplift."""

    __tablename__ = "holdout_members"

    workspace_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    draw: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SandboxMessage(Base):
    """What the sandbox channel received: one row per send call, never de-duplicated, so a double
    send is visible."""

    __tablename__ = "sandbox_messages"
    __table_args__ = (Index("ix_sandbox_messages_key", "workspace_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    outbox_id: Mapped[int] = mapped_column(BigId)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int] = mapped_column(BigId)
    address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    content: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessagingSettings(Base):
    """A workspace's contact policy and channel configuration (validated by siyu.messaging.settings)."""

    __tablename__ = "messaging_settings"

    workspace_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    channels: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    # Signs tracked-link and unsubscribe codes of this workspace's messages; generated once.
    signing_secret: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
