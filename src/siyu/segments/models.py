from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, JsonDoc, UTCDateTime
from siyu.events.models import Order

DYNAMIC = "dynamic"  # membership follows a rule, refreshed by the worker
STATIC = "static"    # membership is an uploaded list or a snapshot


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"), UniqueConstraint("workspace_id", "builtin_key"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(10), default=DYNAMIC)
    rule: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    rule_version: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(20), default="rule")  # rule | upload | snapshot | rfm
    # Ready-made segments (the eight RFM classes) carry a key so they are created once.
    builtin_key: Mapped[str | None] = mapped_column(String(50), nullable=True)
    refresh_minutes: Mapped[int] = mapped_column(Integer, default=60)
    size: Mapped[int] = mapped_column(Integer, default=0)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_refresh_status: Mapped[str | None] = mapped_column(String(10), nullable=True)  # ok | failed
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_refresh_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SegmentMembership(Base):
    """One stay of a customer in a segment: open while `exited_at` is null; closed stays are history."""

    __tablename__ = "segment_memberships"
    __table_args__ = (
        Index("ix_segment_memberships_current", "segment_id", "customer_id", unique=True,
              sqlite_where=text("exited_at IS NULL"), postgresql_where=text("exited_at IS NULL")),
        Index("ix_segment_memberships_customer", "customer_id", "segment_id",
              sqlite_where=text("exited_at IS NULL"), postgresql_where=text("exited_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SegmentSize(Base):
    """The size of a segment at the end of each (workspace-local) day it was refreshed: the trend."""

    __tablename__ = "segment_sizes"

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    size: Mapped[int] = mapped_column(Integer)


class CustomerLifecycle(Base):
    """The lifecycle stage (潜客 新客 活跃 沉睡 流失 回流) of a customer; `version` counts its changes."""

    __tablename__ = "customer_lifecycle"
    __table_args__ = (Index("ix_customer_lifecycle_ws_stage", "workspace_id", "stage"),)

    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    stage: Mapped[str] = mapped_column(String(20))
    previous_stage: Mapped[str | None] = mapped_column(String(20), nullable=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)


class CustomerRfm(Base):
    """RFM of a customer at the last scoring: raw measures, 1–5 scores, high/low flags, eight-class."""

    __tablename__ = "customer_rfm"
    __table_args__ = (Index("ix_customer_rfm_ws_class", "workspace_id", "rfm_class"),)

    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    recency_days: Mapped[float] = mapped_column(Float)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary_fen: Mapped[int] = mapped_column(BigId)
    r_score: Mapped[int] = mapped_column(SmallInteger, default=0)
    f_score: Mapped[int] = mapped_column(SmallInteger, default=0)
    m_score: Mapped[int] = mapped_column(SmallInteger, default=0)
    r_high: Mapped[bool] = mapped_column(Boolean, default=False)
    f_high: Mapped[bool] = mapped_column(Boolean, default=False)
    m_high: Mapped[bool] = mapped_column(Boolean, default=False)
    rfm_class: Mapped[str] = mapped_column(String(30), default="")


class LayeringRun(Base):
    """The last run of a workspace-wide layering job (lifecycle, rfm): when, outcome, summary."""

    __tablename__ = "layering_runs"

    workspace_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="ok")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


# Windowed order conditions ("≥ 2 orders in the last 90 days") and RFM over a window read a
# workspace's orders by payment time; the index covers every column they read. It is created by
# this domain's migration and declared here, next to its users, so the metadata matches the migrations.
_orders = Order.__table__.c
Index("ix_orders_ws_paid_segments", _orders.workspace_id, _orders.paid_at, _orders.customer_id, _orders.status,
      _orders.total_fen, _orders.refunded_fen)
