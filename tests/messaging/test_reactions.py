"""Reactions to ingested events and merges: "TD" / "退订" replies, and preferences that follow a merge."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.jobs.worker import run_due_jobs
from siyu.messaging.models import ContactPreference
from siyu.messaging.preferences import set_preference
from siyu.messaging.sending import enqueue_message
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event
from tests.messaging.conftest import make_customer


@pytest.mark.parametrize(("text", "properties", "channel"), [
    ("TD", {"channel": "sms"}, "sms"),
    (" 退订 ", {}, "*"),
    ("td", {"channel": "wecom"}, "wecom"),
])
def test_an_opt_out_reply_opts_the_customer_out_of_marketing(api: TestClient, db: Session, engine: Engine,
                                                             workspace: WorkspaceContext, text: str,
                                                             properties: dict[str, str], channel: str) -> None:
    customer = make_customer(db, workspace, unionid="u-td")
    response = api.post("/api/v1/events", json=event("message_received", identities={"wechat_unionid": "u-td"},
                                                     properties={"text": text, **properties}))
    assert response.status_code == 201
    run_due_jobs(engine)

    preference = db.scalars(select(ContactPreference)).one()
    assert (preference.customer_id, preference.channel, preference.purpose, preference.status) == (
        customer, channel, "marketing", "opted_out")


def test_an_ordinary_reply_opts_nobody_out(api: TestClient, db: Session, engine: Engine,
                                           workspace: WorkspaceContext) -> None:
    make_customer(db, workspace, unionid="u-chat")
    api.post("/api/v1/events", json=event("message_received", identities={"wechat_unionid": "u-chat"},
                                          properties={"text": "TD是什么意思？"}))
    run_due_jobs(engine)
    assert db.scalars(select(ContactPreference)).all() == []


def test_after_a_merge_the_survivor_keeps_the_stricter_word(api: TestClient, db: Session, engine: Engine,
                                                            workspace: WorkspaceContext) -> None:
    from siyu.customers.service import merge_customers

    survivor = make_customer(db, workspace, unionid="u-keep")
    absorbed = make_customer(db, workspace, unionid="u-gone", phone="13700000000")
    set_preference(db, workspace.id, survivor, channel="sandbox", purpose="marketing", status="opted_in",
                   source="form", actor="t")
    set_preference(db, workspace.id, absorbed, channel="sandbox", purpose="marketing", status="opted_out",
                   source="sms_reply", actor="t")
    merge_customers(db, workspace, survivor, absorbed, reason="test", actor="t")
    db.commit()
    run_due_jobs(engine)

    rows = db.scalars(select(ContactPreference)).all()
    assert [(r.customer_id, r.status) for r in rows] == [(survivor, "opted_out")]
    message = enqueue_message(db, workspace, customer_id=absorbed, channel="sandbox", content={"text": "hi"},
                              idempotency_key="after-merge")
    assert (message.customer_id, message.reason) == (survivor, "opted_out")
