"""The membership programme: its settings and tiers, members, the points ledger and its lots,
qualifying activity, tier history and benefit grants. See docs/adr/0003-points-ledger.md."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, UTCDateTime


class Programme(Base):
    """One membership programme per workspace: how points and growth are earned, how tiers qualify."""

    __tablename__ = "loyalty_programmes"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    points_per_yuan: Mapped[int] = mapped_column(Integer, default=1)
    return_window_days: Mapped[int] = mapped_column(Integer, default=7)
    points_expiry: Mapped[str] = mapped_column(String(20), default="end_of_next_year")
    points_expiry_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    allow_negative_balance: Mapped[bool] = mapped_column(Boolean, default=False)
    check_in_points: Mapped[int] = mapped_column(Integer, default=0)
    check_in_daily_cap: Mapped[int] = mapped_column(Integer, default=1)
    check_in_monthly_cap: Mapped[int] = mapped_column(Integer, default=31)
    share_points: Mapped[int] = mapped_column(Integer, default=0)
    share_daily_cap: Mapped[int] = mapped_column(Integer, default=3)
    share_monthly_cap: Mapped[int] = mapped_column(Integer, default=30)
    growth_per_yuan: Mapped[int] = mapped_column(Integer, default=1)
    growth_per_check_in: Mapped[int] = mapped_column(Integer, default=0)
    growth_per_share: Mapped[int] = mapped_column(Integer, default=0)
    tier_metric: Mapped[str] = mapped_column(String(20), default="spend_fen")
    tier_window: Mapped[str] = mapped_column(String(20), default="lifetime")
    tier_window_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    benefit_day: Mapped[int] = mapped_column(Integer, default=1)
    member_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deduction_points_per_yuan: Mapped[int] = mapped_column(Integer, default=100)
    max_deduction_percent: Mapped[int] = mapped_column(Integer, default=50)
    member_number_prefix: Mapped[str] = mapped_column(String(8), default="M")
    member_seq: Mapped[int] = mapped_column(BigId, default=0)  # last member number handed out
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Tier(Base):
    """A rung of the tier ladder (rank 0 is the base tier, threshold 0) and its benefits (权益)."""

    __tablename__ = "loyalty_tiers"
    __table_args__ = (UniqueConstraint("workspace_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(BigId)
    validity_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    points_multiplier_percent: Mapped[int] = mapped_column(Integer, default=100)
    member_day_multiplier_percent: Mapped[int] = mapped_column(Integer, default=100)
    shop_discount_percent: Mapped[int] = mapped_column(Integer, default=100)  # 95 = 95折
    monthly_coupon_template_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    monthly_coupon_quantity: Mapped[int] = mapped_column(Integer, default=1)
    birthday_coupon_template_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    birthday_points: Mapped[int] = mapped_column(Integer, default=0)
    dedicated_service: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Member(Base):
    """A customer in the programme. Balances move only by atomic `UPDATE ... SET x = x + :d` under
    the row lock, and always together with the ledger entries that explain them. On PostgreSQL the
    table keeps room on its pages (fillfactor 70, migration 0007) so those updates stay in place."""

    __tablename__ = "loyalty_members"
    __table_args__ = (
        UniqueConstraint("workspace_id", "customer_id"),
        UniqueConstraint("workspace_id", "member_number"),
        Index("ix_loyalty_members_ws_status_id", "workspace_id", "status", "id"),
        Index("ix_loyalty_members_valid_until", "tier_valid_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId)
    member_number: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | left | merged
    tier_id: Mapped[int] = mapped_column(ForeignKey("loyalty_tiers.id"))
    tier_reached_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tier_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    points_balance: Mapped[int] = mapped_column(BigId, default=0)
    points_pending: Mapped[int] = mapped_column(BigId, default=0)
    points_debt: Mapped[int] = mapped_column(BigId, default=0)
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_channel: Mapped[str] = mapped_column(String(50))
    consent_text_version: Mapped[str] = mapped_column(String(50))
    dedicated_staff_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    merged_into_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsEntry(Base):
    """One append-only line of the points ledger, keyed by its cause. `points`, `pending` and `debt`
    are the entry's effect on the member's available balance, pending points and debt."""

    __tablename__ = "loyalty_points_ledger"
    __table_args__ = (
        UniqueConstraint("workspace_id", "cause_key"),
        Index("ix_loyalty_points_ledger_member", "member_id", "id"),
        Index("ix_loyalty_points_ledger_ws_order", "workspace_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    member_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(20))
    points: Mapped[int] = mapped_column(BigId, default=0)
    pending: Mapped[int] = mapped_column(BigId, default=0)
    debt: Mapped[int] = mapped_column(BigId, default=0)
    cause_key: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(300), default="")
    order_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    amount_fen: Mapped[int | None] = mapped_column(BigId, nullable=True)  # what an order earning was computed on
    lot_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsLot(Base):
    """The points of one earning, with their expiry; redemption and expiry consume lots first in,
    first out. A lot from an order is `pending` until the return window closes."""

    __tablename__ = "loyalty_points_lots"
    __table_args__ = (
        UniqueConstraint("entry_id"),
        Index("ix_loyalty_points_lots_member_fifo", "member_id", "status", "expires_at", "id"),
        Index("ix_loyalty_points_lots_release", "status", "available_at"),
        Index("ix_loyalty_points_lots_expiry", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    member_id: Mapped[int] = mapped_column(BigId)
    entry_id: Mapped[int] = mapped_column(BigId)
    order_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    points: Mapped[int] = mapped_column(BigId)
    remaining: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(10))  # pending | available | cancelled | expired
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Activity(Base):
    """What a member did that counts toward tiers (paid spend, orders, growth 成长值), keyed by cause.
    A refund is recorded at the time of its order, so windows measure orders net of refunds."""

    __tablename__ = "loyalty_activities"
    __table_args__ = (
        UniqueConstraint("workspace_id", "cause_key"),
        Index("ix_loyalty_activities_member_time", "member_id", "occurred_at"),
        Index("ix_loyalty_activities_ws_order", "workspace_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    member_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(20))  # order | refund | check_in | share
    cause_key: Mapped[str] = mapped_column(String(300))
    order_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    local_day: Mapped[int] = mapped_column(Integer)  # YYYYMMDD in the workspace's zone: caps count by it
    spend_fen: Mapped[int] = mapped_column(BigId, default=0)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    growth: Mapped[int] = mapped_column(BigId, default=0)
    capped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TierChange(Base):
    """Tier history: every change (and every retention check passed) with its reason."""

    __tablename__ = "loyalty_tier_changes"
    __table_args__ = (
        UniqueConstraint("workspace_id", "cause_key"),
        Index("ix_loyalty_tier_changes_member", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    member_id: Mapped[int] = mapped_column(BigId)
    from_tier_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    to_tier_id: Mapped[int] = mapped_column(BigId)
    direction: Mapped[str] = mapped_column(String(10))  # enrolled | up | down | retained | merged
    reason: Mapped[str] = mapped_column(String(300))
    metric_value: Mapped[int] = mapped_column(BigId, default=0)
    cause_key: Mapped[str] = mapped_column(String(300))
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BenefitGrant(Base):
    """A periodic benefit given to a member: the unique key makes it exactly once per period."""

    __tablename__ = "loyalty_benefit_grants"
    __table_args__ = (UniqueConstraint("workspace_id", "member_id", "benefit", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    member_id: Mapped[int] = mapped_column(BigId)
    tier_id: Mapped[int] = mapped_column(BigId)
    benefit: Mapped[str] = mapped_column(String(20))  # monthly_coupon | birthday_gift
    period: Mapped[str] = mapped_column(String(10))  # 2026-12 (monthly) or 2026 (birthday)
    coupons: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(BigId, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BenefitRun(Base):
    """The monthly issuance of one workspace for one period, resumable from `cursor_member_id`."""

    __tablename__ = "loyalty_benefit_runs"
    __table_args__ = (UniqueConstraint("workspace_id", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    period: Mapped[str] = mapped_column(String(10))
    cursor_member_id: Mapped[int] = mapped_column(BigId, default=0)
    members_granted: Mapped[int] = mapped_column(BigId, default=0)
    coupons_issued: Mapped[int] = mapped_column(BigId, default=0)
    points_awarded: Mapped[int] = mapped_column(BigId, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
