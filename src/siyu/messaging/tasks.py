"""Worker jobs of messaging.

`messaging.dispatch` and `messaging.fill_broadcast` are their own boundaries: dispatch must commit
"sending" before it calls a provider (at most once per key), and a fill of a million recipients
commits batch by batch so it can resume. Both open their own transactions on the job's engine and
leave the job's session untouched.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from siyu.db.session import transaction
from siyu.jobs.registry import job_handler
from siyu.messaging.outbox import DISPATCH_JOB, dispatch_lanes, request_dispatch

DISPATCH_BUDGET_SECONDS = 60.0


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    return bind


@job_handler(DISPATCH_JOB)
def dispatch(session: Session, payload: dict[str, Any]) -> None:
    from siyu.messaging.broadcasts import finish_completed_broadcasts
    from siyu.messaging.dispatch import dispatch_due, has_due_messages, next_lease_end

    engine = _engine(session)
    dispatch_due(engine, budget_seconds=DISPATCH_BUDGET_SECONDS)
    with transaction(engine) as own:
        if has_due_messages(own):  # the budget ran out: carry on in a fresh job
            request_dispatch(own, lanes=1)
        lease_end = next_lease_end(own)
        if lease_end is not None:  # if that worker dies, look its messages up as soon as its lease ends
            request_dispatch(own, due_at=lease_end)
        finish_completed_broadcasts(own)


@job_handler("messaging.fill_broadcast")
def fill_broadcast(session: Session, payload: dict[str, Any]) -> None:
    from siyu.messaging.broadcasts import fill_broadcast as fill

    fill(_engine(session), int(payload["broadcast_id"]))


@job_handler("messaging.tick")
def tick(session: Session, payload: dict[str, Any]) -> None:
    """Every minute: recover crashed sends, wake dispatch for anything due, close finished broadcasts."""
    from siyu.messaging.broadcasts import finish_completed_broadcasts
    from siyu.messaging.dispatch import has_due_messages, recover_expired

    engine = _engine(session)
    recover_expired(engine)
    with transaction(engine) as own:
        if has_due_messages(own):
            request_dispatch(own, lanes=dispatch_lanes(own))
        finish_completed_broadcasts(own)


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
