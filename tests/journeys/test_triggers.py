"""Triggers, goals and waits on events, driven through ingestion and the worker."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from siyu.journeys import cycles
from siyu.kit.clock import FrozenClock
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order
from tests.journeys.conftest import customer, definition, enrol, ingest, jobs, log_outcomes, published, runs, steps

MILK = [{"sku": "MF-101", "name": "奶粉", "category": "母婴/奶粉", "quantity": 1, "unit_price_fen": 29800}]
MASK = [{"sku": "MM-101", "name": "面膜", "category": "美妆/面膜", "quantity": 1, "unit_price_fen": 9900}]


def test_an_event_with_matching_properties_enters_the_customer_once(db: Session, workspace: WorkspaceContext,
                                                                    engine: Engine) -> None:
    jid = published(db, workspace, definition(
        {"id": "bye", "type": "exit", "reason": "seen"},
        trigger={"type": "event", "event_type": "order_paid",
                 "where": [{"key": "item.category", "op": "eq", "value": "母婴"}]}))
    ingest(db, workspace, order("O-1", unionid="u-1", items=MASK), order("O-2", unionid="u-2", items=MILK))
    jobs(engine)
    jobs(engine)
    entered = runs(db, jid)
    assert len(entered) == 1 and entered[0].state["cause"].startswith("event:")


def test_goal_event_in_the_window_converts_and_ends_the_run(db: Session, workspace: WorkspaceContext,
                                                            engine: Engine, clock: FrozenClock) -> None:
    cid = customer(db, workspace, "u-1")
    jid = published(db, workspace, definition(
        {"id": "w", "type": "wait", "duration": {"days": 3}, "next": None},
        goal={"event_type": "order_paid", "within_days": 7, "exit": True}))
    enrol(db, workspace, jid, [cid])
    steps(engine)
    clock.advance(timedelta(days=1))
    ingest(db, workspace, order("O-9", unionid="u-1", at=clock.now().isoformat()))
    jobs(engine)
    (run,) = runs(db, jid)
    assert (run.status, run.exit_reason, run.converted_at) == ("exited", "goal", clock.now())


def test_wait_for_an_event_takes_the_event_branch_or_the_timeout(db: Session, workspace: WorkspaceContext,
                                                                  engine: Engine, clock: FrozenClock) -> None:
    buyer, idle = customer(db, workspace, "u-1"), customer(db, workspace, "u-2")
    jid = published(db, workspace, definition(
        {"id": "w", "type": "wait", "until_event": {"event_type": "order_paid"}, "timeout": {"days": 2},
         "next": "bought", "timeout_next": "nudge"},
        {"id": "bought", "type": "exit", "reason": "bought"}, {"id": "nudge", "type": "exit", "reason": "timeout"}))
    enrol(db, workspace, jid, [buyer, idle])
    steps(engine)
    clock.advance(timedelta(hours=5))
    ingest(db, workspace, order("O-1", unionid="u-1", at=clock.now().isoformat()))
    jobs(engine)
    assert steps(engine) == 2
    clock.advance(timedelta(days=2))
    assert steps(engine) == 2
    reasons = {r.customer_id: r.exit_reason for r in runs(db, jid)}
    assert reasons == {buyer: "bought", idle: "timeout"}
    buyer_run = next(r for r in runs(db, jid) if r.customer_id == buyer)
    assert log_outcomes(db, buyer_run.id) == [("w", "event"), ("bought", "exit")]


def test_replenishment_reminder_is_due_days_before_the_run_out(db: Session, workspace: WorkspaceContext,
                                                               engine: Engine, clock: FrozenClock) -> None:
    cycles.seed_demo_cycles(db, workspace.id)
    db.commit()
    jid = published(db, workspace, definition(
        {"id": "remind", "type": "exit", "reason": "reminded"},
        trigger={"type": "replenishment", "category": "母婴/奶粉", "days_before": 3, "at": "10:00"}))
    two_cans = [{**MILK[0], "quantity": 2}]
    ingest(db, workspace, order("O-1", unionid="u-1", at=clock.now().isoformat(), items=two_cans))
    jobs(engine)
    (run,) = runs(db, jid)
    # two cans of 30 days from 2026-11-20 12:00 local: run-out 2027-01-19; 3 days before at 10:00 local
    assert run.due_at.isoformat() == "2027-01-16T02:00:00+00:00"
    assert run.state["replenish"]["source"] == "catalogue"
    clock.advance(timedelta(days=20))
    ingest(db, workspace, order("O-2", unionid="u-1", at=clock.now().isoformat()))
    jobs(engine)
    (run,) = runs(db, jid)  # the new can moves the reminder: the stock lasts 30 days longer
    assert run.due_at.isoformat() == "2027-02-15T02:00:00+00:00"
    clock.set(run.due_at)
    assert steps(engine) == 1
    assert runs(db, jid)[0].exit_reason == "reminded"


def test_learned_interval_replaces_the_catalogue_after_three_orders(db: Session, workspace: WorkspaceContext,
                                                                    clock: FrozenClock) -> None:
    cycles.seed_demo_cycles(db, workspace.id)
    start = clock.now() - timedelta(days=40)
    ingest(db, workspace, *[order(f"O-{i}", unionid="u-1", at=(start + timedelta(days=20 * i)).isoformat(),
                                  items=MILK) for i in range(3)])
    cid = customer(db, workspace, "u-1")
    prediction = cycles.predict(db, workspace.id, [cid], category="母婴/奶粉")[cid]
    assert (prediction.source, prediction.days_per_unit) == ("learned", 20.0)
    assert prediction.run_out_at == start + timedelta(days=60)


def test_a_customer_who_bought_again_gets_no_reminder(db: Session, workspace: WorkspaceContext, engine: Engine,
                                                      clock: FrozenClock) -> None:
    cycles.seed_demo_cycles(db, workspace.id)
    db.commit()
    jid = published(db, workspace, definition(
        {"id": "remind", "type": "exit", "reason": "reminded"},
        trigger={"type": "replenishment", "category": "母婴/奶粉", "days_before": 3}))
    ingest(db, workspace, order("O-1", unionid="u-1", at=clock.now().isoformat()))
    jobs(engine)
    (run,) = runs(db, jid)
    run_due = run.due_at
    # the purchase arrives, but the job that would move the reminder has not run yet
    clock.advance(timedelta(days=10))
    ingest(db, workspace, order("O-2", unionid="u-1", at=clock.now().isoformat()))
    clock.set(run_due)
    assert steps(engine) == 0
    (run,) = runs(db, jid)
    assert (run.status, run.exit_reason) == ("exited", "rebought")
