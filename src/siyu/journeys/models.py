"""The tables of journeys: definitions and versions, runs and their step log, staff tasks, cycles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, JsonDoc, UTCDateTime

DRAFT, ACTIVE, PAUSED, ARCHIVED = "draft", "active", "paused", "archived"
RUN_ACTIVE, RUN_COMPLETED, RUN_EXITED, RUN_FAILED = "active", "completed", "exited", "failed"


class Journey(Base):
    """A journey: its editable draft and, once published, the version new entries start on."""

    __tablename__ = "journeys"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(10), default=DRAFT)  # draft | active | paused | archived
    draft: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    published_version_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    template_key: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JourneyVersion(Base):
    """A published definition. Immutable: runs finish on the version they started on."""

    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(200), default="")


class JourneyRun(Base):
    """One customer's pass through a journey: where it is (`step_id`) and when it is next due.

    Workers claim active runs whose `due_at` has come (docs/adr/0005-journey-execution.md). `seq`
    counts the steps executed; (run, seq) is the idempotency key of a step's side effects.
    """

    __tablename__ = "journey_runs"
    __table_args__ = (
        UniqueConstraint("journey_id", "customer_id", "entry_key"),
        Index("ix_journey_runs_due", "due_at", sqlite_where=text("status = 'active'"),
              postgresql_where=text("status = 'active'")),
        Index("ix_journey_runs_one_active", "journey_id", "customer_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        Index("ix_journey_runs_customer", "workspace_id", "customer_id"),
        Index("ix_journey_runs_journey_status", "journey_id", "status", "step_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    journey_id: Mapped[int] = mapped_column(BigId)
    version_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(10), default=RUN_ACTIVE)
    step_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    waiting_event: Mapped[str | None] = mapped_column(String(100), nullable=True)
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    entry_key: Mapped[str] = mapped_column(String(200))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exit_reason: Mapped[str | None] = mapped_column(String(30), nullable=True)
    goal_event: Mapped[str | None] = mapped_column(String(100), nullable=True)
    goal_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class JourneyStepLog(Base):
    """Append-only: every step a run executed, with its outcome. (run, seq) is unique, so a step can
    never be recorded — or its side effects caused — twice."""

    __tablename__ = "journey_step_log"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        Index("ix_journey_step_log_journey_step", "journey_id", "step_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    journey_id: Mapped[int] = mapped_column(BigId)
    run_id: Mapped[int] = mapped_column(BigId)
    seq: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    executed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaffTask(Base):
    """A task for a staff member (导购/客服): what to do for which customer, by when (SOP)."""

    __tablename__ = "staff_tasks"
    __table_args__ = (
        UniqueConstraint("workspace_id", "cause_key"),
        Index("ix_staff_tasks_inbox", "workspace_id", "assignee_id", "status", "due_at"),
        Index("ix_staff_tasks_remind", "status", "remind_at"),
        Index("ix_staff_tasks_customer", "workspace_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    customer_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    assignee_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # users.id; null: unassigned
    title: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    script: Mapped[str] = mapped_column(Text, default="")  # the suggested script or material
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | done | skipped
    outcome: Mapped[str] = mapped_column(Text, default="")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    journey_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    run_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    step_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cause_key: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsumptionCycle(Base):
    """How many days one unit of a SKU, or of anything in a category, lasts (复购周期)."""

    __tablename__ = "consumption_cycles"
    __table_args__ = (UniqueConstraint("workspace_id", "scope", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(10))  # sku | category
    key: Mapped[str] = mapped_column(String(100))
    cycle_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
