"""The API's contract for journeys, runs, staff tasks and consumption cycles."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JourneyIn(_In):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=1000)
    definition: dict[str, Any]


class JourneyPatch(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=1000)
    definition: dict[str, Any] | None = None


class DefinitionIn(_In):
    definition: dict[str, Any]


class IssueOut(BaseModel):
    step_id: str | None
    field: str
    message: str


class JourneyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    status: str
    published_version_id: int | None
    template_key: str | None
    created_at: datetime
    updated_at: datetime


class JourneyDetailOut(JourneyOut):
    definition: dict[str, Any]
    valid: bool
    issues: list[IssueOut]
    published_version: int | None = None


class ValidationOut(BaseModel):
    valid: bool
    issues: list[IssueOut]


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: int
    definition: dict[str, Any]
    published_at: datetime
    published_by: str


class EnrolIn(_In):
    customer_ids: list[int] | None = Field(None, max_length=10_000)
    segment_id: int | None = None
    key: str | None = Field(None, max_length=150, description="names the request: a retry enters nobody twice")


class EnrolOut(BaseModel):
    entered: int = 0
    holdout: int = 0
    already_active: int = 0
    not_eligible: int = 0
    unknown: list[int] = []
    unknown_count: int = 0
    queued: str | None = Field(None, description="for a segment: the enrolment runs in a job with this cause")


class StepLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    step_id: str
    outcome: str
    detail: dict[str, Any] | None
    due_at: datetime
    executed_at: datetime


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    journey_id: int
    version_id: int
    customer_id: int
    status: str
    step_id: str | None
    due_at: datetime | None
    seq: int
    holdout: bool
    waiting_event: str | None
    entered_at: datetime
    started_at: datetime
    exited_at: datetime | None
    exit_reason: str | None
    goal_event: str | None
    goal_until: datetime | None
    converted_at: datetime | None
    attempts: int
    last_error: str | None


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int | None
    assignee_id: int | None
    title: str
    instructions: str
    script: str
    priority: str
    due_at: datetime
    remind_at: datetime | None
    reminded_at: datetime | None
    status: str
    outcome: str
    completed_at: datetime | None
    completed_by: str | None
    journey_id: int | None
    run_id: int | None
    step_id: str | None
    created_at: datetime


class RunDetailOut(RunOut):
    version: int
    steps: list[StepLogOut]
    tasks: list[TaskOut]


class RunListOut(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class MigrateIn(_In):
    from_version: int = Field(ge=1)
    step_map: dict[str, str] = {}


class TaskIn(_In):
    title: str = Field(min_length=1, max_length=200)
    due_at: datetime
    customer_id: int | None = None
    assignee_id: int | None = None
    instructions: str = Field("", max_length=4000)
    script: str = Field("", max_length=4000)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    remind_at: datetime | None = None
    key: str | None = Field(None, max_length=150)


class TaskCloseIn(_In):
    status: Literal["done", "skipped"]
    outcome: str = Field("", max_length=4000)


class TaskAssignIn(_In):
    assignee_id: int | None


class TaskListOut(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


class StaffStatsOut(BaseModel):
    assignee_id: int | None
    name: str
    open: int
    overdue: int
    done: int
    skipped: int
    done_on_time: int
    completion_rate: float
    on_time_rate: float


class CycleIn(_In):
    sku: str | None = Field(None, min_length=1, max_length=100)
    category: str | None = Field(None, min_length=1, max_length=100)
    cycle_days: int = Field(ge=1, le=3650)


class CycleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    scope: str
    key: str
    cycle_days: int
    updated_at: datetime


class PredictionOut(BaseModel):
    customer_id: int
    orders: int
    last_purchase_at: datetime
    last_quantity: int
    days_per_unit: float
    source: str
    run_out_at: datetime


class TemplateSlotOut(BaseModel):
    name: str
    label: str


class TemplateOut(BaseModel):
    key: str
    name: str
    description: str
    slots: list[TemplateSlotOut]
    definition: dict[str, Any]


class CopyTemplateIn(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    values: dict[str, int] = {}
