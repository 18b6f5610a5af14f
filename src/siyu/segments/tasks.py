"""Worker jobs of segments, tags and layering (see `siyu.subscriptions` for what triggers them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs.registry import job_handler
from siyu.segments import scheduling, service
from siyu.segments.refresh import reevaluate_customers
from siyu.workspaces.service import WorkspaceContext, context_of, get_workspace, list_workspaces


def _ctx(session: Session, payload: dict[str, Any]) -> WorkspaceContext:
    return context_of(get_workspace(session, int(payload["workspace_id"])))


@job_handler("segments.reevaluate")
def reevaluate(session: Session, payload: dict[str, Any]) -> None:
    """New events, tag or membership changes: bring those customers' layers up to date."""
    reevaluate_customers(session, _ctx(session, payload), [int(c) for c in payload.get("customer_ids", [])])


@job_handler("segments.apply_merge")
def apply_merge(session: Session, payload: dict[str, Any]) -> None:
    service.apply_merge(session, _ctx(session, payload), int(payload["survivor_id"]), int(payload["absorbed_id"]))


@job_handler("segments.refresh_tag")
def refresh_tag(session: Session, payload: dict[str, Any]) -> None:
    """An auto tag's rule is new or changed: refresh it and what depends on it."""
    scheduling.schedule_refresh(session, _ctx(session, payload), [("tag", int(payload["tag_id"]))])


@job_handler("segments.refresh_chain")
def refresh_chain(session: Session, payload: dict[str, Any]) -> None:
    scheduling.run_chain_step(session, _ctx(session, payload), payload)


@job_handler("segments.tick")
def tick(session: Session, payload: dict[str, Any]) -> None:
    """Time alone changes answers ("no order in 90 days"): start each workspace's due refreshes."""
    for workspace in list_workspaces(session):
        scheduling.schedule_due(session, context_of(workspace), int(payload.get("slot", 0)))
