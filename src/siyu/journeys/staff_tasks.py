"""Staff tasks (SOP): what a 导购/客服 should do for a customer, by when — created by journey steps
or by hand — the staff member's inbox, closing a task with an outcome, reminders and statistics.

Closing a task that a journey run waits on wakes that run, so its done / skipped branch runs at once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from siyu.db.bulk import Bulk
from siyu.journeys import actions
from siyu.journeys.definitions import PRIORITIES, Step
from siyu.journeys.errors import TaskAlreadyClosed, TaskNotFound
from siyu.journeys.models import RUN_ACTIVE, JourneyRun, StaffTask
from siyu.journeys.sql import insert_returning
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.kit.pagination import decode_cursor, encode_cursor
from siyu.workspaces.service import WorkspaceContext

OPEN, DONE, SKIPPED = "open", "done", "skipped"
MAX_PAGE = 200
PRIORITY_ORDER = {p: i for i, p in enumerate(reversed(PRIORITIES))}  # urgent first


def pick_from_pool(pool: Sequence[int], customer_id: int) -> int | None:
    """The same pool member for the same customer every time (stable as long as the pool is)."""
    if not pool:
        return None
    digest = hashlib.sha256(f"pool:{customer_id}".encode()).digest()
    return sorted(pool)[int.from_bytes(digest[:8], "big") % len(pool)]


def assignees(session: Session, workspace_id: int, assign: dict[str, Any], customer_ids: Sequence[int]
              ) -> dict[int, int | None]:
    """Who gets each customer's task: the owning staff member, a pool member or a named user — only
    active users of the workspace; nobody (the task is unassigned) when none is left."""
    active = actions.active_user_ids(session, workspace_id)
    pool = [u for u in assign.get("pool", []) if u in active]
    owners = actions.owning_staff(session, workspace_id, customer_ids) if assign["to"] == "owner" else {}
    chosen: dict[int, int | None] = {}
    for customer_id in customer_ids:
        if assign["to"] == "user" and assign.get("user_id") in active:
            chosen[customer_id] = assign["user_id"]
        elif owners.get(customer_id) in active:
            chosen[customer_id] = owners[customer_id]
        else:
            chosen[customer_id] = pick_from_pool(pool, customer_id)
    return chosen


def create_for_runs(session: Session, ctx: WorkspaceContext, step: Step, journey_id: int,
                    runs: Sequence[tuple[int, int, str]], now: datetime) -> dict[str, tuple[int, int | None]]:
    """A task per (run id, customer id, cause key); a key seen before returns its first task.
    Returns cause key → (task id, assignee id)."""
    if not runs:
        return {}
    params = step.params
    due = now + timedelta(seconds=params["sla_seconds"])
    remind = due - timedelta(seconds=params["remind_before_seconds"]) if params["remind_before_seconds"] else None
    chosen = assignees(session, ctx.id, params["assign"], [customer_id for _, customer_id, _ in runs])
    rows = [(ctx.id, customer_id, chosen[customer_id], params["title"], params["instructions"], params["script"],
             params["priority"], due, remind, OPEN, "", journey_id, run_id, step.id, key, f"journey:{journey_id}", now)
            for run_id, customer_id, key in {key: (r, c, key) for r, c, key in runs}.values()]
    created = {key: (int(task_id), assignee) for key, task_id, assignee in insert_returning(
        Bulk(session), "staff_tasks", TASK_INSERT_COLUMNS, rows, conflict="(workspace_id, cause_key) DO NOTHING",
        returning="cause_key, id, assignee_id")}
    replayed = [key for _, _, key in runs if key not in created]
    if replayed:  # keys written before: their first tasks stand
        found = session.execute(select(StaffTask.cause_key, StaffTask.id, StaffTask.assignee_id)
                                .where(StaffTask.workspace_id == ctx.id, StaffTask.cause_key.in_(replayed)))
        created.update({key: (int(task_id), assignee) for key, task_id, assignee in found})
    return created


TASK_INSERT_COLUMNS = (("workspace_id", "bigint"), ("customer_id", "bigint"), ("assignee_id", "bigint"),
                       ("title", "text"), ("instructions", "text"), ("script", "text"), ("priority", "text"),
                       ("due_at", "timestamptz"), ("remind_at", "timestamptz"), ("status", "text"),
                       ("outcome", "text"), ("journey_id", "bigint"), ("run_id", "bigint"), ("step_id", "text"),
                       ("cause_key", "text"), ("created_by", "text"), ("created_at", "timestamptz"))


def statuses(session: Session, workspace_id: int, task_ids: Sequence[int]) -> dict[int, str]:
    if not task_ids:
        return {}
    return {int(i): s for i, s in session.execute(select(StaffTask.id, StaffTask.status).where(
        StaffTask.workspace_id == workspace_id, StaffTask.id.in_(sorted(set(task_ids)))))}


def create_task(session: Session, ctx: WorkspaceContext, *, title: str, due_at: datetime, actor: str,
                customer_id: int | None = None, assignee_id: int | None = None, instructions: str = "",
                script: str = "", priority: str = "normal", remind_at: datetime | None = None,
                key: str | None = None) -> StaffTask:
    """A task made by hand (or by an integration); `key` makes a retried request return the first task."""
    if priority not in PRIORITIES:
        raise ValidationFailed(f"priority must be one of {', '.join(PRIORITIES)}", field="priority")
    if not title.strip():
        raise ValidationFailed("a task needs a title", field="title")
    if assignee_id is not None and assignee_id not in actions.active_user_ids(session, ctx.id):
        raise ValidationFailed(f"no active user {assignee_id} in this workspace", field="assignee_id")
    if customer_id is not None:
        resolved = actions.resolve_customers(session, ctx.id, [customer_id])
        if customer_id not in resolved:
            raise ValidationFailed(f"no customer {customer_id}", field="customer_id")
        customer_id = resolved[customer_id]
    cause = f"manual:{key}" if key else f"manual:{uuid.uuid4().hex}"
    existing = session.scalar(select(StaffTask).where(StaffTask.workspace_id == ctx.id, StaffTask.cause_key == cause))
    if existing is not None:
        return existing
    task = StaffTask(workspace_id=ctx.id, customer_id=customer_id, assignee_id=assignee_id, title=title.strip(),
                     instructions=instructions, script=script, priority=priority, due_at=due_at, remind_at=remind_at,
                     status=OPEN, outcome="", cause_key=cause, created_by=actor, created_at=clock.now())
    session.add(task)
    session.flush()
    return task


def get_task(session: Session, workspace_id: int, task_id: int) -> StaffTask:
    task = session.scalar(select(StaffTask).where(StaffTask.workspace_id == workspace_id, StaffTask.id == task_id))
    if task is None:
        raise TaskNotFound(f"no task {task_id}", field="task_id")
    return task


def close_task(session: Session, ctx: WorkspaceContext, task_id: int, status: str, *, outcome: str, actor: str
               ) -> StaffTask:
    """Mark a task done or skipped with its outcome; the journey run waiting on it goes on now."""
    if status not in (DONE, SKIPPED):
        raise ValidationFailed("a task is closed as done or skipped", field="status")
    task = get_task(session, ctx.id, task_id)
    if task.status != OPEN:
        raise TaskAlreadyClosed(f"task {task_id} is already {task.status}", field="task_id")
    now = clock.now()
    task.status, task.outcome, task.completed_at, task.completed_by = status, outcome[:4000], now, actor
    if task.run_id is not None:
        session.execute(update(JourneyRun).where(JourneyRun.id == task.run_id, JourneyRun.status == RUN_ACTIVE,
                                                 JourneyRun.step_id == task.step_id).values(due_at=now))
    session.flush()
    return task


def reassign_task(session: Session, ctx: WorkspaceContext, task_id: int, assignee_id: int | None) -> StaffTask:
    task = get_task(session, ctx.id, task_id)
    if task.status != OPEN:
        raise TaskAlreadyClosed(f"task {task_id} is already {task.status}", field="task_id")
    if assignee_id is not None and assignee_id not in actions.active_user_ids(session, ctx.id):
        raise ValidationFailed(f"no active user {assignee_id} in this workspace", field="assignee_id")
    task.assignee_id = assignee_id
    session.flush()
    return task


@dataclass
class TaskPage:
    items: list[StaffTask]
    next_cursor: str | None


def list_tasks(session: Session, workspace_id: int, *, assignee_id: int | None = None, unassigned: bool = False,
               status: str | None = OPEN, overdue: bool = False, customer_id: int | None = None,
               journey_id: int | None = None, cursor: str | None = None, limit: int = 50) -> TaskPage:
    """An inbox: open tasks soonest due first (then by id), keyset-paginated."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(StaffTask).where(StaffTask.workspace_id == workspace_id)
    if assignee_id is not None:
        stmt = stmt.where(StaffTask.assignee_id == assignee_id)
    if unassigned:
        stmt = stmt.where(StaffTask.assignee_id.is_(None))
    if status:
        stmt = stmt.where(StaffTask.status == status)
    if overdue:
        stmt = stmt.where(StaffTask.status == OPEN, StaffTask.due_at <= clock.now())
    if customer_id is not None:
        stmt = stmt.where(StaffTask.customer_id == customer_id)
    if journey_id is not None:
        stmt = stmt.where(StaffTask.journey_id == journey_id)
    if cursor:
        due_iso, last_id = decode_cursor(cursor)
        due = datetime.fromisoformat(due_iso)
        stmt = stmt.where(or_(StaffTask.due_at > due, (StaffTask.due_at == due) & (StaffTask.id > int(last_id))))
    rows = list(session.scalars(stmt.order_by(StaffTask.due_at, StaffTask.id).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.due_at.isoformat(), last.id])
    return TaskPage(rows[:limit], next_cursor)


