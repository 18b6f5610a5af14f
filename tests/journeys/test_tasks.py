"""Staff tasks (SOP): routed to the owner or a pool, closing one moves its run on, overdue branches."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.journeys import staff_tasks
from siyu.journeys.models import StaffTask
from siyu.kit.clock import FrozenClock
from siyu.workspaces.service import WorkspaceContext, create_user, get_workspace
from tests.journeys.conftest import customer, definition, enrol, log_outcomes, published, runs, steps

TASK = {"id": "call", "type": "staff_task", "title": "回访", "script": "您好", "sla": {"hours": 24},
        "remind_before": {"hours": 2}, "done_next": "thanks", "skipped_next": None, "overdue_next": "late"}
THANKS = {"id": "thanks", "type": "exit", "reason": "called"}
LATE = {"id": "late", "type": "exit", "reason": "missed"}


def staff(db: Session, ws: WorkspaceContext, n: int) -> int:
    user = create_user(db, get_workspace(db, ws.id), f"staff{n}@acme.test", f"导购{n}", "password-1", "staff")
    db.commit()
    return user.id


def test_task_goes_to_the_owner_and_done_moves_the_run_on(db: Session, workspace: WorkspaceContext,
                                                          engine: Engine) -> None:
    owner = staff(db, workspace, 1)
    cid = customer(db, workspace, "u-1", attributes={"owner_user_id": owner})
    jid = published(db, workspace, definition({**TASK, "assign": {"to": "owner"}}, THANKS, LATE))
    enrol(db, workspace, jid, [cid])
    assert steps(engine) == 1
    task = db.scalar(select(StaffTask))
    assert task is not None and (task.assignee_id, task.customer_id, task.status) == (owner, cid, "open")
    staff_tasks.close_task(db, workspace, task.id, "done", outcome="已加购", actor=f"user:{owner}")
    db.commit()
    assert steps(engine) == 2
    (run,) = runs(db, jid)
    assert (run.status, run.exit_reason) == ("exited", "called")
    assert log_outcomes(db, run.id) == [("call", "task_created"), ("call", "done"), ("thanks", "exit")]


def test_an_open_task_past_its_sla_takes_the_overdue_branch(db: Session, workspace: WorkspaceContext,
                                                            engine: Engine, clock: FrozenClock) -> None:
    pool = [staff(db, workspace, 1), staff(db, workspace, 2)]
    cid = customer(db, workspace, "u-1")
    jid = published(db, workspace, definition({**TASK, "assign": {"to": "owner", "pool": pool}}, THANKS, LATE))
    enrol(db, workspace, jid, [cid])
    steps(engine)
    task = db.scalar(select(StaffTask))
    assert task is not None and task.assignee_id == staff_tasks.pick_from_pool(pool, cid)
    clock.advance(timedelta(hours=22))
    assert staff_tasks.remind_due_tasks(db) == 1
    db.commit()
    clock.advance(timedelta(hours=2))
    assert steps(engine) == 2
    (run,) = runs(db, jid)
    assert run.exit_reason == "missed"
    db.expire_all()
    assert db.get(StaffTask, task.id).status == "open"  # type: ignore[union-attr]
    stats = {s.assignee_id: s for s in staff_tasks.staff_stats(db, workspace.id)}
    assert (stats[task.assignee_id].open, stats[task.assignee_id].overdue) == (1, 1)


def test_staff_close_their_own_tasks_only(api_as, db: Session, workspace: WorkspaceContext,  # type: ignore[no-untyped-def]
                                          clock: FrozenClock) -> None:
    other = staff(db, workspace, 1)
    cid = customer(db, workspace, "u-1")
    task = staff_tasks.create_task(db, workspace, title="回访", due_at=clock.now() + timedelta(hours=4), actor="t",
                                   customer_id=cid, assignee_id=other)
    db.commit()
    client: TestClient = api_as("staff")
    refused = client.post(f"/api/v1/staff-tasks/{task.id}/close", json={"status": "done"})
    assert refused.status_code == 403
    db.expire_all()
    assert db.get(StaffTask, task.id).status == "open"  # type: ignore[union-attr]
    operator: TestClient = api_as("operator")
    done = operator.post(f"/api/v1/staff-tasks/{task.id}/close", json={"status": "skipped", "outcome": "联系不上"})
    assert done.status_code == 200 and done.json()["status"] == "skipped"
    again = operator.post(f"/api/v1/staff-tasks/{task.id}/close", json={"status": "done"})
    assert again.status_code == 409 and again.json()["code"] == "task_already_closed"
