"""Lifecycle stages: from the customer's own buying cycle, moving with time, changes recorded as events."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.db.session import transaction
from siyu.events.models import Event
from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock
from siyu.segments.lifecycle import update_lifecycle
from siyu.segments.models import CustomerLifecycle
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order
from tests.segments.helpers import ids_by_unionid, ingest, person


def stages(db: Session, ctx: WorkspaceContext) -> dict[str, str]:
    names = {cid: unionid for unionid, cid in ids_by_unionid(db, ctx).items()}
    return {names[row.customer_id]: row.stage for row in db.scalars(select(CustomerLifecycle))}


def restage(engine: Engine, ctx: WorkspaceContext) -> dict[str, int]:
    with transaction(engine) as session:
        return update_lifecycle(session, ctx)


def test_each_stage_follows_the_customers_own_cycle(db: Session, engine: Engine, workspace: WorkspaceContext,
                                                    clock: FrozenClock) -> None:
    now = clock.now()
    ingest(db, workspace, person("prospect"),
           order("N-1", unionid="new", at=now - timedelta(days=10)),
           # a 20-day cycle: sleeping after 40 idle days, lost after 80
           *(order(f"A-{i}", unionid="active", at=now - timedelta(days=5 + 20 * i)) for i in range(3)),
           *(order(f"S-{i}", unionid="sleeping", at=now - timedelta(days=50 + 20 * i)) for i in range(3)),
           *(order(f"L-{i}", unionid="lost", at=now - timedelta(days=90 + 20 * i)) for i in range(3)))
    assert restage(engine, workspace) == {}  # the first classification is silent
    assert stages(db, workspace) == {"prospect": "prospect", "new": "new", "active": "active",
                                     "sleeping": "sleeping", "lost": "lost"}
    assert db.scalar(select(Event).where(Event.type == "lifecycle_changed")) is None


def test_a_sleeping_customer_who_orders_again_has_returned_and_it_is_an_event(
        api: TestClient, db: Session, engine: Engine, workspace: WorkspaceContext, clock: FrozenClock) -> None:
    now = clock.now()
    ingest(db, workspace, *(order(f"S-{i}", unionid="sleeper", at=now - timedelta(days=50 + 20 * i))
                            for i in range(3)))
    restage(engine, workspace)
    response = api.post("/api/v1/events", json=order("S-9", unionid="sleeper", at=now))
    assert response.status_code == 201
    run_due_jobs(engine)  # the order's customer is re-staged off the request path
    assert stages(db, workspace) == {"sleeper": "returned"}
    change = db.scalar(select(Event).where(Event.type == "lifecycle_changed"))
    sleeper = ids_by_unionid(db, workspace)["sleeper"]
    assert change is not None
    assert (change.event_id, change.properties) == (f"lifecycle:{sleeper}:2", {"from": "sleeping", "to": "returned"})
    clock.advance(timedelta(days=31))
    assert restage(engine, workspace) == {"active": 1}


def test_time_alone_moves_stages(db: Session, engine: Engine, workspace: WorkspaceContext,
                                 clock: FrozenClock) -> None:
    ingest(db, workspace, order("O-1", unionid="once", at=clock.now() - timedelta(days=20)))
    restage(engine, workspace)
    assert stages(db, workspace) == {"once": "new"}
    for days, stage in ((11, "active"), (90, "sleeping"), (120, "lost")):
        clock.advance(timedelta(days=days))  # one order: the default 60-day cycle, ×2 sleeping, ×4 lost
        assert restage(engine, workspace) == {stage: 1}


def test_thresholds_are_per_workspace_and_checked(api: TestClient) -> None:
    response = api.put("/api/v1/lifecycle/settings", json={"new_days": 14, "sleeping_factor": 3})
    assert response.status_code == 200
    assert response.json()["settings"]["new_days"] == 14 and response.json()["settings"]["sleeping_factor"] == 3
    refused = api.put("/api/v1/lifecycle/settings", json={"lost_factor": 2})
    assert refused.status_code == 422
    assert refused.json()["message"] == "lost_factor must be larger than sleeping_factor"
    unknown = api.put("/api/v1/lifecycle/settings", json={"sleep_days": 2})
    assert (unknown.status_code, unknown.json()["field"]) == (422, "sleep_days")
    assert api.get("/api/v1/lifecycle").json()["settings"]["sleeping_factor"] == 3


def test_rules_can_select_a_stage(api: TestClient, db: Session, engine: Engine, workspace: WorkspaceContext,
                                  clock: FrozenClock) -> None:
    ingest(db, workspace, person("prospect"), order("N-1", unionid="new", at=clock.now() - timedelta(days=3)))
    assert api.post("/api/v1/lifecycle/evaluate").status_code == 202
    run_due_jobs(engine)
    preview = api.post("/api/v1/rules/preview", json={"rule": {"kind": "lifecycle", "stages": ["prospect"]}})
    assert [c["id"] for c in preview.json()["sample"]] == [ids_by_unionid(db, workspace)["prospect"]]
    assert api.get("/api/v1/lifecycle").json()["counts"] == {"prospect": 1, "new": 1, "active": 0, "sleeping": 0,
                                                             "lost": 0, "returned": 0}