def remind_due_tasks(session: Session, now: datetime | None = None) -> int:
    """Tasks whose reminder time has come are marked reminded, once, and announced as the domain
    event `staff_task_reminder` (a WeCom notification to the staff member subscribes to it)."""
    now = now or clock.now()
    due = list(session.execute(select(StaffTask.id, StaffTask.workspace_id, StaffTask.assignee_id).where(
        StaffTask.status == OPEN, StaffTask.remind_at <= now, StaffTask.reminded_at.is_(None)).limit(5000)))
    if not due:
        return 0
    session.execute(update(StaffTask).where(StaffTask.id.in_([r.id for r in due])).values(reminded_at=now))
    from siyu.jobs.service import publish

    by_workspace: dict[int, list[dict[str, Any]]] = {}
    for row in due:
        by_workspace.setdefault(row.workspace_id, []).append({"task_id": row.id, "assignee_id": row.assignee_id})
    for workspace_id, tasks in by_workspace.items():
        publish(session, "staff_task_reminder", {"workspace_id": workspace_id, "tasks": tasks},
                workspace_id=workspace_id, key=f"task-reminder:{tasks[0]['task_id']}:{len(tasks)}")
    return len(due)


@dataclass
class StaffStats:
    assignee_id: int | None
    name: str
    open: int
    overdue: int
    done: int
    skipped: int
    done_on_time: int

    @property
    def closed(self) -> int:
        return self.done + self.skipped

    @property
    def completion_rate(self) -> float:
        """Done out of every task that was due or closed."""
        total = self.done + self.skipped + self.overdue
        return self.done / total if total else 0.0

    @property
    def on_time_rate(self) -> float:
        return self.done_on_time / self.done if self.done else 0.0


