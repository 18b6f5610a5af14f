"""Templates: validation at save time, sandboxed personalisation, previews, tracked and unsubscribe links."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.messaging.errors import TemplateInvalid, UnknownTemplateVariable
from siyu.messaging.models import ContactPreference, MessageEvent, MessageTemplate
from siyu.messaging.sending import enqueue_message
from siyu.messaging.template_service import create_template, preview_template
from siyu.workspaces.service import WorkspaceContext
from tests.messaging.conftest import make_customer, no_policy_limits, reload, sandbox_template


@pytest.mark.parametrize(("body", "variable"), [
    ("{{ customer.nickname }}，你好", "customer.nickname"),
    ("{{ member.level }}", "'member'"),
    ("满减码 {{ coupon['pin'] }}", "coupon.pin"),
])
def test_an_unknown_variable_fails_when_the_template_is_saved(db: Session, workspace: WorkspaceContext, body: str,
                                                              variable: str) -> None:
    with pytest.raises(UnknownTemplateVariable) as caught:
        create_template(db, workspace, name="t", channel="sandbox", kind="text", body=body, actor="t")
    assert variable in caught.value.message and caught.value.field == "body"
    assert db.scalars(select(MessageTemplate)).all() == []


def test_the_api_refuses_an_unknown_variable_with_the_field(api: TestClient) -> None:
    response = api.post("/api/v1/messaging/templates", json={
        "name": "t", "channel": "sandbox", "kind": "link_card", "body": "hi",
        "payload": {"link": {"url": "https://shop.example/{{ customer.uid }}", "title": "新品"}}})
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == ("unknown_template_variable", "payload.link.url")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"channel": "sandbox", "kind": "text", "body": "{{ customer.name "}, "body"),
    ({"channel": "sandbox", "kind": "text", "body": "{{ ''.__class__.__mro__ }}"}, "body"),
    ({"channel": "email", "kind": "text", "body": "hi"}, "subject"),
    ({"channel": "sms", "kind": "link_card", "body": "hi", "payload": {"link": {"url": "u", "title": "t"}}}, "kind"),
    ({"channel": "sandbox", "kind": "miniprogram_card", "body": "", "payload": {"miniprogram": {"appid": "wx1"}}},
     "payload.miniprogram.page"),
])
def test_broken_templates_are_refused_with_the_field_at_fault(db: Session, workspace: WorkspaceContext,
                                                              kwargs: dict, field: str) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        create_template(db, workspace, name="t", actor="t", **kwargs)
    assert caught.value.field == field


def test_a_template_renders_customer_coupon_and_staff_variables(db: Session, workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace, name="王小丫")
    body = ("{{ customer.name }}，{{ staff.name }}送您 {{ coupon.name }}：{{ coupon.code }}"
            "{% if customer.city %}（{{ customer.city }}）{% endif %}")
    template = sandbox_template(db, workspace, body=body)
    preview = preview_template(db, workspace, template, customer, {"coupon": {"name": "满199减30", "code": "AB12"},
                                                                   "staff": {"name": "小林"}})
    assert preview["content"]["text"] == "王小丫，小林送您 满199减30：AB12"
    assert preview["missing"] == []


def test_a_send_without_the_coupon_its_template_needs_is_refused(api: TestClient, db: Session,
                                                                 workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace)
    template = sandbox_template(db, workspace, body="券码 {{ coupon.code }}")
    response = api.post("/api/v1/messaging/messages", json={"customer_id": customer, "channel": "sandbox",
                                                            "template_id": template, "idempotency_key": "k1"})
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == ("template_context_missing", "context")
    ok = api.post("/api/v1/messaging/messages", json={"customer_id": customer, "channel": "sandbox",
                                                      "template_id": template, "idempotency_key": "k1",
                                                      "context": {"coupon": {"code": "ZX9"}}, "purpose": "service"})
    assert ok.status_code == 201 and ok.json()["content"]["text"] == "券码 ZX9"


def test_preview_against_a_real_customer_through_the_api(api: TestClient, db: Session,
                                                         workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace, name="李雷")
    template = sandbox_template(db, workspace)
    response = api.post(f"/api/v1/messaging/templates/{template}/preview", json={"customer_id": customer})
    assert response.status_code == 200
    assert response.json()["content"] == {"kind": "text", "text": "李雷，本周新品上架"}


def test_links_are_tracked_and_a_click_engages_the_message(api: TestClient, db: Session,
                                                           workspace: WorkspaceContext, dispatch) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    message = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", idempotency_key="k",
                              content={"text": "双11预售 https://shop.example/1111?utm=a 抢先看"})
    db.commit()
    dispatch()
    text = message.content["text"]
    assert "https://shop.example" not in text and message.content["links"] == ["https://shop.example/1111?utm=a"]
    short = text.split()[1]
    code = short.rsplit("/", 1)[1]

    response = api.get(f"/l/{code}", follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (302, "https://shop.example/1111?utm=a")
    reload(db, message)
    assert (message.click_count, message.clicked_at is not None, message.engaged_at is not None) == (1, True, True)
    assert api.get(f"/l/{code[:-1]}x", follow_redirects=False).status_code == 404
    assert db.scalars(select(MessageEvent.type).where(MessageEvent.outbox_id == message.id)).all() == ["clicked"]


def test_an_unsubscribe_link_asks_first_then_opts_out(api: TestClient, db: Session, workspace: WorkspaceContext
                                                      ) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    template = sandbox_template(db, workspace, body="月度好物 退订点 {{ unsubscribe_url }}")
    message = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", idempotency_key="k",
                              template_id=template)
    db.commit()
    path = "/u/" + message.content["unsubscribe_url"].rsplit("/u/", 1)[1]

    page = api.get(path)
    assert page.status_code == 200 and 'id="confirm-unsubscribe"' in page.text
    assert db.scalars(select(ContactPreference)).all() == []
    done = api.post(path)
    assert done.status_code == 200 and 'id="unsubscribed"' in done.text

    preference = db.scalars(select(ContactPreference)).one()
    assert (preference.customer_id, preference.channel, preference.purpose, preference.status,
            preference.source) == (customer, "sandbox", "marketing", "opted_out", "unsubscribe_link")
    later = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", idempotency_key="k2",
                            template_id=template)
    assert (later.state, later.reason) == ("suppressed", "opted_out")


def test_the_customer_tier_comes_from_the_loyalty_programme(db: Session, workspace: WorkspaceContext) -> None:
    from tests.loyalty.conftest import member, setup_programme

    setup_programme(db, workspace)
    enrolled = member(db, workspace, "u-tier", name="会员小王")
    db.commit()
    template = sandbox_template(db, workspace, body="{{ customer.name }}（{{ customer.tier }}），会员日快乐")
    message = enqueue_message(db, workspace, customer_id=enrolled.customer_id, channel="sandbox",
                              template_id=template, idempotency_key="tier", purpose="service")
    preview = preview_template(db, workspace, template, enrolled.customer_id)
    assert message.content["text"] == preview["content"]["text"] == "会员小王（普通会员），会员日快乐"
