"""Loyalty's worker jobs: reactions to ingested events and merges, and the periodic ticks
(points release and expiry, tier reviews, monthly benefits). Each runs in its own unit of work."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs.registry import job_handler
from siyu.kit import clock
from siyu.loyalty import repository, service
from siyu.workspaces.service import WorkspaceContext, context_of, get_workspace

ROUNDS = 20


def _ctx(session: Session, workspace_id: int) -> WorkspaceContext:
    return context_of(get_workspace(session, workspace_id))


@job_handler("loyalty.on_events")
def on_events(session: Session, payload: dict[str, Any]) -> None:
    """order_paid, order_refunded, check_in and share batches: earn, reverse, upgrade."""
    service.process_events(session, _ctx(session, int(payload["workspace_id"])),
                           [int(i) for i in payload["event_ids"]])


@job_handler("loyalty.on_customer_merged")
def on_customer_merged(session: Session, payload: dict[str, Any]) -> None:
    service.merge_members(session, _ctx(session, int(payload["workspace_id"])), int(payload["survivor_id"]),
                          int(payload["absorbed_id"]))


@job_handler("loyalty.release_points")
def release_points(session: Session, payload: dict[str, Any]) -> None:
    for _ in range(ROUNDS):
        if service.release_pending_points(session) == 0:
            break


@job_handler("loyalty.expire_points")
def expire_points(session: Session, payload: dict[str, Any]) -> None:
    for _ in range(ROUNDS):
        if service.expire_points(session) == 0:
            break


@job_handler("loyalty.review_tiers")
def review_tiers(session: Session, payload: dict[str, Any]) -> None:
    """Retention checks of members whose tier period has ended, every workspace."""
    for _ in range(ROUNDS):
        if service.review_due_tiers(session) == 0:
            break


@job_handler("loyalty.benefits_tick")
def benefits_tick(session: Session, payload: dict[str, Any]) -> None:
    """Start (or resume) each workspace's monthly run once its local benefit day has come."""
    for programme in repository.programmes(session):
        ctx = _ctx(session, programme.workspace_id)
        period = service.due_period(programme, ctx, clock.now())
        if period is None:
            continue
        run = repository.benefit_run(session, ctx.id, period)
        if run is None:
            service.start_benefit_run(session, ctx, period)
        else:
            service.continue_later(session, run)


@job_handler("loyalty.run_benefits")
def run_benefits(session: Session, payload: dict[str, Any]) -> None:
    """One chunk of a monthly run; the next chunk is its own job (short units of work, resumable)."""
    run = service.run_benefits_chunk(session, _ctx(session, int(payload["workspace_id"])), str(payload["period"]))
    service.continue_later(session, run)
