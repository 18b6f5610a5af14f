"""The engine: steps run in order, waits hold to the second, branches are deterministic, and a
crash or a replay never repeats a step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.db.session import transaction
from siyu.journeys.engine import choose_branch, execute_due, split_bucket
from siyu.journeys.models import JourneyStepLog
from siyu.kit.clock import FrozenClock
from siyu.workspaces.service import WorkspaceContext
from tests.journeys.conftest import (
    customer,
    customers,
    definition,
    enrol,
    executions,
    log_outcomes,
    published,
    runs,
    steps,
)


def test_wait_holds_the_run_until_its_second(db: Session, workspace: WorkspaceContext, engine: Engine,
                                             clock: FrozenClock) -> None:
    cid = customer(db, workspace, "u-1")
    jid = published(db, workspace, definition(
        {"id": "w", "type": "wait", "duration": {"hours": 2}, "next": "bye"},
        {"id": "bye", "type": "exit", "reason": "done_waiting"}))
    enrol(db, workspace, jid, [cid])
    assert steps(engine) == 0
    (run,) = runs(db, jid)
    assert run.step_id == "w" and run.due_at == clock.now() + timedelta(hours=2)
    clock.advance(timedelta(hours=2) - timedelta(seconds=1))
    assert steps(engine) == 0
    clock.advance(timedelta(seconds=1))
    assert steps(engine) == 2
    (run,) = runs(db, jid)
    assert (run.status, run.exit_reason) == ("exited", "done_waiting")
    assert log_outcomes(db, run.id) == [("w", "waited"), ("bye", "exit")]


def test_wait_until_a_time_of_day_uses_the_workspace_zone(db: Session, workspace: WorkspaceContext, engine: Engine,
                                                          clock: FrozenClock) -> None:
    cid = customer(db, workspace, "u-1")
    jid = published(db, workspace, definition(
        {"id": "w", "type": "wait", "duration": {"days": 1}, "until_time": "09:30", "next": None}))
    enrol(db, workspace, jid, [cid])
    steps(engine)
    (run,) = runs(db, jid)
    # now is 2026-11-20 12:00 Asia/Shanghai: one day later is 11-21 12:00, then the next 09:30 is 11-22
    assert run.due_at == datetime(2026, 11, 22, 1, 30, tzinfo=UTC)


def test_condition_branches_on_the_rule_now(db: Session, workspace: WorkspaceContext, engine: Engine) -> None:
    shanghai = customer(db, workspace, "u-1", city="上海")
    beijing = customer(db, workspace, "u-2", city="北京")
    jid = published(db, workspace, definition(
        {"id": "c", "type": "condition", "rule": {"kind": "profile", "field": "city", "op": "eq", "value": "上海"},
         "then": "yes", "else": "no"},
        {"id": "yes", "type": "exit", "reason": "in_shanghai"},
        {"id": "no", "type": "exit", "reason": "elsewhere"}))
    enrol(db, workspace, jid, [shanghai, beijing])
    assert steps(engine) == 4
    reasons = {r.customer_id: r.exit_reason for r in runs(db, jid)}
    assert reasons == {shanghai: "in_shanghai", beijing: "elsewhere"}


def test_split_is_sticky_and_deterministic(db: Session, workspace: WorkspaceContext, engine: Engine) -> None:
    ids = customers(db, workspace, 40)
    doc = definition(
        {"id": "ab", "type": "split", "branches": [{"key": "A", "percent": 50, "next": "a"},
                                                   {"key": "B", "percent": 50, "next": "b"}]},
        {"id": "a", "type": "exit", "reason": "got_a"}, {"id": "b", "type": "exit", "reason": "got_b"})
    jid = published(db, workspace, doc)
    enrol(db, workspace, jid, ids, key="first")
    steps(engine)
    first = {r.customer_id: r.exit_reason for r in runs(db, jid)}
    enrol(db, workspace, jid, ids, key="second")
    steps(engine)
    second = {r.customer_id: r.exit_reason for r in runs(db, jid)[len(ids):]}
    assert first == second
    expected = {cid: "got_" + choose_branch([("A", 50.0), ("B", 50.0)], split_bucket(jid, cid, "ab")).lower()
                for cid in ids}
    assert first == expected
    assert set(first.values()) == {"got_a", "got_b"}


def test_a_rolled_back_unit_of_work_replays_the_same_step_once(db: Session, workspace: WorkspaceContext,
                                                               engine: Engine) -> None:
    cid = customer(db, workspace, "u-1")
    jid = published(db, workspace, definition(
        {"id": "attr", "type": "update_attribute", "key": "welcomed", "value": True, "next": "w"},
        {"id": "w", "type": "wait", "duration": {"days": 1}, "next": None}))
    enrol(db, workspace, jid, [cid])
    with transaction(engine) as session:  # the worker dies before commit
        assert execute_due(session) == (1, 1)
        session.rollback()
    assert executions(db, jid) == 0
    assert steps(engine) == 1
    assert steps(engine) == 0
    (run,) = runs(db, jid)
    keys = list(db.scalars(select(JourneyStepLog.detail).where(JourneyStepLog.run_id == run.id)))
    assert [k["key"] for k in keys] == [f"journey:{run.id}:0:attr"]
    assert run.seq == 1 and run.step_id == "w"


def test_holdout_runs_are_tracked_but_never_treated(db: Session, workspace: WorkspaceContext,
                                                    engine: Engine) -> None:
    ids = customers(db, workspace, 60)
    jid = published(db, workspace, definition(
        {"id": "attr", "type": "update_attribute", "key": "treated", "value": True, "next": None},
        holdout_percent=30))
    enrol(db, workspace, jid, ids)
    steps(engine)
    all_runs = runs(db, jid)
    held = [r for r in all_runs if r.holdout]
    assert 0 < len(held) < len(ids)
    assert all((r.status, r.exit_reason, r.seq) == ("exited", "holdout", 0) for r in held)
    assert all((r.status, r.seq) == ("completed", 1) for r in all_runs if not r.holdout)


def test_a_backlog_drains_in_due_order_and_a_paused_journey_waits(db: Session, workspace: WorkspaceContext,
                                                                  engine: Engine, clock: FrozenClock) -> None:
    from siyu.journeys.service import pause_journey, resume_journey

    people = customers(db, workspace, 6)
    waiting = definition({"id": "w", "type": "wait", "duration": {"hours": 1}, "next": None})
    paused = published(db, workspace, waiting, name="暂停的旅程")
    later = published(db, workspace, waiting, name="后进入的旅程")
    enrol(db, workspace, paused, people[:3])
    clock.advance(timedelta(minutes=10))
    enrol(db, workspace, later, people[3:])
    steps(engine)  # both start waiting: `paused` is due ten minutes before `later`
    pause_journey(db, workspace, paused, actor="test")
    db.commit()
    clock.advance(timedelta(hours=2))

    with transaction(engine) as session:  # a claim of two takes the oldest due runs it may run
        assert execute_due(session, 2) == (2, 2)
    assert (executions(db, later), executions(db, paused)) == (2, 0)  # arriving at a wait logs nothing
    assert steps(engine) == 1
    assert [r.status for r in runs(db, paused)] == ["active"] * 3

    resume_journey(db, workspace, paused, actor="test")
    db.commit()
    assert steps(engine) == 3
    assert {r.status for r in runs(db, paused)} == {"completed"}
