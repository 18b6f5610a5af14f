"""The messaging API: contracts (anonymous, wrong workspace, wrong role, allowed), the outbox story of a
message, policy and channel settings, and query counts of the lists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from siyu.workspaces.service import WorkspaceContext
from tests.messaging.conftest import make_customer, no_policy_limits, sandbox_template

READS = ["/api/v1/messaging/templates", "/api/v1/messaging/messages", "/api/v1/messaging/broadcasts",
         "/api/v1/messaging/policy", "/api/v1/messaging/quotas", "/api/v1/messaging/channels",
         "/api/v1/messaging/preferences", "/api/v1/messaging/sandbox/messages"]


def test_reads_need_a_key(app: Any) -> None:
    anonymous = TestClient(app)
    for path in READS:
        response = anonymous.get(path)
        assert (response.status_code, response.json()["code"]) == (401, "unauthorized"), path


def test_an_analyst_reads_but_cannot_send_or_change_the_policy(api_as: Any, db: Session,
                                                               workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace)
    analyst = api_as("analyst")
    assert analyst.get("/api/v1/messaging/policy").status_code == 200
    send = analyst.post("/api/v1/messaging/messages", json={"customer_id": customer, "channel": "sandbox",
                                                            "content": {"text": "x"}, "idempotency_key": "k"})
    patch = analyst.patch("/api/v1/messaging/policy", json={"quiet_hours": None})
    assert (send.status_code, patch.status_code) == (403, 403)
    assert analyst.get("/api/v1/messaging/messages").json()["items"] == []


def test_another_workspace_sees_none_of_it(api: TestClient, api_as: Any, db: Session, workspace: WorkspaceContext,
                                           other_workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    template = sandbox_template(db, workspace)
    sent = api.post("/api/v1/messaging/messages", json={"customer_id": customer, "channel": "sandbox",
                                                        "template_id": template, "idempotency_key": "k"}).json()
    rival = api_as("operator", other_workspace)
    assert rival.get(f"/api/v1/messaging/messages/{sent['id']}").status_code == 404
    assert rival.get(f"/api/v1/messaging/templates/{template}").status_code == 404
    assert rival.get("/api/v1/messaging/messages").json()["items"] == []
    steal = rival.post("/api/v1/messaging/messages", json={"customer_id": customer, "channel": "sandbox",
                                                           "content": {"text": "x"}, "idempotency_key": "k2"})
    assert (steal.status_code, steal.json()["code"]) == (404, "customer_not_found")


def test_a_message_tells_its_whole_story(api: TestClient, db: Session, workspace: WorkspaceContext,
                                         dispatch) -> None:
    customer = make_customer(db, workspace)
    body = {"customer_id": customer, "channel": "sandbox", "content": {"text": "到货啦"}, "purpose": "service",
            "idempotency_key": "restock:1"}
    first = api.post("/api/v1/messaging/messages", json=body)
    again = api.post("/api/v1/messaging/messages", json=body)
    assert (first.status_code, again.status_code, again.json()["id"]) == (201, 200, first.json()["id"])
    dispatch()

    story = api.get(f"/api/v1/messaging/messages/{first.json()['id']}").json()
    assert (story["state"], story["attempts"]) == ("delivered", 1)
    assert [(a["number"], a["outcome"]) for a in story["attempt_log"]] == [(1, "delivered")]
    inbox = api.get("/api/v1/messaging/sandbox/messages", params={"customer_id": customer}).json()
    assert [m["content"]["text"] for m in inbox] == ["到货啦"]
    contact = api.get(f"/api/v1/messaging/customers/{customer}/contact").json()
    assert [m["id"] for m in contact["last_messages"]] == [first.json()["id"]]


def test_an_opted_out_send_is_answered_with_its_suppression(api: TestClient, db: Session,
                                                            workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace)
    put = api.put(f"/api/v1/messaging/customers/{customer}/preferences",
                  json={"channel": "sandbox", "purpose": "marketing", "status": "opted_out"})
    assert put.status_code == 200
    response = api.post("/api/v1/messaging/messages", json={"customer_id": customer, "channel": "sandbox",
                                                            "content": {"text": "上新"}, "idempotency_key": "k"})
    assert (response.status_code, response.json()["state"], response.json()["reason"]) == (201, "suppressed",
                                                                                           "opted_out")
    listed = api.get("/api/v1/messaging/preferences", params={"status": "opted_out"}).json()["items"]
    assert [(p["customer_id"], p["source"]) for p in listed] == [(customer, "api")]


def test_policy_changes_are_validated_as_a_whole(api: TestClient) -> None:
    bad = api.patch("/api/v1/messaging/policy", json={"quiet_hours": {"start": "22:00", "end": "22:00"}})
    assert (bad.status_code, bad.json()["field"]) == (422, "policy.quiet_hours")
    unknown = api.patch("/api/v1/messaging/policy", json={"quiet": True})
    assert unknown.status_code == 422
    ok = api.patch("/api/v1/messaging/policy", json={"frequency_caps": [{"period": "day", "max": 2}]})
    assert ok.status_code == 200 and ok.json()["frequency_caps"] == [
        {"channel": "*", "purpose": "marketing", "period": "day", "max": 2}]
    assert api.get("/api/v1/messaging/policy").json()["quiet_hours"]["start"] == "21:30:00"


def test_channel_secrets_are_never_shown_and_bad_config_is_refused(api: TestClient) -> None:
    bad = api.put("/api/v1/messaging/channels/sms", json={"config": {"url": "not a url", "app_key": "k",
                                                                     "secret": "s" * 16}})
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (422, "channel_config_invalid", "config.url")
    ok = api.put("/api/v1/messaging/channels/sms", json={"config": {"url": "http://127.0.0.1:9/sms",
                                                                    "app_key": "k", "secret": "s" * 16}})
    assert ok.status_code == 200 and ok.json()["config"]["secret"] == "***"
    listed = api.get("/api/v1/messaging/channels").json()
    assert listed["configured"]["sms"]["config"]["secret"] == "***"
    assert api.put("/api/v1/messaging/channels/pigeon", json={}).json()["code"] == "unknown_channel"


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_listing_messages_costs_the_same_for_few_and_many(api: TestClient, db: Session, clean_engine: Engine,
                                                          workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)

    def send(n: int) -> None:
        for i in range(n):
            api.post("/api/v1/messaging/messages", json={"customer_id": customer, "channel": "sandbox",
                                                         "content": {"text": "x"}, "idempotency_key": f"n{n}-{i}"})

    send(2)
    with _statements(clean_engine) as few:
        assert api.get("/api/v1/messaging/messages").status_code == 200
    send(20)
    with _statements(clean_engine) as many:
        assert api.get("/api/v1/messaging/messages").status_code == 200
    assert len(many) == len(few)
