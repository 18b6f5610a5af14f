from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, JsonDoc, UTCDateTime


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_ws_id", "workspace_id", "id"),
        Index("ix_customers_ws_phone", "workspace_id", "phone"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    gender: Mapped[str | None] = mapped_column(String(10), nullable=True)
    birthday: Mapped[date | None] = mapped_column(Date, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    province: Mapped[str | None] = mapped_column(String(100), nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    acquisition_channel: Mapped[str | None] = mapped_column(String(50), nullable=True)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # occurred_at of the newest event whose traits were applied: older traits only fill gaps.
    profile_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when this profile was absorbed by a merge; the id keeps resolving to the survivor.
    merged_into_id: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Identity(Base):
    """One identifier of a customer. Unique per workspace: it belongs to exactly one customer."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("workspace_id", "type", "namespace", "value"),
        Index("ix_identities_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(50))
    namespace: Mapped[str] = mapped_column(String(100), default="")
    value: Mapped[str] = mapped_column(String(300))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdentityLink(Base):
    """A weak match between two profiles, kept for an operator to confirm (merge) or reject."""

    __tablename__ = "identity_links"
    __table_args__ = (UniqueConstraint("workspace_id", "customer_id", "other_customer_id", "identity_type",
                                       "identity_value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(BigId)
    other_customer_id: Mapped[int] = mapped_column(BigId)
    identity_type: Mapped[str] = mapped_column(String(50))
    identity_value: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CustomerMerge(Base):
    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    survivor_id: Mapped[int] = mapped_column(BigId, index=True)
    absorbed_id: Mapped[int] = mapped_column(BigId, unique=True)
    reason: Mapped[str] = mapped_column(String(200))
    conflicts: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime)
