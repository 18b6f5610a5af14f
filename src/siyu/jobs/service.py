"""Enqueueing, claiming and finishing jobs; publishing domain events to subscribers."""

from __future__ import annotations

import random
import traceback
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.jobs.models import Job
from siyu.kit import clock
from siyu.kit.errors import NotFound

LEASE = timedelta(minutes=5)
MAX_BACKOFF_SECONDS = 3600


def enqueue(session: Session, kind: str, payload: dict[str, Any] | None = None, *,
            workspace_id: int | None = None, due_at: datetime | None = None, key: str | None = None,
            max_attempts: int = 8) -> None:
    """Add a due row. With a key, a second enqueue of the same key is a no-op."""
    enqueue_many(session, [dict(kind=kind, payload=payload or {}, workspace_id=workspace_id,
                                due_at=due_at, key=key, max_attempts=max_attempts)])


def enqueue_many(session: Session, jobs: Sequence[dict[str, Any]]) -> None:
    if not jobs:
        return
    now = clock.now()
    rows = [{"kind": j["kind"], "payload": j.get("payload") or {}, "workspace_id": j.get("workspace_id"),
             "due_at": j.get("due_at") or now, "key": j.get("key"), "state": "pending", "attempts": 0,
             "max_attempts": j.get("max_attempts", 8), "created_at": now} for j in jobs]
    dialect = session.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert_fn(table_of(Job)).on_conflict_do_nothing(index_elements=["key"]), rows)


def publish(session: Session, event: str, payload: dict[str, Any], *, workspace_id: int,
            key: str | None = None) -> None:
    """Deliver a domain event to its subscribers once this transaction commits (never before)."""
    from siyu.subscriptions import SUBSCRIPTIONS

    subscribers = SUBSCRIPTIONS.get(event, [])
    enqueue_many(session, [
        {"kind": sub, "payload": {"event": event, **payload}, "workspace_id": workspace_id,
         "key": f"{event}:{key}:{sub}" if key else None}
        for sub in subscribers
    ])


def _due_jobs_query(now: datetime, limit: int) -> Select[Any]:
    return (select(Job.id)
            .where(or_(Job.state == "pending", (Job.state == "running") & (Job.locked_until < now)),
                   Job.due_at <= now)
            .order_by(Job.due_at, Job.id)
            .limit(limit))


def claim_due_jobs(session: Session, limit: int = 20) -> list[Job]:
    """Claim due jobs (and jobs whose lease ran out after a crash). Safe across PostgreSQL workers."""
    now = clock.now()
    query = _due_jobs_query(now, limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        return []
    session.execute(update(Job).where(Job.id.in_(ids))
                    .values(state="running", locked_until=now + LEASE, attempts=Job.attempts + 1))
    return list(session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.due_at, Job.id)
                                .execution_options(populate_existing=True)))


def mark_done(session: Session, job_id: int) -> None:
    session.execute(update(Job).where(Job.id == job_id)
                    .values(state="done", finished_at=clock.now(), locked_until=None, last_error=None))


def backoff_seconds(attempts: int) -> float:
    base: float = min(2 ** attempts, MAX_BACKOFF_SECONDS)
    return base * (0.5 + random.random() / 2)


def mark_failed(session: Session, job_id: int, error: BaseException) -> str:
    """Schedule a retry with backoff, or move the job to the dead letters after its last attempt."""
    job = session.get(Job, job_id)
    if job is None:
        return "missing"
    text = "".join(traceback.format_exception_only(type(error), error)).strip()[:4000]
    job.last_error = text
    job.locked_until = None
    if job.attempts >= job.max_attempts:
        job.state = "dead"
        job.finished_at = clock.now()
    else:
        job.state = "pending"
        job.due_at = clock.now() + timedelta(seconds=backoff_seconds(job.attempts))
    return job.state


def retry_dead_job(session: Session, job_id: int, workspace_id: int | None = None) -> Job:
    """Put a dead job back in the queue; with a workspace, only its own (or system) jobs."""
    job = session.get(Job, job_id)
    foreign = workspace_id is not None and job is not None and job.workspace_id not in (workspace_id, None)
    if job is None or job.state != "dead" or foreign:
        raise NotFound(f"no dead job {job_id}", field="job_id")
    job.state, job.attempts, job.due_at, job.finished_at = "pending", 0, clock.now(), None
    return job


def list_jobs(session: Session, state: str | None = None, limit: int = 100,
              workspace_id: int | None = None) -> list[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(Job.state == state)
    if workspace_id is not None:
        stmt = stmt.where(or_(Job.workspace_id == workspace_id, Job.workspace_id.is_(None)))
    return list(session.scalars(stmt))


def job_counts(session: Session, workspace_id: int | None = None) -> dict[str, int]:
    stmt = select(Job.state, func.count()).group_by(Job.state)
    if workspace_id is not None:
        stmt = stmt.where(or_(Job.workspace_id == workspace_id, Job.workspace_id.is_(None)))
    rows = session.execute(stmt)
    return {state: count for state, count in rows}


def purge_finished_jobs(session: Session, older_than: timedelta = timedelta(days=1)) -> int:
    cutoff = clock.now() - older_than
    result = session.execute(delete(Job).where(Job.state == "done", Job.finished_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def schedule_periodic_ticks(session: Session) -> None:
    """Enqueue each periodic tick once per slot; the key makes concurrent schedulers harmless."""
    from siyu.subscriptions import SCHEDULES

    now = clock.now()
    jobs = []
    for kind, interval in SCHEDULES:
        slot = int(now.timestamp()) // interval
        jobs.append({"kind": kind, "payload": {"slot": slot}, "key": f"tick:{kind}:{slot}"})
    enqueue_many(session, jobs)
