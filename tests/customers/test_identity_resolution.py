"""Identity resolution and merges: one profile per person, only strong identities merge."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.audit.models import AuditEntry
from siyu.customers.models import Customer, CustomerMerge, Identity, IdentityLink
from tests.factories import event, order


def _ingest(api: TestClient, *events: dict) -> list[dict]:
    response = api.post("/api/v1/events/batch", json={"events": list(events)})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _live_customers(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Customer).where(Customer.merged_into_id.is_(None))) or 0


def test_phone_is_normalised_before_matching(api: TestClient, db: Session) -> None:
    ids = [{"type": "phone", "value": v, "verified": True} for v in ("138 1234 5678", "+86-138-1234-5678")]
    first = _ingest(api, event(identities=[ids[0]]))[0]
    second = _ingest(api, event(identities=[ids[1]]))[0]
    assert first["customer_id"] == second["customer_id"]
    assert db.scalar(select(Identity.value).where(Identity.type == "phone")) == "+8613812345678"


def test_invalid_phone_is_rejected_with_field(api: TestClient, db: Session) -> None:
    result = _ingest(api, event(identities=[{"type": "phone", "value": "138-12"}]))[0]
    assert result["status"] == "rejected"
    assert result["error"]["field"] == "identities[0].value"
    assert result["error"]["code"] == "invalid_phone"
    assert _live_customers(db) == 0


def test_strong_identities_of_two_profiles_merge_into_the_older(api: TestClient, db: Session) -> None:
    older = _ingest(api, order("O-1", unionid="u-A", at="2026-09-01T10:00:00+08:00"))[0]["customer_id"]
    newer = _ingest(api, event(identities=[{"type": "member_no", "value": "M-9"}],
                               traits={"city": "杭州"}))[0]["customer_id"]
    assert older != newer
    linked = _ingest(api, event("form_submitted", identities=[{"type": "wechat_unionid", "value": "u-A"},
                                                             {"type": "member_no", "value": "M-9"}]))[0]
    assert linked["customer_id"] == older
    assert _live_customers(db) == 1
    merge = db.scalar(select(CustomerMerge))
    assert merge is not None and (merge.survivor_id, merge.absorbed_id) == (older, newer)
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "customer.merged")) == 1
    detail = api.get(f"/api/v1/customers/{older}").json()
    assert {i["type"] for i in detail["identities"]} == {"wechat_unionid", "member_no"}
    assert detail["city"] == "杭州"
    assert detail["rollup"]["orders_count"] == 1
    assert detail["rollup"]["events_count"] == 3


def test_absorbed_id_keeps_resolving_to_the_survivor(api: TestClient) -> None:
    a = _ingest(api, event(identities={"wechat_unionid": "u-1"}))[0]["customer_id"]
    b = _ingest(api, event(identities={"member_no": "M-1"}))[0]["customer_id"]
    _ingest(api, event(identities={"wechat_unionid": "u-1", "member_no": "M-1"}))
    detail = api.get(f"/api/v1/customers/{b}")
    assert detail.status_code == 200
    assert detail.json()["id"] == a and detail.json()["requested_id"] == b
    timeline = api.get(f"/api/v1/customers/{b}/timeline").json()["items"]
    assert len(timeline) == 3


def test_weak_match_is_kept_as_a_link_not_merged(api: TestClient, db: Session) -> None:
    first = _ingest(api, event(identities=[{"type": "email", "value": "Mei@Example.com"},
                                           {"type": "wechat_unionid", "value": "u-1"}]))[0]["customer_id"]
    second = _ingest(api, event(identities=[{"type": "email", "value": "mei@example.com"},
                                            {"type": "app_user_id", "value": "app-7"}]))[0]["customer_id"]
    assert first != second
    assert _live_customers(db) == 2
    links = api.get("/api/v1/identity-links").json()
    assert len(links) == 1 and {links[0]["customer_id"], links[0]["other_customer_id"]} == {first, second}
    confirmed = api.post(f"/api/v1/identity-links/{links[0]['id']}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert _live_customers(db) == 1
    again = api.post(f"/api/v1/identity-links/{links[0]['id']}/confirm")
    assert again.status_code == 409


def test_weak_identity_alone_is_attributed_to_its_only_owner(api: TestClient) -> None:
    owner = _ingest(api, event(identities=[{"type": "douyin_openid", "value": "dy-1"},
                                           {"type": "wechat_unionid", "value": "u-1"}]))[0]["customer_id"]
    again = _ingest(api, event(identities=[{"type": "douyin_openid", "value": "dy-1"}]))[0]["customer_id"]
    assert again == owner


def test_rejecting_a_link_keeps_profiles_apart(api: TestClient, db: Session) -> None:
    _ingest(api, event(identities=[{"type": "email", "value": "a@b.cn"}, {"type": "wechat_unionid", "value": "u1"}]),
            event(identities=[{"type": "email", "value": "a@b.cn"}, {"type": "wechat_unionid", "value": "u2"}]))
    link_id = api.get("/api/v1/identity-links").json()[0]["id"]
    assert api.post(f"/api/v1/identity-links/{link_id}/reject").json()["status"] == "rejected"
    assert _live_customers(db) == 2
    assert db.scalar(select(IdentityLink.status)) == "rejected"


def test_merge_keeps_newer_values_and_records_conflicts(api: TestClient, db: Session) -> None:
    _ingest(api, event(identities={"wechat_unionid": "u-1"}, at="2026-01-01T10:00:00+08:00",
                       traits={"name": "王芳", "city": "上海"}))
    _ingest(api, event(identities={"member_no": "M-1"}, at="2026-06-01T10:00:00+08:00",
                       traits={"city": "杭州", "gender": "female"}))
    survivor = _ingest(api, event(identities={"wechat_unionid": "u-1", "member_no": "M-1"},
                                  at="2026-06-02T10:00:00+08:00"))[0]["customer_id"]
    detail = api.get(f"/api/v1/customers/{survivor}").json()
    assert (detail["name"], detail["city"], detail["gender"]) == ("王芳", "杭州", "female")
    merge = db.scalar(select(CustomerMerge))
    assert merge is not None and merge.conflicts == {"city": {"kept": "杭州", "discarded": "上海"}}


def test_three_profiles_linked_in_one_batch_become_one(api: TestClient, db: Session) -> None:
    results = _ingest(api, event(identities={"wechat_unionid": "u-1"}), event(identities={"member_no": "M-1"}),
                      event(identities={"app_user_id": "A-1"}),
                      event(identities={"wechat_unionid": "u-1", "member_no": "M-1", "app_user_id": "A-1"}))
    assert len({r["customer_id"] for r in results}) == 1
    assert _live_customers(db) == 1
    assert db.scalar(select(func.count()).select_from(CustomerMerge)) == 2


def test_older_traits_only_fill_gaps(api: TestClient) -> None:
    _ingest(api, event(identities={"wechat_unionid": "u-1"}, at="2026-06-01T10:00:00+08:00",
                       traits={"city": "杭州"}))
    customer_id = _ingest(api, event(identities={"wechat_unionid": "u-1"}, at="2026-01-01T10:00:00+08:00",
                                     traits={"city": "上海", "name": "李雷"}))[0]["customer_id"]
    detail = api.get(f"/api/v1/customers/{customer_id}").json()
    assert (detail["city"], detail["name"]) == ("杭州", "李雷")


def test_merging_profiles_with_the_same_pending_link_keeps_one(api: TestClient, db: Session) -> None:
    # Two profiles each weakly linked to a third by the same email, then merged by a strong identity.
    _ingest(api, event(identities=[{"type": "email", "value": "x@y.cn"}, {"type": "wechat_unionid", "value": "u0"}]))
    _ingest(api, event(identities=[{"type": "email", "value": "x@y.cn"}, {"type": "wechat_unionid", "value": "u1"}]),
            event(identities=[{"type": "email", "value": "x@y.cn"}, {"type": "member_no", "value": "m2"}]))
    results = _ingest(api, event(identities={"wechat_unionid": "u1", "member_no": "m2"}))
    assert results[0]["status"] == "accepted"
    pending = api.get("/api/v1/identity-links").json()
    assert len(pending) == 1
    assert _live_customers(db) == 2


def test_null_refund_id_falls_back_to_the_event_id(api: TestClient) -> None:
    from tests.factories import refund

    api.post("/api/v1/events", json=order("O-7"))
    first, second = refund("O-7", 100, id="r-a"), refund("O-7", 200, id="r-b")
    first["properties"]["refund_id"] = second["properties"]["refund_id"] = None
    api.post("/api/v1/events/batch", json={"events": [first, second]})
    customer_id = api.get("/api/v1/customers").json()["items"][0]["id"]
    assert api.get(f"/api/v1/customers/{customer_id}").json()["rollup"]["refunded_fen"] == 300
