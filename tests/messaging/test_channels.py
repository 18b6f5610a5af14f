"""Channel adapters against real servers on loopback: SMTP (aiosmtpd), an HTTP SMS provider, webhook
receivers; and provider callbacks through the API."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.messaging.channels.sms import sign_headers
from siyu.messaging.channels.webhook import verify_signature
from siyu.messaging.models import ContactPreference, MessageAttempt
from siyu.messaging.sending import enqueue_message
from siyu.messaging.settings import configure_channel
from siyu.workspaces.service import WorkspaceContext
from tests.messaging.conftest import (
    SMS_SECRET,
    WEBHOOK_SECRET,
    LoopbackServer,
    Reply,
    configure_sms,
    configure_webhook,
    make_customer,
    no_policy_limits,
    reload,
    sandbox_template,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy.default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Mailbox]]:
    mailbox = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"shop", b"right")
        return AuthResult(success=ok, handled=False)

    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")  # loopback only
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port(), authenticator=authenticate,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    yield controller, mailbox
    controller.stop()


def _email_channel(db: Session, ws: WorkspaceContext, port: int, password: str) -> None:
    configure_channel(db, ws.id, "email", {"retry_initial_seconds": 0, "retry_max_seconds": 0, "config": {
        "host": "127.0.0.1", "port": port, "username": "shop", "password": password,
        "from_address": "news@shop.example", "from_name": "小林母婴"}})
    db.commit()


def _send(db: Session, ws: WorkspaceContext, customer: int, channel: str, **kwargs: Any) -> Any:
    kwargs.setdefault("content", {"text": "您的订单已发货"})
    message = enqueue_message(db, ws, customer_id=customer, channel=channel, purpose=kwargs.pop("purpose", "service"),
                              idempotency_key=kwargs.pop("key", f"{channel}:{customer}"), **kwargs)
    db.commit()
    return message


def test_an_email_reaches_a_real_smtp_server_with_an_unsubscribe_link(
        db: Session, workspace: WorkspaceContext, smtp: tuple[Controller, Mailbox], dispatch) -> None:
    controller, mailbox = smtp
    no_policy_limits(db, workspace)
    _email_channel(db, workspace, controller.port, "right")
    customer = make_customer(db, workspace, name="韩梅梅", email="meimei@example.com")
    template = sandbox_template(db, workspace, channel="email", subject="{{ customer.name }}，本周上新",
                                body="点此查看 https://shop.example/new?from=mail")
    message = _send(db, workspace, customer, "email", content=None, template_id=template, purpose="marketing")

    assert dispatch().sent == 1

    (email,) = mailbox.messages
    assert email["To"] == "meimei@example.com"
    assert email["Subject"] == "韩梅梅，本周上新"
    assert email["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
    body = email.get_content()
    assert "https://shop.example/new" not in body and "http://127.0.0.1:8000/l/" in body
    assert reload(db, message).state == "sent" and message.provider_message_id == email["Message-ID"]


def test_wrong_smtp_credentials_fail_clearly_and_nothing_is_marked_sent(
        db: Session, workspace: WorkspaceContext, smtp: tuple[Controller, Mailbox], dispatch) -> None:
    controller, mailbox = smtp
    _email_channel(db, workspace, controller.port, "wrong")
    message = _send(db, workspace, make_customer(db, workspace, email="a@example.com"), "email",
                    content={"text": "x", "subject": "y"})

    assert dispatch().failed == 1

    reload(db, message)
    assert (message.state, message.reason, message.sent_at) == ("failed", "channel_credentials_rejected", None)
    assert mailbox.messages == []


def test_sms_provider_answering_500_then_200_is_sent_once_signed(db: Session, workspace: WorkspaceContext,
                                                                  clock: FrozenClock, dispatch) -> None:
    with LoopbackServer([Reply(500, {"code": "SYSTEM_ERROR"}), Reply(200, {"code": "OK", "message_id": "p-9"})]) \
            as provider:
        configure_sms(db, workspace, provider.url)
        message = _send(db, workspace, make_customer(db, workspace, phone="13800138000"), "sms")
        assert dispatch().sent == 1

    reload(db, message)
    assert (message.state, message.provider_message_id) == ("sent", "p-9")
    outcomes = db.scalars(select(MessageAttempt.outcome).where(MessageAttempt.outbox_id == message.id)
                          .order_by(MessageAttempt.id)).all()
    assert outcomes == ["transient", "sent"]
    first, second = provider.seen
    assert orjson.loads(first.body)["request_id"] == orjson.loads(second.body)["request_id"] == message.idempotency_key
    assert orjson.loads(second.body)["to"] == "+8613800138000"
    expected = sign_headers("app-1", SMS_SECRET, second.body, int(second.headers["x-siyu-timestamp"]),
                            second.headers["x-siyu-nonce"])["X-Siyu-Signature"]
    assert second.headers["x-siyu-signature"] == expected


@pytest.mark.parametrize(("reply", "reason"), [
    (Reply(401, {"code": "AUTH_FAILED", "message": "bad app key"}), "channel_credentials_rejected"),
    (Reply(200, {"code": "INVALID_MOBILE", "message": "空号"}), "invalid_address"),
    (Reply(200, {"code": "BALANCE_INSUFFICIENT"}), "provider_BALANCE_INSUFFICIENT"),
])
def test_sms_provider_errors_are_mapped_and_stop(db: Session, workspace: WorkspaceContext, dispatch,
                                                 reply: Reply, reason: str) -> None:
    with LoopbackServer([reply]) as provider:
        configure_sms(db, workspace, provider.url)
        message = _send(db, workspace, make_customer(db, workspace, phone="13800138001"), "sms")
        assert dispatch().failed == 1
    reload(db, message)
    assert (message.state, message.reason, message.sent_at, len(provider.seen)) == ("failed", reason, None, 1)


def test_a_provider_specific_code_can_be_mapped_to_retry(db: Session, workspace: WorkspaceContext, dispatch) -> None:
    with LoopbackServer([Reply(200, {"code": "FLOW_CONTROL"}), Reply()]) as provider:
        configure_sms(db, workspace, provider.url, error_map={"FLOW_CONTROL": "transient"})
        message = _send(db, workspace, make_customer(db, workspace, phone="13800138002"), "sms")
        assert dispatch().sent == 1
    assert reload(db, message).state == "sent" and len(provider.seen) == 2


def _callback(payload: dict[str, Any], now: float, secret: str = SMS_SECRET) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    return body, sign_headers("app-1", secret, body, int(now))


def test_signed_provider_callbacks_deliver_and_opt_out(api: TestClient, db: Session, workspace: WorkspaceContext,
                                                      clock: FrozenClock, dispatch) -> None:
    with LoopbackServer([Reply(200, {"code": "OK", "message_id": "p-77"})]) as provider:
        configure_sms(db, workspace, provider.url)
        customer = make_customer(db, workspace, phone="13800138003")
        message = _send(db, workspace, customer, "sms")
        dispatch()
    body, headers = _callback({"reports": [{"message_id": "p-77", "status": "DELIVRD"}],
                               "replies": [{"from": "13800138003", "text": "TD"}]}, clock.now().timestamp())

    response = api.post(f"/api/v1/messaging/receipts/{workspace.id}/sms", content=body, headers=headers)

    assert response.status_code == 200
    assert response.json() == {"delivered": 1, "failed": 0, "replies": 1, "unmatched": 0}
    assert reload(db, message).state == "delivered" and message.replied_at is not None
    preference = db.scalars(select(ContactPreference)).one()
    assert (preference.customer_id, preference.channel, preference.purpose, preference.status,
            preference.source) == (customer, "sms", "marketing", "opted_out", "sms_reply")


@pytest.mark.parametrize("tamper", ["signature", "replay"])
def test_unsigned_or_replayed_callbacks_are_refused(api: TestClient, db: Session, workspace: WorkspaceContext,
                                                    clock: FrozenClock, tamper: str) -> None:
    configure_sms(db, workspace, "http://127.0.0.1:9/sms")
    sent_at = clock.now().timestamp() - (600 if tamper == "replay" else 0)
    body, headers = _callback({"replies": [{"from": "13800138003", "text": "TD"}]}, sent_at,
                              secret="not-the-secret!" if tamper == "signature" else SMS_SECRET)
    response = api.post(f"/api/v1/messaging/receipts/{workspace.id}/sms", content=body, headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "receipt_rejected")
    assert db.scalars(select(ContactPreference)).all() == []


def test_webhooks_are_signed_with_a_timestamp(db: Session, workspace: WorkspaceContext, clock: FrozenClock,
                                              dispatch) -> None:
    with LoopbackServer() as receiver:
        configure_webhook(db, workspace, receiver.url)
        message = _send(db, workspace, make_customer(db, workspace), "webhook")
        assert dispatch().sent == 1
    (request,) = receiver.seen
    now = clock.now().timestamp()
    timestamp, signature = request.headers["x-siyu-timestamp"], request.headers["x-siyu-signature"]
    assert verify_signature(WEBHOOK_SECRET, request.body, timestamp, signature, now)
    assert not verify_signature(WEBHOOK_SECRET, request.body + b" ", timestamp, signature, now)
    assert not verify_signature(WEBHOOK_SECRET, request.body, timestamp, signature, now + 301)  # a replay
    assert orjson.loads(request.body)["id"] == message.idempotency_key


def test_a_webhook_target_that_times_out_is_retried_later_not_lost(db: Session, workspace: WorkspaceContext,
                                                                   dispatch) -> None:
    with LoopbackServer([Reply(delay=0.6), Reply(delay=0.6)]) as receiver:
        configure_webhook(db, workspace, receiver.url, timeout_seconds=0.2)
        message = _send(db, workspace, make_customer(db, workspace), "webhook")
        stats = dispatch()
    reload(db, message)
    assert (stats.retried, message.state, message.reason, message.attempts) == (1, "queued", "timeout", 1)
    outcomes = db.scalars(select(MessageAttempt.outcome).where(MessageAttempt.outbox_id == message.id)).all()
    assert outcomes == ["ambiguous", "ambiguous"] and len(receiver.seen) == 2
