"""The loyalty API: the contract every resource keeps (anonymous, wrong workspace, wrong role, allowed)
and a member's life driven through it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import event, order

PROGRAMME = {"name": "小林会员", "points_per_yuan": 1, "member_day": 18}
TIERS = {"tiers": [
    {"code": "member", "name": "普通会员", "threshold": 0},
    {"code": "silver", "name": "银卡", "threshold": 100_000, "validity_months": 12, "points_multiplier_percent": 150,
     "shop_discount_percent": 95},
]}


def setup(api: TestClient) -> int:
    assert api.put("/api/v1/loyalty/programme", json=PROGRAMME).status_code == 200
    assert api.put("/api/v1/loyalty/tiers", json=TIERS).status_code == 200
    response = api.post("/api/v1/events", json=event("identify", identities={"wechat_unionid": "u-1"}))
    customer_id: int = response.json()["customer_id"]
    enrolled = api.post("/api/v1/loyalty/members", json={"customer_id": customer_id,
                                                         "consent": {"channel": "mini_program", "text_version": "v3"}})
    assert enrolled.status_code == 201, enrolled.json()
    return customer_id


WRITES = [
    ("put", "/api/v1/loyalty/programme", PROGRAMME),
    ("put", "/api/v1/loyalty/tiers", TIERS),
    ("post", "/api/v1/loyalty/members/{cid}/points/adjust", {"points": 5, "reason": "x", "idempotency_key": "k"}),
    ("post", "/api/v1/loyalty/members/{cid}/leave", None),
    ("post", "/api/v1/loyalty/benefit-runs", {}),
]
READS = ["/api/v1/loyalty/programme", "/api/v1/loyalty/tiers", "/api/v1/loyalty/members",
         "/api/v1/loyalty/members/{cid}", "/api/v1/loyalty/members/{cid}/ledger",
         "/api/v1/loyalty/members/{cid}/tier-history", "/api/v1/loyalty/benefit-runs"]


def call(client: TestClient, method: str, path: str, body: Any = None) -> Any:
    return client.request(method.upper(), path, json=body)


def test_anonymous_callers_are_refused(app: Any, api: TestClient) -> None:
    cid = setup(api)
    anonymous = TestClient(app)
    for path in READS:
        assert anonymous.get(path.format(cid=cid)).status_code == 401, path
    for method, path, body in WRITES:
        assert call(anonymous, method, path.format(cid=cid), body).status_code == 401, path


def test_another_workspace_sees_nothing(api: TestClient, api_as: Any, other_workspace: Any) -> None:
    cid = setup(api)
    rival = api_as("operator", other_workspace)
    assert rival.get("/api/v1/loyalty/programme").json()["code"] == "loyalty_programme_not_configured"
    assert rival.put("/api/v1/loyalty/programme", json=PROGRAMME).status_code == 200
    assert rival.get("/api/v1/loyalty/members").json()["items"] == []
    for path in READS[3:6]:
        assert rival.get(path.format(cid=cid)).status_code == 404, path
    assert rival.post(f"/api/v1/loyalty/members/{cid}/points/adjust",
                      json={"points": 5, "reason": "x", "idempotency_key": "k"}).status_code == 404


def test_analysts_read_and_staff_cannot_change_set_up(api: TestClient, api_as: Any) -> None:
    cid = setup(api)
    analyst, staff = api_as("analyst"), api_as("staff")
    for path in READS:
        assert analyst.get(path.format(cid=cid)).status_code == 200, path
    for method, path, body in WRITES:
        assert call(analyst, method, path.format(cid=cid), body).status_code == 403, path
        assert call(staff, method, path.format(cid=cid), body).status_code == 403, path
    redeem = staff.post(f"/api/v1/loyalty/members/{cid}/points/redeem",
                        json={"points": 1, "reason": "gift", "idempotency_key": "g"})
    assert redeem.json()["code"] == "insufficient_points"  # staff may redeem at the counter


def test_a_member_through_the_api(api: TestClient, engine: Any) -> None:
    from siyu.jobs.worker import run_due_jobs

    cid = setup(api)
    pram = [{"sku": "PRAM", "category": "母婴/推车", "quantity": 1, "unit_price_fen": 120_000}]
    api.post("/api/v1/events", json=order("O-1", at="2026-11-01T10:00:00+08:00", items=pram))
    run_due_jobs(engine)
    summary = api.get(f"/api/v1/loyalty/members/{cid}").json()
    assert (summary["tier"]["code"], summary["member"]["points_balance"], summary["progress"]["next_tier"]) == (
        "silver", 1200, None)
    assert summary["benefits"]["points_multiplier_percent"] == 150
    adjusted = api.post(f"/api/v1/loyalty/members/{cid}/points/adjust",
                        json={"points": -200, "reason": "wrong order", "idempotency_key": "a-1"})
    assert adjusted.status_code == 200 and adjusted.json()["points_balance"] == 1000
    ledger = api.get(f"/api/v1/loyalty/members/{cid}/ledger").json()["items"]
    assert [(e["kind"], e["points"]) for e in ledger] == [("adjust", -200), ("earn", 1200)]
    history = api.get(f"/api/v1/loyalty/members/{cid}/tier-history").json()
    assert [h["direction"] for h in history] == ["up", "enrolled"]


def test_the_shop_prices_an_order_for_a_member(api: TestClient, engine: Any) -> None:
    from siyu.jobs.worker import run_due_jobs

    cid = setup(api)
    base = api.get(f"/api/v1/loyalty/members/{cid}/price", params={"order_amount_fen": 10_001}).json()
    assert (base["shop_discount_percent"], base["member_price_fen"], base["max_deduction_points"]) == (100, 10_001, 0)
    pram = [{"sku": "PRAM", "category": "母婴/推车", "quantity": 1, "unit_price_fen": 120_000}]
    api.post("/api/v1/events", json=order("O-1", at="2026-11-01T10:00:00+08:00", items=pram))
    run_due_jobs(engine)
    silver = api.get(f"/api/v1/loyalty/members/{cid}/price", params={"order_amount_fen": 10_001}).json()
    assert silver == {"customer_id": cid, "tier_code": "silver", "order_amount_fen": 10_001,
                      "shop_discount_percent": 95, "member_discount_fen": 500, "member_price_fen": 9_501,
                      "points_balance": 1_200, "max_deduction_points": 1_200, "max_deduction_fen": 1_200}
    small = api.get(f"/api/v1/loyalty/members/{cid}/price", params={"order_amount_fen": 1_000}).json()
    assert (small["member_price_fen"], small["max_deduction_fen"]) == (950, 475)  # at most 50% of the member price
    bad = api.get(f"/api/v1/loyalty/members/{cid}/price", params={"order_amount_fen": -1})
    assert (bad.status_code, bad.json()["field"]) == (422, "order_amount_fen")
    assert api.get("/api/v1/loyalty/members/999999/price", params={"order_amount_fen": 100}).status_code == 404
    assert api.post(f"/api/v1/loyalty/members/{cid}/leave").status_code == 200
    left = api.get(f"/api/v1/loyalty/members/{cid}/price", params={"order_amount_fen": 10_001}).json()
    assert (left["shop_discount_percent"], left["max_deduction_points"]) == (100, 0)  # benefits stop


@pytest.mark.parametrize(("body", "field"), [
    ({"points": 2.5, "reason": "x", "idempotency_key": "k"}, "points"),
    ({"points": "10", "reason": "x", "idempotency_key": "k"}, "points"),
    ({"points": 0, "reason": "x", "idempotency_key": "k"}, None),
    ({"points": 10, "reason": "", "idempotency_key": "k"}, "reason"),
])
def test_bad_adjustments_get_a_problem(api: TestClient, body: dict[str, Any], field: str | None) -> None:
    cid = setup(api)
    response = api.post(f"/api/v1/loyalty/members/{cid}/points/adjust", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_an_unordered_ladder_is_refused_with_the_field(api: TestClient) -> None:
    setup(api)
    response = api.put("/api/v1/loyalty/tiers", json={"tiers": [
        {"code": "a", "name": "A", "threshold": 0}, {"code": "b", "name": "B", "threshold": 500},
        {"code": "c", "name": "C", "threshold": 300}]})
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        422, "invalid_tier_ladder", "tiers[2].threshold")
