"""Worker jobs of messaging, and the outbox poller every worker runs.

Dispatch is a due poller, not a job: each worker process claims due outbox rows itself (with
FOR UPDATE SKIP LOCKED on PostgreSQL) every time its loop turns, so N workers dispatch in parallel
and a message committed by anyone is picked up within a poll interval, with no wake-up to request.
The poller and the broadcast fill are boundaries of their own: dispatch must commit "sending" before
it calls a provider (at most once per key), and a fill of a million recipients commits batch by batch
so it can resume. Both open their own transactions and leave the job's session untouched.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from siyu.jobs.registry import due_poller, job_handler

BATCHES_PER_TURN = 10  # then the worker runs its jobs and comes back
log = logging.getLogger("siyu.messaging.dispatch")


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    return bind


@due_poller("messaging.outbox")
def dispatch_outbox(engine: Engine) -> int:
    """Recover crashed sends, then dispatch up to BATCHES_PER_TURN batches of due messages."""
    from siyu.messaging.dispatch import dispatch_due

    stats = dispatch_due(engine, max_batches=BATCHES_PER_TURN)
    return stats.claimed + stats.recovered + stats.requeued + stats.unknown


@job_handler("messaging.fill_broadcast")
def fill_broadcast(session: Session, payload: dict[str, Any]) -> None:
    from siyu.messaging.broadcasts import fill_broadcast as fill

    fill(_engine(session), int(payload["broadcast_id"]))


@job_handler("messaging.tick")
def tick(session: Session, payload: dict[str, Any]) -> None:
    """Every minute: close the broadcasts whose every message has reached its end."""
    from siyu.messaging.broadcasts import finish_completed_broadcasts

    finish_completed_broadcasts(session)


@job_handler("messaging.refresh_holdout")
def refresh_holdout(session: Session, payload: dict[str, Any]) -> None:
    from siyu.messaging.holdout import refresh_all_holdouts

    refresh_all_holdouts(session)


@job_handler("messaging.on_events")
def on_events(session: Session, payload: dict[str, Any]) -> None:
    """Replies (and "TD"/"退订" opt-outs) and orders attributed to messages, from ingested events."""
    from siyu.messaging.reactions import react_to_events

    react_to_events(session, int(payload["workspace_id"]), [int(i) for i in payload.get("event_ids", [])])


@job_handler("messaging.on_customer_merged")
def on_customer_merged(session: Session, payload: dict[str, Any]) -> None:
    from siyu.messaging.reactions import follow_merge

    follow_merge(session, int(payload["workspace_id"]), int(payload["absorbed_id"]), int(payload["survivor_id"]))


def run_dispatch_worker(engine: Engine, stopping: threading.Event, poll_seconds: float = 0.5) -> None:
    """A process that only dispatches (`siyu messaging worker`): the same poller `siyu worker` runs
    among all jobs, turned without pause while there is work. Dedicated senders keep a broadcast's
    pace independent of long jobs of other domains."""
    while not stopping.is_set():
        try:
            worked = dispatch_outbox(engine)
        except Exception:  # keep the loop alive; the store may be briefly unavailable
            log.exception("dispatch loop error")
            worked = 0
        if worked == 0:
            stopping.wait(poll_seconds)
