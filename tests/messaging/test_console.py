"""Console pages of messaging, driven the way an operator uses them (forms with the CSRF token)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.messaging.dispatch import dispatch_due
from siyu.messaging.preferences import set_preference
from siyu.messaging.sending import enqueue_message
from siyu.workspaces.service import WorkspaceContext, create_user, get_workspace
from tests.messaging.conftest import make_customer, no_policy_limits, sandbox_template
from tests.web.conftest import Console, login


@pytest.fixture
def console(app: Any, owner: dict[str, str]) -> Iterator[Console]:
    with TestClient(app) as client:
        yield Console(client, login(client, owner["email"], owner["password"]))


def _location_id(response: Any) -> int:
    assert response.status_code == 303, response.text
    return int(re.findall(r"/(\d+)$", response.headers["location"])[0])


def test_an_operator_builds_previews_and_starts_a_broadcast(console: Console, db: Session,
                                                            workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    customers = [make_customer(db, workspace) for _ in range(3)]
    set_preference(db, workspace.id, customers[0], channel="*", purpose="marketing", status="opted_out",
                   source="test", actor="test")
    db.commit()
    template = _location_id(console.post("/messaging/templates", data={
        "name": "周末上新", "channel": "sandbox", "kind": "text", "purpose": "marketing",
        "body": "{{ customer.name }}，周末上新", "payload": "{}"}))
    assert "customer.name" in console.get(f"/messaging/templates/{template}").text

    broadcast = _location_id(console.post("/messaging/broadcasts", data={
        "name": "周末", "channel": "sandbox", "template_id": str(template), "template_b": "", "split_a": "50",
        "audience_kind": "list", "audience_ref": " ".join(map(str, customers)), "context": "{}"}))
    page = console.get(f"/messaging/broadcasts/{broadcast}").text
    assert 'data-preview="send">2<' in page and 'data-preview="suppress">1<' in page
    assert 'data-rule="opted_out"' in page

    started = console.post(f"/messaging/broadcasts/{broadcast}/start")
    assert started.status_code == 303
    assert 'data-state="scheduled"' in console.get(f"/messaging/broadcasts/{broadcast}").text


def test_the_pages_show_why_a_customer_did_not_get_a_message(console: Console, db: Session, engine: Any,
                                                             workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace)
    set_preference(db, workspace.id, customer, channel="sandbox", purpose="marketing", status="opted_out",
                   source="sms_reply", actor="test")
    refused = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", content={"text": "上新"},
                              idempotency_key="c1")
    sent = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", content={"text": "发货"},
                           idempotency_key="c2", purpose="service")
    db.commit()
    dispatch_due(engine)

    history = console.get(f"/messaging/customers/{customer}").text
    assert f'data-message-id="{refused.id}"' in history and f'data-message-id="{sent.id}"' in history
    assert 'data-preference="sandbox:marketing"' in history
    story = console.get(f"/messaging/messages/{refused.id}").text
    assert 'id="why"' in story and 'title="opted_out"' in story
    listed = console.get("/messaging/messages", params={"state": "suppressed"}).text
    assert f'data-message-id="{refused.id}"' in listed and f'data-message-id="{sent.id}"' not in listed
    assert f'data-customer-id="{customer}"' in console.get("/messaging/preferences").text


def test_every_page_renders_in_both_languages(console: Console) -> None:
    for path in ("/messaging", "/messaging/templates", "/messaging/messages", "/messaging/preferences",
                 "/messaging/policy", "/messaging/broadcasts/new"):
        for lang in ("zh_CN", "en"):
            response = console.get(path, params={"lang": lang})
            assert response.status_code == 200, (path, lang)
    assert "触达策略" in console.get("/messaging/policy", params={"lang": "zh_CN"}).text


def test_the_policy_form_validates_and_saves(console: Console, db: Session, workspace: WorkspaceContext) -> None:
    bad = console.post("/messaging/policy", data={"policy": '{"frequency_caps": [{"period": "year", "max": 1}]}'})
    assert bad.status_code == 422
    ok = console.post("/messaging/policy", data={"policy": '{"quiet_hours": {"start": "22:00", "end": "08:00"}}'})
    assert ok.status_code == 303
    assert "22:00–08:00" in console.get("/messaging/policy").text
    quota = console.post("/messaging/quotas", data={"channel": "sandbox", "name": "per_day", "scope": "customer",
                                                    "period": "day", "max_count": "2", "active": "true"})
    assert quota.status_code == 303 and "per_day" in console.get("/messaging/policy").text


def test_a_saved_channel_keeps_its_secret_when_the_form_sends_it_back(console: Console) -> None:
    config = '{"url": "http://127.0.0.1:9/sms", "app_key": "k", "secret": "s3cret-s3cret"}'
    assert console.post("/messaging/channels/sms", data={"config": config, "enabled": "true"}).status_code == 303
    page = console.get("/messaging/policy").text
    assert "s3cret" not in page and "***" in page
    again = config.replace("s3cret-s3cret", "***")
    assert console.post("/messaging/channels/sms", data={"config": again, "enabled": "true"}).status_code == 303
    assert console.client.get("/api/v1/messaging/channels").status_code == 200


def test_an_analyst_sees_but_cannot_change(app: Any, db: Session, workspace: WorkspaceContext) -> None:
    create_user(db, get_workspace(db, workspace.id), "analyst@acme.test", "分析师", "correct-horse", "analyst")
    db.commit()
    with TestClient(app) as client:
        viewer = Console(client, login(client, "analyst@acme.test", "correct-horse"))
        assert viewer.get("/messaging").status_code == 200
        assert 'id="new-broadcast"' not in viewer.get("/messaging").text
        assert viewer.post("/messaging/policy", data={"policy": "{}"}).status_code == 403
        template = sandbox_template(db, workspace)
        assert viewer.post(f"/messaging/templates/{template}/archive").status_code == 403
