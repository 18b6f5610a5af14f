from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.models import Customer
from siyu.events.models import Event, Order
from tests.factories import event, order, refund


def test_one_event_is_accepted_then_duplicate(api: TestClient) -> None:
    body = event(id="e-1")
    first = api.post("/api/v1/events", json=body)
    second = api.post("/api/v1/events", json=body)
    assert first.status_code == 201 and first.json()["status"] == "accepted"
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert second.json()["customer_id"] == first.json()["customer_id"]


def test_batch_partial_acceptance_reports_each_item(api: TestClient, db: Session) -> None:
    items = [event(id="a"), event(id="b", at="2026-11-01T10:00:00"), event(id="a"),
             order("O-9", total_fen=-5), event("nonsense_type", id="c")]
    response = api.post("/api/v1/events/batch", json={"events": items})
    assert response.status_code == 200
    data = response.json()
    statuses = [(r["id"], r["status"]) for r in data["results"]]
    assert statuses == [("a", "accepted"), ("b", "rejected"), ("a", "rejected"), (items[3]["id"], "rejected"),
                        ("c", "accepted")]
    assert data["results"][1]["error"]["field"] == "occurred_at"
    assert data["results"][2]["error"]["code"] == "duplicate_in_batch"
    assert data["results"][3]["error"]["field"] == "properties.total_fen"
    assert db.scalar(select(func.count()).select_from(Event)) == 2
    assert db.scalar(select(func.count()).select_from(Order)) == 0


def test_oversized_batch_is_refused_whole(api: TestClient, db: Session) -> None:
    response = api.post("/api/v1/events/batch", json={"events": [event() for _ in range(1001)]})
    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    assert db.scalar(select(func.count()).select_from(Event)) == 0


def test_malformed_json_gets_a_problem(api: TestClient) -> None:
    response = api.post("/api/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "malformed_json"


def test_bad_items_name_field_and_reason(api: TestClient) -> None:
    cases = {
        "identities": event(identities=[]),
        "properties.currency": order("O-2", currency="USD"),
        "properties.items[0].unit_price_fen": order("O-3", items=[{"sku": "x", "quantity": 1,
                                                                    "unit_price_fen": 12.5}], total_fen=1250),
        "identities[0].value": event(identities=[{"type": "phone", "value": "12345"}]),
    }
    for field, body in cases.items():
        response = api.post("/api/v1/events", json=body)
        assert response.status_code == 422, field
        assert response.json()["field"] == field


def test_strict_mode_rejects_unknown_types_until_registered(api: TestClient, db: Session, workspace) -> None:
    from siyu.workspaces.service import get_workspace, update_workspace_settings

    update_workspace_settings(db, get_workspace(db, workspace.id), {"strict_events": True})
    db.commit()
    rejected = api.post("/api/v1/events", json=event("live_watched"))
    assert rejected.status_code == 422 and rejected.json()["code"] == "unknown_event_type"
    assert api.post("/api/v1/event-types", json={"name": "live_watched"}).status_code == 201
    assert api.post("/api/v1/events", json=event("live_watched")).status_code == 201


def test_rollups_follow_orders_and_refunds(api: TestClient) -> None:
    api.post("/api/v1/events/batch", json={"events": [
        order("O-1", at="2026-10-01T10:00:00+08:00"),
        order("O-2", at="2026-10-20T10:00:00+08:00", items=[
            {"sku": "MASK", "name": "面膜", "category": "美妆/面膜", "quantity": 2, "unit_price_fen": 9900}]),
    ]})
    api.post("/api/v1/events", json=refund("O-2", 19800))
    customer_id = api.get("/api/v1/customers").json()["items"][0]["id"]
    rollup = api.get(f"/api/v1/customers/{customer_id}").json()["rollup"]
    assert rollup["orders_count"] == 1
    assert rollup["total_spend_fen"] == 29800
    assert rollup["refunded_fen"] == 19800
    assert rollup["categories"] == {"母婴/奶粉": 1}
    assert rollup["last_order_at"].startswith("2026-10-01T02:00:00")


def test_refund_before_its_order_is_applied_when_the_order_arrives(api: TestClient) -> None:
    api.post("/api/v1/events", json=refund("O-5", 10000))
    api.post("/api/v1/events", json=order("O-5"))
    customer_id = api.get("/api/v1/customers").json()["items"][0]["id"]
    rollup = api.get(f"/api/v1/customers/{customer_id}").json()["rollup"]
    assert rollup["total_spend_fen"] == 29800 - 10000
    assert rollup["orders_count"] == 1


def test_api_requires_a_key_and_stays_in_its_workspace(app, api: TestClient, api_as, other_workspace) -> None:
    from fastapi.testclient import TestClient as Client

    assert Client(app).get("/api/v1/customers").status_code == 401
    api.post("/api/v1/events", json=event())
    rival = api_as("operator", other_workspace)
    assert rival.get("/api/v1/customers").json()["items"] == []
    customer_id = api.get("/api/v1/customers").json()["items"][0]["id"]
    assert rival.get(f"/api/v1/customers/{customer_id}").status_code == 404


def test_analyst_cannot_ingest(api_as) -> None:
    analyst = api_as("analyst")
    response = analyst.post("/api/v1/events", json=event())
    assert response.status_code == 403


def test_customer_count_matches_people(api: TestClient, db: Session) -> None:
    api.post("/api/v1/events/batch", json={"events": [event(identities={"wechat_unionid": f"u{i % 3}"})
                                                      for i in range(9)]})
    assert db.scalar(select(func.count()).select_from(Customer)) == 3
