"""Segments through the API: preview, create, background refresh, entry/exit events, static lists,
export, deletion rules, visibility of failed and stale refreshes, and who may do what."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.events.models import Event
from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock
from siyu.segments.models import Segment, SegmentMembership
from tests.factories import event, order, refund

LOYAL = {"all": [{"kind": "order", "measure": "count", "window": 90, "op": "gte", "value": 2},
                 {"kind": "order", "measure": "total_spend_fen", "op": "gte", "value": 50000}]}

STORED_LOYAL = {"all": [{"kind": "order", "measure": "count", "op": "gte", "value": 2, "window": {"last_days": 90}},
                        {"kind": "order", "measure": "total_spend_fen", "op": "gte", "value": 50000}]}


def buy(api: TestClient, *orders: dict[str, Any]) -> None:
    response = api.post("/api/v1/events/batch", json={"events": list(orders)})
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.text


def loyal_and_casual(api: TestClient) -> dict[str, int]:
    buy(api, order("O-1", unionid="loyal", at="2026-10-01T10:00:00+08:00"),
        order("O-2", unionid="loyal", at="2026-11-01T10:00:00+08:00"),
        order("O-3", unionid="casual", at="2026-11-01T10:00:00+08:00"))
    customers = api.get("/api/v1/customers", params={"identity_type": "wechat_unionid", "identity_value": "loyal"})
    casual = api.get("/api/v1/customers", params={"identity_type": "wechat_unionid", "identity_value": "casual"})
    return {"loyal": customers.json()["items"][0]["id"], "casual": casual.json()["items"][0]["id"]}


def test_preview_counts_an_unsaved_rule_and_samples_it(api: TestClient, db: Session) -> None:
    people = loyal_and_casual(api)
    response = api.post("/api/v1/rules/preview", json={"rule": LOYAL})
    assert response.status_code == 200
    assert response.json()["count"] == 1
    assert [c["id"] for c in response.json()["sample"]] == [people["loyal"]]
    assert db.scalar(select(func.count()).select_from(Segment)) == 0


def test_a_bad_rule_is_refused_with_its_path_and_nothing_is_saved(api: TestClient, db: Session) -> None:
    rule = {"all": [LOYAL, {"kind": "order", "measure": "count", "op": "gte", "value": 1},
                    {"kind": "event", "event_type": "page_view", "aggregate": "count", "window": 0, "op": "gte",
                     "value": 1}]}
    response = api.post("/api/v1/segments", json={"name": "bad", "rule": rule})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_rule"
    assert response.json()["field"] == "rule.all[2].window"
    assert response.json()["message"] == "all[2].window: must be positive"
    assert db.scalar(select(func.count()).select_from(Segment)) == 0


def test_validate_names_unknown_tags_and_segments_including_other_workspaces(
        api: TestClient, api_as: Any, other_workspace: Any) -> None:
    rival = api_as("operator", other_workspace)
    their_tag = rival.post("/api/v1/tags", json={"name": "theirs"}).json()["id"]
    response = api.post("/api/v1/rules/validate", json={"rule": {"any": [
        {"kind": "tag", "op": "has_any", "tags": [their_tag]}, {"kind": "segment", "segment_id": 77}]}})
    assert response.json() == {"valid": False, "rule": None, "errors": [
        {"path": "any[0].tags[0]", "message": f"no tag {their_tag} in this workspace"},
        {"path": "any[1].segment_id", "message": "no segment 77 in this workspace"}]}


def test_circular_segment_references_are_refused(api: TestClient) -> None:
    first = api.post("/api/v1/segments", json={"name": "A", "rule": LOYAL}).json()["id"]
    second = api.post("/api/v1/segments", json={"name": "B", "rule": {"kind": "segment", "segment_id": first}})
    response = api.patch(f"/api/v1/segments/{first}", json={"rule": {"all": [
        LOYAL, {"kind": "segment", "op": "not_in", "segment_id": second.json()["id"]}]}})
    assert response.status_code == 422
    assert response.json()["field"] == "rule.all[1].segment_id"
    assert response.json()["message"] == ("all[1].segment_id: circular reference: "
                                          "segment 'A' → segment 'B' → segment 'A'")
    assert api.get(f"/api/v1/segments/{first}").json()["rule"] == STORED_LOYAL


def test_a_dynamic_segment_fills_in_the_background_and_records_entries(
        api: TestClient, engine: Engine, db: Session) -> None:
    people = loyal_and_casual(api)
    created = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL})
    assert created.status_code == 201
    assert created.json()["size"] == 0 and created.json()["freshness"] == "pending"
    run_due_jobs(engine)
    segment = api.get(f"/api/v1/segments/{created.json()['id']}").json()
    assert (segment["size"], segment["freshness"], segment["last_refresh_status"]) == (1, "fresh", "ok")
    assert [c["id"] for c in api.get(f"/api/v1/segments/{segment['id']}/members").json()["items"]] == [
        people["loyal"]]
    stay = db.scalar(select(SegmentMembership))
    assert stay is not None
    entered = db.scalars(select(Event).where(Event.type == "segment_entered")).all()
    assert [(e.customer_id, e.event_id) for e in entered] == [
        (people["loyal"], f"seg:{segment['id']}:{people['loyal']}:enter:{stay.id}")]


def test_leaving_closes_the_stay_and_records_an_exit(api: TestClient, engine: Engine, db: Session) -> None:
    people = loyal_and_casual(api)
    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]
    run_due_jobs(engine)
    buy(api, refund("O-2", 29800, unionid="loyal"))
    run_due_jobs(engine)  # the refund's customer is re-evaluated off the request path
    assert api.get(f"/api/v1/segments/{segment_id}").json()["size"] == 0
    stays = db.scalars(select(SegmentMembership)).all()
    assert [(s.customer_id, s.exited_at is not None) for s in stays] == [(people["loyal"], True)]
    assert db.scalar(select(Event.event_id).where(Event.type == "segment_exited")) == (
        f"seg:{segment_id}:{people['loyal']}:exit:{stays[0].id}")
    assert api.post(f"/api/v1/segments/{segment_id}/refresh").status_code == 202
    run_due_jobs(engine)
    assert db.scalar(select(func.count()).select_from(Event).where(Event.type.like("segment_%"))) == 2


def test_a_static_segment_is_a_list_of_identities_and_ids(api: TestClient, engine: Engine) -> None:
    people = loyal_and_casual(api)
    created = api.post("/api/v1/segments", json={
        "name": "线下活动名单", "kind": "static", "customer_ids": [people["casual"]],
        "identities": [{"type": "wechat_unionid", "value": "loyal"}, {"type": "phone", "value": "13800138000"}]})
    assert created.status_code == 201 and created.json()["size"] == 2
    segment_id = created.json()["id"]
    removed = api.post(f"/api/v1/segments/{segment_id}/members", json={"remove_customer_ids": [people["casual"]]})
    assert removed.json() == {"added": 0, "removed": 1, "unknown": []}
    uploaded = api.post(f"/api/v1/segments/{segment_id}/members/import",
                        content="type,value\nwechat_unionid,casual\nwechat_unionid,nobody\n",
                        headers={"content-type": "text/csv"})
    assert uploaded.json() == {"added": 1, "removed": 0, "unknown": ["wechat_unionid:nobody"]}
    assert api.get(f"/api/v1/segments/{segment_id}").json()["size"] == 2
    assert api.post(f"/api/v1/segments/{segment_id}/refresh").status_code == 409


def test_members_of_a_dynamic_segment_cannot_be_changed_by_hand(api: TestClient, engine: Engine) -> None:
    people = loyal_and_casual(api)
    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]
    response = api.post(f"/api/v1/segments/{segment_id}/members", json={"add_customer_ids": [people["casual"]]})
    assert response.status_code == 409 and response.json()["code"] == "segment_is_dynamic"


def test_a_snapshot_freezes_the_members_of_now(api: TestClient, engine: Engine) -> None:
    people = loyal_and_casual(api)
    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]
    run_due_jobs(engine)
    snapshot = api.post(f"/api/v1/segments/{segment_id}/snapshot", json={"name": "复购 11月"})
    assert snapshot.status_code == 201
    assert (snapshot.json()["kind"], snapshot.json()["source"], snapshot.json()["size"]) == ("static", "snapshot", 1)
    buy(api, refund("O-2", 29800, unionid="loyal"))
    run_due_jobs(engine)
    members = api.get(f"/api/v1/segments/{snapshot.json()['id']}/members").json()["items"]
    assert [m["id"] for m in members] == [people["loyal"]]


def test_export_writes_the_identities_the_operator_chose(api: TestClient, engine: Engine) -> None:
    buy(api, order("O-1", unionid="loyal", at="2026-10-01T10:00:00+08:00"),
        order("O-2", unionid="loyal", at="2026-11-01T10:00:00+08:00"),
        event("identify", identities=[{"type": "wechat_unionid", "value": "loyal"},
                                      {"type": "wecom_external_userid", "value": "wmABC"}], traits={"name": "王芳"}))
    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]
    run_due_jobs(engine)
    response = api.get(f"/api/v1/segments/{segment_id}/export.csv",
                       params={"identities": "wecom_external_userid,phone"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["customer_id", "name", "wecom_external_userid", "phone"]
    assert rows[1][1:] == ["王芳", "wmABC", ""]
    assert len(rows) == 2


def test_deleting_a_segment_a_rule_uses_is_refused_with_the_users(api: TestClient, db: Session) -> None:
    base = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]
    api.post("/api/v1/segments", json={"name": "复购未加企微", "rule": {"all": [
        {"kind": "segment", "segment_id": base},
        {"kind": "identity", "identity_type": "wecom_external_userid", "op": "absent"}]}})
    api.post("/api/v1/tags", json={"name": "复购客", "rule": {"kind": "segment", "segment_id": base}})
    response = api.delete(f"/api/v1/segments/{base}")
    assert response.status_code == 409
    assert response.json()["details"] == {"used_by": ["segment 复购未加企微", "tag 复购客"]}
    assert db.get(Segment, base) is not None


def test_a_failed_refresh_is_visible_on_the_segment(api: TestClient, engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from siyu.segments import refresh

    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(refresh, "refresh_target", broken)
    run_due_jobs(engine)
    segment = api.get(f"/api/v1/segments/{segment_id}").json()
    assert (segment["freshness"], segment["last_refresh_status"]) == ("failed", "failed")
    assert segment["last_error"] == "RuntimeError: disk full"


def test_a_segment_not_refreshed_in_time_shows_as_stale(api: TestClient, engine: Engine, clock: FrozenClock) -> None:
    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL, "refresh_minutes": 60}).json()["id"]
    run_due_jobs(engine)
    clock.advance(timedelta(minutes=129))
    assert api.get(f"/api/v1/segments/{segment_id}").json()["freshness"] == "fresh"
    clock.advance(timedelta(minutes=2))
    assert api.get(f"/api/v1/segments/{segment_id}").json()["freshness"] == "stale"


def test_the_size_trend_keeps_one_point_per_day(api: TestClient, engine: Engine, clock: FrozenClock) -> None:
    loyal_and_casual(api)
    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]
    run_due_jobs(engine)
    clock.advance(timedelta(days=1))
    api.post(f"/api/v1/segments/{segment_id}/refresh")
    run_due_jobs(engine)
    assert api.get(f"/api/v1/segments/{segment_id}/sizes").json() == [
        {"day": "2026-11-20", "size": 1}, {"day": "2026-11-21", "size": 1}]


def test_segments_stay_in_their_workspace_and_roles_are_enforced(app: Any, api: TestClient, api_as: Any,
                                                                  other_workspace: Any, db: Session) -> None:
    segment_id = api.post("/api/v1/segments", json={"name": "复购", "rule": LOYAL}).json()["id"]
    assert TestClient(app).get("/api/v1/segments").status_code == 401
    rival = api_as("operator", other_workspace)
    assert rival.get("/api/v1/segments").json() == []
    assert rival.get(f"/api/v1/segments/{segment_id}").status_code == 404
    assert rival.delete(f"/api/v1/segments/{segment_id}").status_code == 404
    analyst = api_as("analyst")
    assert analyst.get(f"/api/v1/segments/{segment_id}").status_code == 200
    assert analyst.post("/api/v1/rules/preview", json={"rule": LOYAL}).status_code == 200
    assert analyst.post("/api/v1/segments", json={"name": "x", "rule": LOYAL}).status_code == 403
    assert analyst.delete(f"/api/v1/segments/{segment_id}").status_code == 403
    assert db.scalar(select(func.count()).select_from(Segment)) == 1
