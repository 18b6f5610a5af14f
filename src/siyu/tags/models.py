from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, JsonDoc, UTCDateTime

MANUAL = "manual"  # 主动标签: put on and taken off by people
AUTO = "auto"      # 自动标签: kept true by a rule


class TagGroup(Base):
    """A family of tags shown together (来源渠道, 客单价, 品类偏好, 意向度)."""

    __tablename__ = "tag_groups"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Tag(Base):
    """A tag. `external_key` never changes: channels (WeCom corp tags) mirror tags by it."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "name"), UniqueConstraint("workspace_id", "external_key"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("tag_groups.id", ondelete="SET NULL"), nullable=True,
                                                 index=True)
    name: Mapped[str] = mapped_column(String(100))
    external_key: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(10), default=MANUAL)
    rule: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    # Bumped on every rule change: compiled rules are cached by it.
    rule_version: Mapped[int] = mapped_column(Integer, default=0)
    refresh_minutes: Mapped[int] = mapped_column(Integer, default=60)
    preset: Mapped[str | None] = mapped_column(String(50), nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_refresh_status: Mapped[str | None] = mapped_column(String(10), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerTag(Base):
    """A tag currently on a customer. Rows of an auto tag are written only by its rule."""

    __tablename__ = "customer_tags"
    __table_args__ = (Index("ix_customer_tags_customer", "customer_id", "tag_id"),)

    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    source: Mapped[str] = mapped_column(String(10))
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TagHistory(Base):
    """Append-only: every time a tag went on or came off a customer, by whom or which rule, and when."""

    __tablename__ = "tag_history"
    __table_args__ = (Index("ix_tag_history_customer", "workspace_id", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    tag_id: Mapped[int] = mapped_column(BigId)
    tag_name: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[int] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(10))  # added | removed
    source: Mapped[str] = mapped_column(String(10))  # manual | rule | merge
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
