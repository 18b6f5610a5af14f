"""Keeping segments and auto tags true: after events (incremental, off the request path), as time
passes (the tick), in dependency order, through merges — with a bounded number of queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from siyu.customers.service import merge_customers
from siyu.db.session import transaction
from siyu.events.models import Event
from siyu.jobs.service import schedule_periodic_ticks
from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock
from siyu.segments.models import SegmentMembership
from siyu.segments.refresh import reevaluate_customers
from siyu.segments.service import create_segment
from siyu.tags.models import TagHistory
from siyu.workspaces.service import WorkspaceContext, context_of, get_workspace
from tests.factories import event as make_event
from tests.factories import order
from tests.segments.helpers import ids_by_unionid

TWICE_IN_30_DAYS = {"kind": "event", "event_type": "page_view", "aggregate": "count", "window": 30, "op": "gte",
                    "value": 2}


def send(api: TestClient, *events: dict[str, Any]) -> None:
    response = api.post("/api/v1/events/batch", json={"events": list(events)})
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.text


def views(unionid: str, n: int, at: str = "2026-11-18T10:00:00+08:00") -> list[dict[str, Any]]:
    return [make_event("page_view", id=f"{unionid}-view-{i}", at=at,
                       identities=[{"type": "wechat_unionid", "value": unionid}]) for i in range(n)]


def _ws(db: Session) -> WorkspaceContext:
    return context_of(get_workspace(db, "acme"))


def members(db: Session, segment_id: int) -> set[int]:
    return set(db.scalars(select(SegmentMembership.customer_id).where(
        SegmentMembership.segment_id == segment_id, SegmentMembership.exited_at.is_(None))))


def test_new_events_move_a_customer_in_off_the_request_path(api: TestClient, engine: Engine, db: Session) -> None:
    segment_id = api.post("/api/v1/segments", json={"name": "活跃浏览", "rule": TWICE_IN_30_DAYS}).json()["id"]
    run_due_jobs(engine)
    send(api, *views("reader", 1))
    run_due_jobs(engine)
    assert members(db, segment_id) == set()
    send(api, *views("reader", 2)[1:])
    customer_id = ids_by_unionid(db, _ws(db))["reader"]
    assert members(db, segment_id) == set()  # the request only stored the event
    run_due_jobs(engine)
    assert members(db, segment_id) == {customer_id}
    assert api.get(f"/api/v1/segments/{segment_id}").json()["size"] == 1


def test_rules_that_read_other_rules_follow_in_the_same_pass(api: TestClient, engine: Engine, db: Session) -> None:
    tag = api.post("/api/v1/tags", json={"name": "活跃", "rule": TWICE_IN_30_DAYS}).json()["id"]
    on_tag = api.post("/api/v1/segments", json={"name": "活跃且买过", "rule": {"all": [
        {"kind": "tag", "op": "has_any", "tags": [tag]},
        {"kind": "order", "measure": "count", "op": "gte", "value": 1}]}}).json()["id"]
    on_segment = api.post("/api/v1/segments", json={"name": "重点", "rule": {"kind": "segment",
                                                                               "segment_id": on_tag}}).json()["id"]
    run_due_jobs(engine)
    send(api, order("O-1", unionid="reader"), *views("reader", 2))
    run_due_jobs(engine, max_rounds=1)  # one round: the re-evaluation job of this batch
    reader = ids_by_unionid(db, _ws(db))["reader"]
    assert members(db, on_tag) == {reader}
    assert members(db, on_segment) == {reader}


def test_the_tick_catches_what_changes_with_time_alone(api: TestClient, engine: Engine, db: Session,
                                                      clock: FrozenClock) -> None:
    send(api, order("O-1", unionid="buyer", at=clock.now() - timedelta(days=80)))
    sleeping = api.post("/api/v1/tags", json={"name": "沉睡", "refresh_minutes": 60, "rule": {
        "kind": "order", "measure": "days_since_last_order", "op": "gte", "value": 90}}).json()["id"]
    run_due_jobs(engine)
    assert api.get(f"/api/v1/tags/{sleeping}").json()["size"] == 0
    clock.advance(timedelta(days=10, minutes=1))
    with transaction(engine) as session:
        schedule_periodic_ticks(session)
    run_due_jobs(engine)
    buyer = ids_by_unionid(db, _ws(db))["buyer"]
    assert api.get(f"/api/v1/tags/{sleeping}").json()["size"] == 1
    assert [t["name"] for t in api.get(f"/api/v1/customers/{buyer}/tags").json()] == ["沉睡"]
    history = db.scalars(select(TagHistory)).all()
    assert [(h.action, h.source, h.actor) for h in history] == [("added", "rule", f"rule:tag:{sleeping}")]


def test_a_tick_does_not_refresh_what_is_not_due(api: TestClient, engine: Engine, clock: FrozenClock) -> None:
    segment_id = api.post("/api/v1/segments", json={"name": "活跃浏览", "rule": TWICE_IN_30_DAYS,
                                                    "refresh_minutes": 60}).json()["id"]
    run_due_jobs(engine)
    refreshed_at = api.get(f"/api/v1/segments/{segment_id}").json()["last_refreshed_at"]
    clock.advance(timedelta(minutes=30))
    with transaction(engine) as session:
        schedule_periodic_ticks(session)
    run_due_jobs(engine)
    assert api.get(f"/api/v1/segments/{segment_id}").json()["last_refreshed_at"] == refreshed_at


def test_a_merge_moves_manual_tags_and_lists_to_the_survivor(api: TestClient, engine: Engine, db: Session) -> None:
    send(api, *views("old", 1), *views("new", 1))
    people = ids_by_unionid(db, _ws(db))
    vip = api.post("/api/v1/tags", json={"name": "VIP"}).json()["id"]
    api.post(f"/api/v1/tags/{vip}/customers", json={"customer_ids": [people["new"]]})
    listed = api.post("/api/v1/segments", json={"name": "名单", "kind": "static",
                                               "customer_ids": [people["new"]]}).json()["id"]
    browsing = api.post("/api/v1/segments", json={"name": "活跃浏览", "rule": TWICE_IN_30_DAYS}).json()["id"]
    run_due_jobs(engine)
    with transaction(engine) as session:
        merge_customers(session, _ws(session), people["old"], people["new"], reason="same phone", actor="test")
    run_due_jobs(engine)
    survivor = people["old"]
    assert [t["name"] for t in api.get(f"/api/v1/customers/{survivor}/tags").json()] == ["VIP"]
    assert members(db, listed) == {survivor}
    assert members(db, browsing) == {survivor}  # two views between them now
    assert api.get(f"/api/v1/segments/{listed}").json()["size"] == 1
    moved = [(h.customer_id, h.action, h.source) for h in db.scalars(select(TagHistory).order_by(TagHistory.id))]
    assert moved == [(people["new"], "added", "manual"), (people["new"], "removed", "merge"),
                     (survivor, "added", "manual")]


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_reevaluating_a_customer_costs_the_same_few_queries_for_many_segments(
        api: TestClient, engine: Engine, db: Session) -> None:
    send(api, *views("reader", 1))
    reader = ids_by_unionid(db, _ws(db))["reader"]

    def queries_with(n: int) -> int:
        with transaction(engine) as session:
            ctx = _ws(session)
            for i in range(n):
                create_segment(session, ctx, name=f"s{n}-{i}", actor="test", rule={"all": [
                    TWICE_IN_30_DAYS, {"kind": "order", "measure": "count", "window": 90, "op": "lt", "value": i}]})
        with transaction(engine) as session, counting(engine) as statements:
            reevaluate_customers(session, _ws(session), [reader])
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

    assert queries_with(5) == queries_with(25)


def test_segment_changes_are_timeline_events_with_stable_ids(api: TestClient, engine: Engine, db: Session) -> None:
    segment_id = api.post("/api/v1/segments", json={"name": "活跃浏览", "rule": TWICE_IN_30_DAYS}).json()["id"]
    send(api, *views("reader", 2))
    run_due_jobs(engine)
    with transaction(engine) as session:  # a second pass finds nothing to change, and records nothing
        reevaluate_customers(session, _ws(session), list(ids_by_unionid(session, _ws(session)).values()))
    entered = db.scalars(select(Event.event_id).where(Event.type == "segment_entered")).all()
    stay = db.scalar(select(SegmentMembership.id))
    reader = ids_by_unionid(db, _ws(db))["reader"]
    assert entered == [f"seg:{segment_id}:{reader}:enter:{stay}"]