def staff_stats(session: Session, workspace_id: int, since: datetime | None = None) -> list[StaffStats]:
    """Per staff member: open, overdue, done (on time), skipped — tasks created since `since`."""
    now = clock.now()
    is_open = StaffTask.status == OPEN
    stmt = (select(StaffTask.assignee_id,
                   func.count().filter(is_open),
                   func.count().filter(is_open & (StaffTask.due_at <= now)),
                   func.count().filter(StaffTask.status == DONE),
                   func.count().filter(StaffTask.status == SKIPPED),
                   func.sum(case(((StaffTask.status == DONE) & (StaffTask.completed_at <= StaffTask.due_at), 1),
                                 else_=0)))
            .where(StaffTask.workspace_id == workspace_id).group_by(StaffTask.assignee_id))
    if since is not None:
        stmt = stmt.where(StaffTask.created_at >= since)
    names = actions.active_user_ids(session, workspace_id)
    stats = [StaffStats(a, names.get(a, f"user {a}") if a is not None else "", int(o), int(od), int(d), int(s),
                        int(t or 0)) for a, o, od, d, s, t in session.execute(stmt)]
    return sorted(stats, key=lambda s: (s.assignee_id is None, s.name))


def move_tasks_on_merge(session: Session, workspace_id: int, survivor_id: int, absorbed_id: int) -> None:
    session.execute(update(StaffTask).where(StaffTask.workspace_id == workspace_id,
                                            StaffTask.customer_id == absorbed_id).values(customer_id=survivor_id))
