"""Tags through the API: groups, manual tagging (ids, identities, CSV, a segment), history, auto tags
and presets, refusals, and who may do what."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.jobs.worker import run_due_jobs
from siyu.tags.models import CustomerTag, Tag, TagHistory
from tests.factories import event, order


def people(api: TestClient, *unionids: str) -> dict[str, int]:
    api.post("/api/v1/events/batch", json={"events": [
        event("page_view", id=f"v-{u}", identities=[{"type": "wechat_unionid", "value": u}]) for u in unionids]})
    found = {}
    for unionid in unionids:
        page = api.get("/api/v1/customers", params={"identity_type": "wechat_unionid", "identity_value": unionid})
        found[unionid] = page.json()["items"][0]["id"]
    return found


def test_groups_hold_tags_and_names_are_unique(api: TestClient) -> None:
    group = api.post("/api/v1/tag-groups", json={"name": "意向度"})
    assert group.status_code == 201
    assert api.post("/api/v1/tag-groups", json={"name": "意向度"}).status_code == 409
    tag = api.post("/api/v1/tags", json={"name": "高意向", "group_id": group.json()["id"]})
    assert tag.status_code == 201
    assert (tag.json()["kind"], tag.json()["freshness"]) == ("manual", "manual")
    assert tag.json()["external_key"].startswith("tag_")
    duplicate = api.post("/api/v1/tags", json={"name": "高意向"})
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "tag_name_taken")
    assert api.delete(f"/api/v1/tag-groups/{group.json()['id']}").status_code == 204
    assert api.get(f"/api/v1/tags/{tag.json()['id']}").json()["group_id"] is None


def test_renaming_a_tag_keeps_its_external_key(api: TestClient) -> None:
    tag = api.post("/api/v1/tags", json={"name": "老客", "external_key": "wecom-et-001"}).json()
    renamed = api.patch(f"/api/v1/tags/{tag['id']}", json={"name": "忠实老客"}).json()
    assert (renamed["name"], renamed["external_key"]) == ("忠实老客", "wecom-et-001")


def test_tagging_by_id_and_identity_records_who_and_when(api: TestClient, db: Session) -> None:
    ids = people(api, "a", "b")
    tag_id = api.post("/api/v1/tags", json={"name": "VIP"}).json()["id"]
    added = api.post(f"/api/v1/tags/{tag_id}/customers", json={
        "customer_ids": [ids["a"], 999_999], "identities": [{"type": "wechat_unionid", "value": "b"},
                                                           {"type": "wechat_unionid", "value": "a"}]})
    assert added.json() == {"changed": 2, "unchanged": 0, "unknown": ["999999"], "unknown_count": 1}
    again = api.post(f"/api/v1/tags/{tag_id}/customers", json={"customer_ids": [ids["a"]]})
    assert again.json()["changed"] == 0 and again.json()["unchanged"] == 1
    assert api.get(f"/api/v1/tags/{tag_id}").json()["size"] == 2
    removed = api.post(f"/api/v1/tags/{tag_id}/customers/remove", json={"customer_ids": [ids["b"]]})
    assert removed.json()["changed"] == 1
    history = api.get(f"/api/v1/customers/{ids['b']}/tag-history").json()
    assert [(h["action"], h["source"], h["tag_name"]) for h in history] == [
        ("removed", "manual", "VIP"), ("added", "manual", "VIP")]
    assert history[0]["actor"].startswith("apikey:")
    assert [t["name"] for t in api.get(f"/api/v1/customers/{ids['a']}/tags").json()] == ["VIP"]
    assert [c["id"] for c in api.get(f"/api/v1/tags/{tag_id}/customers").json()["items"]] == [ids["a"]]


def test_tagging_a_csv_of_identities(api: TestClient) -> None:
    ids = people(api, "a", "b")
    tag_id = api.post("/api/v1/tags", json={"name": "活动报名"}).json()["id"]
    body = "wechat_unionid,phone\na,\nb,13800138000\n,not-a-phone\n"
    response = api.post(f"/api/v1/tags/{tag_id}/customers/import", content=body.encode(),
                        headers={"content-type": "text/csv"})
    assert response.json()["changed"] == 2
    assert response.json()["unknown"] == ["phone:13800138000", "phone:not-a-phone"]
    assert api.get(f"/api/v1/tags/{tag_id}").json()["size"] == 2
    assert {t["name"] for t in api.get(f"/api/v1/customers/{ids['b']}/tags").json()} == {"活动报名"}
    bad = api.post(f"/api/v1/tags/{tag_id}/customers/import", content="姓名\n王芳\n".encode(),
                   headers={"content-type": "text/csv"})
    assert (bad.status_code, bad.json()["field"]) == (422, "file")


def test_tagging_every_member_of_a_segment(api: TestClient) -> None:
    ids = people(api, "a", "b", "c")
    listed = api.post("/api/v1/segments", json={"name": "名单", "kind": "static",
                                                "customer_ids": [ids["a"], ids["c"]]}).json()["id"]
    tag_id = api.post("/api/v1/tags", json={"name": "618 邀约"}).json()["id"]
    assert api.post(f"/api/v1/tags/{tag_id}/customers", json={"segment_id": listed}).json()["changed"] == 2
    assert {c["id"] for c in api.get(f"/api/v1/tags/{tag_id}/customers").json()["items"]} == {ids["a"], ids["c"]}


def test_an_auto_tag_is_kept_by_its_rule_not_by_hand(api: TestClient, engine: Engine, db: Session) -> None:
    api.post("/api/v1/events", json=order("O-1", unionid="buyer", total_fen=80_000,
                                          items=[{"sku": "S", "category": "母婴/奶粉", "quantity": 1,
                                                  "unit_price_fen": 80_000}]))
    ids = people(api, "buyer", "browser")
    created = api.post("/api/v1/tags", json={"name": "大单", "rule": {
        "kind": "order", "measure": "average_order_fen", "op": "gte", "value": 50_000}})
    assert (created.json()["kind"], created.json()["freshness"]) == ("auto", "pending")
    run_due_jobs(engine)
    tag = api.get(f"/api/v1/tags/{created.json()['id']}").json()
    assert (tag["size"], tag["freshness"]) == (1, "fresh")
    refused = api.post(f"/api/v1/tags/{tag['id']}/customers", json={"customer_ids": [ids["browser"]]})
    assert (refused.status_code, refused.json()["code"]) == (409, "auto_tag_is_rule_bound")
    assert db.scalar(select(func.count()).select_from(CustomerTag)) == 1
    manual = api.post("/api/v1/tags", json={"name": "手工"}).json()["id"]
    gets_rule = api.patch(f"/api/v1/tags/{manual}", json={"rule": {"kind": "order", "measure": "count", "op": "gte",
                                                                   "value": 1}})
    assert (gets_rule.status_code, gets_rule.json()["code"]) == (422, "not_an_auto_tag")


def test_presets_install_once(api: TestClient, engine: Engine, db: Session) -> None:
    first = api.post("/api/v1/tags/presets")
    assert first.status_code == 201
    assert [t["name"] for t in first.json()] == ["高客单价", "母婴品类偏好", "沉睡客户", "新客"]
    second = api.post("/api/v1/tags/presets")
    assert [t["id"] for t in second.json()] == [t["id"] for t in first.json()]
    assert db.scalar(select(func.count()).select_from(Tag)) == 4
    assert {g["name"] for g in api.get("/api/v1/tag-groups").json()} == {"客单价", "品类偏好", "生命周期"}
    run_due_jobs(engine)
    assert {t["freshness"] for t in api.get("/api/v1/tags").json()} == {"fresh"}


def test_deleting_a_tag_a_rule_uses_is_refused_with_the_users(api: TestClient, db: Session) -> None:
    vip = api.post("/api/v1/tags", json={"name": "VIP"}).json()["id"]
    api.post("/api/v1/segments", json={"name": "VIP 复购", "rule": {"kind": "tag", "op": "has_any", "tags": [vip]}})
    response = api.delete(f"/api/v1/tags/{vip}")
    assert (response.status_code, response.json()["code"]) == (409, "tag_in_use")
    assert response.json()["message"] == "tag 'VIP' is used by segment VIP 复购"
    assert db.get(Tag, vip) is not None
    unused = api.post("/api/v1/tags", json={"name": "临时"}).json()["id"]
    assert api.delete(f"/api/v1/tags/{unused}").status_code == 204


def test_staff_may_tag_analysts_may_only_look_and_workspaces_stay_apart(
        api: TestClient, api_as: Any, other_workspace: Any, db: Session) -> None:
    ids = people(api, "a")
    tag_id = api.post("/api/v1/tags", json={"name": "VIP"}).json()["id"]
    assert api_as("staff").post(f"/api/v1/tags/{tag_id}/customers", json={"customer_ids": [ids["a"]]}).json()[
        "changed"] == 1
    assert api_as("staff").post("/api/v1/tags", json={"name": "x"}).status_code == 403
    analyst = api_as("analyst")
    assert analyst.post(f"/api/v1/tags/{tag_id}/customers/remove", json={"customer_ids": [ids["a"]]}).status_code == 403
    assert len(analyst.get("/api/v1/tags").json()) == 1
    rival = api_as("operator", other_workspace)
    assert rival.get("/api/v1/tags").json() == []
    assert rival.post(f"/api/v1/tags/{tag_id}/customers", json={"customer_ids": [ids["a"]]}).status_code == 404
    assert rival.get(f"/api/v1/customers/{ids['a']}/tags").status_code == 404
    assert db.scalar(select(func.count()).select_from(TagHistory)) == 1
