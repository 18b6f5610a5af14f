"""Journeys fixtures: customers made through ingestion, journeys published through the service,
and the engine driven like the worker drives it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.customers.service import find_by_identity
from siyu.events.service import ingest_events
from siyu.jobs.worker import run_due_jobs
from siyu.journeys import service
from siyu.journeys.engine import run_due_steps
from siyu.journeys.models import JourneyRun, JourneyStepLog
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event


def ingest(db: Session, ctx: WorkspaceContext, *events: dict[str, Any]) -> None:
    results = ingest_events(db, ctx, list(events))
    assert all(r.status != "rejected" for r in results), [r.as_dict() for r in results]
    db.commit()


def customer(db: Session, ctx: WorkspaceContext, unionid: str, **traits: Any) -> int:
    ingest(db, ctx, event("identify", identities=[{"type": "wechat_unionid", "value": unionid}],
                          traits=traits or None))
    found = find_by_identity(db, ctx.id, "wechat_unionid", unionid)
    assert found is not None
    return found.id


def customers(db: Session, ctx: WorkspaceContext, n: int, prefix: str = "u") -> list[int]:
    ingest(db, ctx, *[event("identify", identities=[{"type": "wechat_unionid", "value": f"{prefix}-{i}"}])
                      for i in range(n)])
    ids = []
    for i in range(n):
        found = find_by_identity(db, ctx.id, "wechat_unionid", f"{prefix}-{i}")
        assert found is not None
        ids.append(found.id)
    return ids


def definition(*steps: dict[str, Any], trigger: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"trigger": trigger or {"type": "manual"}, "entry": {"mode": "every_time"}, "start": steps[0]["id"],
            "steps": list(steps), **extra}


def published(db: Session, ctx: WorkspaceContext, doc: dict[str, Any], name: str = "旅程") -> int:
    draft = service.create_journey(db, ctx, name=name, definition=doc, actor="test")
    assert draft.issues == [], draft.issues
    service.publish_journey(db, ctx, draft.journey.id, actor="test")
    db.commit()
    return draft.journey.id


def enrol(db: Session, ctx: WorkspaceContext, journey_id: int, customer_ids: list[int], key: str = "k") -> None:
    result = service.enrol_customers(db, ctx, journey_id, customer_ids, key=key)
    db.commit()
    assert result.entered == len(set(customer_ids)), result


def steps(engine: Engine) -> int:
    return run_due_steps(engine, batch=50)


def jobs(engine: Engine) -> int:
    return run_due_jobs(engine, batch=50)


def runs(db: Session, journey_id: int) -> list[JourneyRun]:
    db.expire_all()
    return list(db.scalars(select(JourneyRun).where(JourneyRun.journey_id == journey_id).order_by(JourneyRun.id)))


def log_outcomes(db: Session, run_id: int) -> list[tuple[str, str]]:
    return [(s, o) for s, o in db.execute(select(JourneyStepLog.step_id, JourneyStepLog.outcome)
                                          .where(JourneyStepLog.run_id == run_id).order_by(JourneyStepLog.seq))]


def executions(db: Session, journey_id: int) -> int:
    return int(db.scalar(select(func.count()).select_from(JourneyStepLog)
                         .where(JourneyStepLog.journey_id == journey_id)) or 0)
