"""Customer layering out of the box, as the API and console see it: lifecycle stages and RFM —
their settings, the last run, and running them again (off the request path)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.segments import scheduling
from siyu.segments.lifecycle import STAGE_LABELS, lifecycle_settings, save_lifecycle_settings, stage_counts
from siyu.segments.models import Segment
from siyu.segments.rfm import CLASS_LABELS, rfm_settings, save_rfm_settings
from siyu.workspaces.service import WorkspaceContext, context_of, get_workspace


def lifecycle_overview(session: Session, ctx: WorkspaceContext) -> dict[str, Any]:
    return {"counts": stage_counts(session, ctx.id), "labels": STAGE_LABELS,
            "settings": lifecycle_settings(ctx).model_dump(),
            "last_run": scheduling.layering_run(session, ctx.id, "lifecycle")}


def rfm_overview(session: Session, ctx: WorkspaceContext) -> dict[str, Any]:
    ready = {key: segment_id for key, segment_id in session.execute(select(Segment.builtin_key, Segment.id).where(
        Segment.workspace_id == ctx.id, Segment.builtin_key.like("rfm:%"))) if key}
    return {"settings": rfm_settings(ctx).model_dump(), "labels": CLASS_LABELS,
            "last_run": scheduling.layering_run(session, ctx.id, "rfm"),
            "segments": {key.removeprefix("rfm:"): segment_id for key, segment_id in ready.items() if key}}


def update_lifecycle_settings(session: Session, ctx: WorkspaceContext, values: dict[str, Any]) -> dict[str, Any]:
    save_lifecycle_settings(session, ctx, values)
    return lifecycle_overview(session, context_of(get_workspace(session, ctx.id)))


def update_rfm_settings(session: Session, ctx: WorkspaceContext, values: dict[str, Any]) -> dict[str, Any]:
    save_rfm_settings(session, ctx, values)
    return rfm_overview(session, context_of(get_workspace(session, ctx.id)))


def evaluate_lifecycle_later(session: Session, ctx: WorkspaceContext) -> str | None:
    """Re-stage everyone, then refresh the rules that read stages; returns the chain id."""
    readers = scheduling.layer_readers(session, ctx, "lifecycle")
    return scheduling.start_chain(session, ctx.id, ["lifecycle", *scheduling.refresh_steps(session, ctx, readers)])


def score_rfm_later(session: Session, ctx: WorkspaceContext) -> str | None:
    """Score RFM (the step then refreshes the ready RFM segments and the rules that read RFM)."""
    return scheduling.start_chain(session, ctx.id, ["rfm"])
