from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, JsonDoc, UTCDateTime


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "event_id"),
        Index("ix_events_customer_time", "customer_id", "occurred_at"),
        Index("ix_events_ws_type_time", "workspace_id", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[int] = mapped_column(BigId)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    properties: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("workspace_id", "order_id"),
        Index("ix_orders_customer_paid", "customer_id", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    order_id: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(50))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    total_fen: Mapped[int] = mapped_column(BigId)
    discount_fen: Mapped[int] = mapped_column(BigId, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigId, default=0)
    status: Mapped[str] = mapped_column(String(20), default="paid")
    coupon_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_id: Mapped[str] = mapped_column(String(200))


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (Index("ix_order_items_ws_category", "workspace_id", "category"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int] = mapped_column(BigId, index=True)
    sku: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigId)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Refund(Base):
    """A refund, keyed by its own id; it may arrive before the order it refunds (applied later)."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("workspace_id", "refund_id"),
                      Index("ix_refunds_order", "workspace_id", "order_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    refund_id: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str] = mapped_column(String(200))
    amount_fen: Mapped[int] = mapped_column(BigId)
    refunded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied: Mapped[bool] = mapped_column(default=False)


class CustomEventType(Base):
    """A workspace's own event type; in strict mode only catalogue and registered types are accepted."""

    __tablename__ = "custom_event_types"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    required_properties: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)


class CustomerRollup(Base):
    """Per-customer aggregates kept correct on every ingest, refund and merge."""

    __tablename__ = "customer_rollups"

    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId, index=True)
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spend_fen: Mapped[int] = mapped_column(BigId, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigId, default=0)
    first_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_interaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    events_count: Mapped[int] = mapped_column(Integer, default=0)


class CustomerCategoryStat(Base):
    __tablename__ = "customer_category_stats"

    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId, index=True)
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    spend_fen: Mapped[int] = mapped_column(BigId, default=0)
    first_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
