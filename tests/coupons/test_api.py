"""The coupons API: the resource contract and the issue → redeem → stats flow."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.factories import event

TEMPLATE = {"name": "满200减20", "kind": "threshold_off", "amount_off_fen": 2000, "threshold_fen": 20_000,
            "valid_days": 30, "total_stock": 100}


def setup(api: TestClient) -> tuple[int, int]:
    template = api.post("/api/v1/coupons/templates", json=TEMPLATE)
    assert template.status_code == 201, template.json()
    customer = api.post("/api/v1/events", json=event("identify", identities={"wechat_unionid": "u-1"}))
    return template.json()["id"], customer.json()["customer_id"]


def test_the_contract_anonymous_foreign_role_allowed(app: Any, api: TestClient, api_as: Any,
                                                     other_workspace: Any) -> None:
    template_id, cid = setup(api)
    issued = api.post("/api/v1/coupons/issue", json={"template_id": template_id, "customer_id": cid,
                                                     "idempotency_key": "k"}).json()
    reads = ["/api/v1/coupons/templates", f"/api/v1/coupons/templates/{template_id}", "/api/v1/coupons",
             f"/api/v1/coupons/{issued['code']}"]
    anonymous, analyst, staff = TestClient(app), api_as("analyst"), api_as("staff")
    rival = api_as("operator", other_workspace)
    for path in reads:
        assert anonymous.get(path).status_code == 401, path
        assert analyst.get(path).status_code == 200, path
    assert rival.get(f"/api/v1/coupons/templates/{template_id}").status_code == 404
    assert rival.get(f"/api/v1/coupons/{issued['code']}").status_code == 404
    assert rival.get("/api/v1/coupons").json()["items"] == []
    assert rival.post("/api/v1/coupons/issue", json={"template_id": template_id, "customer_id": cid,
                                                     "idempotency_key": "x"}).status_code == 404
    for client, status in ((analyst, 403), (staff, 403)):
        assert client.post("/api/v1/coupons/templates", json=TEMPLATE).status_code == status
        assert client.post("/api/v1/coupons/issue", json={"template_id": template_id, "customer_id": cid,
                                                          "idempotency_key": "y"}).status_code == status
    redeem = {"code": issued["code"], "order_id": "O-1", "order_amount_fen": 100}
    assert analyst.post("/api/v1/coupons/redeem", json=redeem).status_code == 403
    assert staff.post("/api/v1/coupons/redeem", json=redeem).json()["code"] == "coupon_below_threshold"


def test_issue_redeem_and_stats(api: TestClient) -> None:
    template_id, cid = setup(api)
    body = {"template_id": template_id, "customer_id": cid, "idempotency_key": "welcome"}
    first, again = api.post("/api/v1/coupons/issue", json=body), api.post("/api/v1/coupons/issue", json=body)
    assert first.json()["code"] == again.json()["code"]
    code = first.json()["code"]
    formatted = "-".join(code[i:i + 4] for i in range(0, 16, 4)).lower()
    redeem = {"code": formatted, "order_id": "O-1", "order_amount_fen": 25_000}
    redeemed = api.post("/api/v1/coupons/redeem", json=redeem)
    assert redeemed.status_code == 200
    assert (redeemed.json()["discount_fen"], redeemed.json()["payable_fen"]) == (2000, 23_000)
    assert api.post("/api/v1/coupons/redeem", json=redeem).json() == redeemed.json()
    used = api.post("/api/v1/coupons/redeem", json={**redeem, "order_id": "O-2"})
    assert (used.status_code, used.json()["code"]) == (409, "coupon_used")
    stats = api.get(f"/api/v1/coupons/templates/{template_id}").json()["stats"]
    assert stats == {"template_id": template_id, "issued": 1, "redeemed": 1, "expired": 0, "redemption_rate": 1.0,
                     "gmv_fen": 25_000, "discount_fen": 2000}
    listed = api.get("/api/v1/coupons", params={"customer_id": cid, "state": "redeemed"}).json()["items"]
    assert [c["code"] for c in listed] == [code]


def test_bad_money_and_unknown_codes_get_problems(api: TestClient) -> None:
    setup(api)
    fractional = api.post("/api/v1/coupons/redeem", json={"code": "X", "order_id": "O", "order_amount_fen": 12.5})
    assert (fractional.status_code, fractional.json()["field"]) == (422, "order_amount_fen")
    negative = api.post("/api/v1/coupons/templates", json={**TEMPLATE, "amount_off_fen": -20})
    assert (negative.status_code, negative.json()["field"]) == (422, "amount_off_fen")
    unknown = api.post("/api/v1/coupons/redeem", json={"code": "NOPE", "order_id": "O", "order_amount_fen": 100})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "coupon_not_found")


def test_bulk_issue_to_a_list_respects_stock(api: TestClient) -> None:
    template = api.post("/api/v1/coupons/templates", json={**TEMPLATE, "total_stock": 2}).json()
    ids = [api.post("/api/v1/events", json=event("identify", identities={"wechat_unionid": f"u-{n}"}))
           .json()["customer_id"] for n in range(3)]
    result = api.post("/api/v1/coupons/issue-bulk", json={"template_id": template["id"], "customer_ids": ids,
                                                          "idempotency_key": "double-11"}).json()
    assert (result["issued"], result["skipped_stock"], result["already_issued"]) == (2, 1, 0)
    again = api.post("/api/v1/coupons/issue-bulk", json={"template_id": template["id"], "customer_ids": ids,
                                                         "idempotency_key": "double-11"}).json()
    assert (again["issued"], again["already_issued"], again["skipped_stock"]) == (0, 2, 1)
