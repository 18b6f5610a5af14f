"""Worker jobs of journeys, and the step executor the worker loop drives (`due_steps`)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from siyu.jobs.registry import due_poller, job_handler
from siyu.journeys import actions, engine, service, staff_tasks, triggers


@due_poller("journeys.steps")
def due_steps(bind: Engine) -> int:
    """Execute due journey steps (a bounded amount, so jobs get their turn); every worker runs this."""
    return engine.run_due_steps(bind, max_batches=10)


@job_handler("journeys.on_events")
def on_events(session: Session, payload: dict[str, Any]) -> None:
    triggers.on_events_ingested(session, payload)


@job_handler("journeys.on_segment_changed")
def on_segment_changed(session: Session, payload: dict[str, Any]) -> None:
    triggers.on_segment_changed(session, payload)


@job_handler("journeys.on_customer_merged")
def on_customer_merged(session: Session, payload: dict[str, Any]) -> None:
    triggers.on_customer_merged(session, payload)


@job_handler("journeys.date_triggers")
def date_triggers(session: Session, payload: dict[str, Any]) -> None:
    triggers.fire_date_triggers(session)


@job_handler("journeys.remind_tasks")
def remind_tasks(session: Session, payload: dict[str, Any]) -> None:
    staff_tasks.remind_due_tasks(session)


@job_handler("journeys.backfill_replenishment")
def backfill_replenishment(session: Session, payload: dict[str, Any]) -> None:
    journey_id = int(payload["journey_id"])
    workspace_id = service_workspace(session, journey_id)
    if workspace_id is not None:
        triggers.backfill_replenishment(session, workspace_id, journey_id)


@job_handler("journeys.enrol_segment")
def enrol_segment(session: Session, payload: dict[str, Any]) -> None:
    journey_id = int(payload["journey_id"])
    workspace_id = service_workspace(session, journey_id)
    if workspace_id is None:
        return
    ctx = actions.workspace_context(session, workspace_id)
    service.enrol_segment(session, ctx, journey_id, int(payload["segment_id"]), str(payload["cause"]))


@job_handler("journeys.webhook")
def call_webhook(session: Session, payload: dict[str, Any]) -> None:
    """POST the step's body; any non-2xx answer fails the job, which retries with backoff."""
    response = httpx.post(payload["url"], json=payload["body"], timeout=10.0,
                          headers={"Idempotency-Key": payload["idempotency_key"], "User-Agent": "siyu-journeys"})
    response.raise_for_status()


def service_workspace(session: Session, journey_id: int) -> int | None:
    from siyu.journeys.models import Journey

    journey = session.get(Journey, journey_id)
    return journey.workspace_id if journey is not None else None
