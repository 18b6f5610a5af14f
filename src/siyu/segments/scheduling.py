"""When refreshes run: chains of refresh steps, in dependency order, one step per worker job.

A chain is a list of steps — "lifecycle", "rfm", "segment:<id>", "tag:<id>" — run one per job, each
in its own transaction (a long refresh never holds one giant transaction), each job enqueuing the
next. A failing step is recorded on its segment, tag or layering run and the chain goes on, so one
broken rule never stalls the others.

The periodic tick (`segments.tick`) starts, per workspace, a chain of what is due: the lifecycle
(hourly, with the rules that read stages), RFM (daily; the step then queues its ready segments and
the rules that read RFM), and every auto tag and dynamic segment whose `refresh_minutes` have
passed — together with everything that depends on them, dependencies first.
While a workspace's chain is running, the tick does not start another (a chain older than
`STUCK_AFTER` counts as dead and is replaced).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs.service import enqueue
from siyu.kit import clock
from siyu.rules.references import NodeKey, dependency_order, referenced, uses_layers
from siyu.segments import refresh
from siyu.segments.lifecycle import update_lifecycle
from siyu.segments.models import LayeringRun
from siyu.segments.rfm import ensure_rfm_segments, score_rfm
from siyu.workspaces.service import WorkspaceContext

log = logging.getLogger("siyu.segments")
CHAIN_JOB = "segments.refresh_chain"
LIFECYCLE_EVERY = timedelta(hours=1)
RFM_EVERY = timedelta(days=1)
STUCK_AFTER = timedelta(hours=2)


def with_dependents(targets: list[refresh.Target], keys: Iterable[NodeKey]) -> list[NodeKey]:
    """`keys` and every target whose rule depends on them (transitively), dependencies first."""
    edges = {t.key: referenced(t.rule) for t in targets}
    wanted = {k for k in keys if k in edges}
    grew = True
    while grew:
        extra = {node for node, deps in edges.items() if node not in wanted and deps & wanted}
        wanted |= extra
        grew = bool(extra)
    return [key for level in dependency_order(edges, wanted) for key in level]


def start_chain(session: Session, workspace_id: int, steps: list[str], name: str | None = None) -> str | None:
    """Enqueue the first step of a chain (visible to workers once the caller commits)."""
    if not steps:
        return None
    chain = name or secrets.token_hex(6)
    enqueue(session, CHAIN_JOB, {"workspace_id": workspace_id, "steps": steps, "index": 0, "chain": chain},
            workspace_id=workspace_id, key=f"chain:{workspace_id}:{chain}:0")
    return chain


def refresh_steps(session: Session, ctx: WorkspaceContext, keys: Iterable[NodeKey]) -> list[str]:
    """The steps refreshing these targets and then what depends on them."""
    return [f"{kind}:{i}" for kind, i in with_dependents(refresh.load_targets(session, ctx.id), keys)]


def schedule_refresh(session: Session, ctx: WorkspaceContext, keys: Iterable[NodeKey]) -> str | None:
    """Refresh these targets, then what depends on them, off the request path."""
    return start_chain(session, ctx.id, refresh_steps(session, ctx, keys))


def layer_readers(session: Session, ctx: WorkspaceContext, layer: str) -> list[NodeKey]:
    """The targets to refresh after a layer ("lifecycle" or "rfm") was recomputed for everyone:
    those whose rules read it, and for RFM its eight ready segments (created on first use)."""
    readers = [t.key for t in refresh.load_targets(session, ctx.id) if layer in uses_layers(t.rule)]
    if layer == "rfm":
        readers += [("segment", i) for i in ensure_rfm_segments(session, ctx)]
    return sorted(set(readers))


def schedule_due(session: Session, ctx: WorkspaceContext, slot: int, now: datetime | None = None) -> str | None:
    """The tick: start a chain of everything due in this workspace (unless one is still running)."""
    now = now or clock.now()
    chain_run = session.get(LayeringRun, (ctx.id, "chain"))
    if chain_run is not None and chain_run.status == "running" and chain_run.last_run_at is not None \
            and chain_run.last_run_at > now - STUCK_AFTER:
        return None
    steps: list[str] = []
    due: list[NodeKey] = []
    targets = refresh.load_targets(session, ctx.id)
    if _due(session, ctx.id, "lifecycle", LIFECYCLE_EVERY, now):
        steps.append("lifecycle")  # stages move with time: so do the rules that read them
        due += layer_readers(session, ctx, "lifecycle")
    if _due(session, ctx.id, "rfm", RFM_EVERY, now):
        steps.append("rfm")  # the step itself queues what reads RFM
    due += [t.key for t in targets
            if t.last_refreshed_at is None or t.last_refreshed_at + timedelta(minutes=t.refresh_minutes) <= now]
    steps += [f"{kind}:{i}" for kind, i in with_dependents(targets, due)]
    if not steps:
        return None
    _mark_run(session, ctx.id, "chain", now, "running")
    return start_chain(session, ctx.id, steps, name=f"tick{slot}")


def _due(session: Session, workspace_id: int, kind: str, every: timedelta, now: datetime) -> bool:
    run = session.get(LayeringRun, (workspace_id, kind))
    return run is None or run.last_run_at is None or run.last_run_at + every <= now


def run_chain_step(session: Session, ctx: WorkspaceContext, payload: dict[str, Any]) -> None:
    """Run one step of a chain (failures recorded, not raised) and enqueue the next."""
    steps: list[str] = payload["steps"]
    index: int = payload["index"]
    run_step(session, ctx, steps[index])
    if index + 1 < len(steps):
        enqueue(session, CHAIN_JOB, {**payload, "index": index + 1}, workspace_id=ctx.id,
                key=f"chain:{ctx.id}:{payload['chain']}:{index + 1}")
    elif str(payload["chain"]).startswith("tick"):
        _mark_run(session, ctx.id, "chain", clock.now(), "ok")


def run_step(session: Session, ctx: WorkspaceContext, step: str) -> None:
    """One refresh step inside a savepoint: if it fails, its writes are undone and the failure kept."""
    now = clock.now()
    started = time.perf_counter()
    try:
        with session.begin_nested():
            if step == "lifecycle":
                summary: dict[str, Any] = {"moved": update_lifecycle(session, ctx, now)}
                _mark_run(session, ctx.id, "lifecycle", now, "ok", summary, started)
            elif step == "rfm":
                score_rfm(session, ctx, now)
                schedule_refresh(session, ctx, layer_readers(session, ctx, "rfm"))
            else:
                kind, target_id = step.split(":")
                target = next((t for t in refresh.load_targets(session, ctx.id)
                               if t.kind == kind and t.id == int(target_id)), None)
                if target is not None:  # deleted, or turned static, since the chain started
                    refresh.refresh_target(session, ctx, target, now)
    except Exception as exc:  # recorded on the step's subject; the chain carries on
        log.warning("refresh step %s of workspace %s failed: %s", step, ctx.id, exc)
        if step in ("lifecycle", "rfm"):
            _mark_run(session, ctx.id, step, now, "failed", error=f"{type(exc).__name__}: {exc}", started=started)
        else:
            kind, target_id = step.split(":")
            refresh.record_failure(session, kind, int(target_id), exc)


def _mark_run(session: Session, workspace_id: int, kind: str, now: datetime, status: str,
              summary: dict[str, Any] | None = None, started: float | None = None, error: str | None = None) -> None:
    run = session.get(LayeringRun, (workspace_id, kind))
    if run is None:
        run = LayeringRun(workspace_id=workspace_id, kind=kind, summary={}, duration_ms=0)
        session.add(run)
    run.last_run_at, run.status, run.error = now, status, error
    if summary is not None:
        run.summary = summary
    if started is not None:
        run.duration_ms = int((time.perf_counter() - started) * 1000)
    session.flush()


def layering_run(session: Session, workspace_id: int, kind: str) -> LayeringRun | None:
    return session.get(LayeringRun, (workspace_id, kind))
