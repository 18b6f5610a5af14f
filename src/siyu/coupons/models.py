"""Coupon templates, the coupons issued from them and their redemptions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, JsonDoc, UTCDateTime

KINDS = ("amount_off", "threshold_off", "percent_off", "gift")
TEMPLATE_STATUSES = ("active", "paused", "archived")
COUPON_STATES = ("issued", "redeemed", "expired", "voided")


class CouponTemplate(Base):
    """What a coupon is worth and where it applies. `issued_count` is the stock counter: it only ever
    moves by an atomic `UPDATE` under the template's row lock."""

    __tablename__ = "coupon_templates"
    __table_args__ = (Index("ix_coupon_templates_ws_status", "workspace_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    kind: Mapped[str] = mapped_column(String(20))
    amount_off_fen: Mapped[int | None] = mapped_column(BigId, nullable=True)
    threshold_fen: Mapped[int] = mapped_column(BigId, default=0)
    percent_off: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 10 = 9折
    max_discount_fen: Mapped[int | None] = mapped_column(BigId, nullable=True)
    gift_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_stock: Mapped[int | None] = mapped_column(BigId, nullable=True)
    issued_count: Mapped[int] = mapped_column(BigId, default=0)
    per_customer_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    categories: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    skus: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    points_cost: Mapped[int | None] = mapped_column(BigId, nullable=True)
    restore_on_refund: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Coupon(Base):
    """One issued coupon. `state` moves issued → redeemed | expired | voided only by conditional
    `UPDATE ... WHERE state = 'issued'`, so two redemptions can never both win."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("code"),
        UniqueConstraint("workspace_id", "cause_key"),
        Index("ix_coupons_ws_customer_state", "workspace_id", "customer_id", "state"),
        Index("ix_coupons_template_customer", "template_id", "customer_id"),
        Index("ix_coupons_state_valid_until", "state", "valid_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId)
    code: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(10), default="issued")
    cause_key: Mapped[str] = mapped_column(String(300))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CouponRedemption(Base):
    """One use of a coupon on one order. A refund may restore the coupon (`restored_at`); the row stays."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "coupon_id", "order_id"),
        Index("ix_coupon_redemptions_template", "template_id", "restored_at"),
        Index("ix_coupon_redemptions_ws_order", "workspace_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id", ondelete="CASCADE"))
    template_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int] = mapped_column(BigId)
    order_id: Mapped[str] = mapped_column(String(200))
    order_amount_fen: Mapped[int] = mapped_column(BigId)
    discount_fen: Mapped[int] = mapped_column(BigId)
    source: Mapped[str] = mapped_column(String(20))  # api | order_paid
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
