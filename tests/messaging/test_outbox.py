from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.messaging.errors import ChannelDisabled, IdempotencyKeyReused
from siyu.messaging.models import MessageAttempt, OutboxMessage, SandboxMessage
from siyu.messaging.sending import enqueue_message
from siyu.workspaces.service import WorkspaceContext
from tests.messaging.conftest import make_customer, no_policy_limits, reload, sandbox_count, sandbox_template, states


def test_a_message_goes_from_the_outbox_to_the_sandbox_personalised(db: Session, workspace: WorkspaceContext,
                                                                      dispatch) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace, name="李雷")
    template = sandbox_template(db, workspace)
    message = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", template_id=template,
                              idempotency_key="journey:1:step:1:c1")
    db.commit()
    assert message.state == "queued"

    stats = dispatch()

    assert (stats.claimed, stats.sent, stats.failed) == (1, 1, 0)
    received = db.scalars(select(SandboxMessage)).all()
    assert [(m.customer_id, m.content["text"]) for m in received] == [(customer, "李雷，本周新品上架")]
    reload(db, message)
    assert message.state == "delivered" and message.sent_at is not None
    attempts = db.scalars(select(MessageAttempt).where(MessageAttempt.outbox_id == message.id)).all()
    assert [(a.number, a.outcome) for a in attempts] == [(1, "delivered")]


def test_the_same_key_twice_sends_once_and_returns_the_first_message(db: Session, workspace: WorkspaceContext,
                                                                     dispatch) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    template = sandbox_template(db, workspace)
    first = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", template_id=template,
                            idempotency_key="coupon:issued:7")
    db.commit()
    dispatch()
    second = enqueue_message(db, workspace, customer_id=customer, channel="sandbox", template_id=template,
                             idempotency_key="coupon:issued:7")
    db.commit()
    dispatch()

    assert second.id == first.id
    assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    assert sandbox_count(db, workspace) == 1


def test_a_key_reused_for_another_customer_is_a_conflict(db: Session, workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    a, b = make_customer(db, workspace), make_customer(db, workspace)
    template = sandbox_template(db, workspace)
    enqueue_message(db, workspace, customer_id=a, channel="sandbox", template_id=template, idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        enqueue_message(db, workspace, customer_id=b, channel="sandbox", template_id=template, idempotency_key="k")


def test_a_channel_that_is_not_configured_is_refused_and_nothing_is_written(db: Session,
                                                                           workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace, phone="13800138000")
    with pytest.raises(ChannelDisabled):
        enqueue_message(db, workspace, customer_id=customer, channel="sms", content={"text": "hi"},
                        idempotency_key="k1")
    assert states(db, workspace) == {}


def test_a_message_due_later_waits_until_then(db: Session, workspace: WorkspaceContext, clock: FrozenClock,
                                              dispatch) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    enqueue_message(db, workspace, customer_id=customer, channel="sandbox", content={"text": "明天见"},
                    idempotency_key="later", due_at=clock.now() + timedelta(hours=2), purpose="service")
    db.commit()
    assert dispatch().claimed == 0
    clock.advance(timedelta(hours=2))
    assert dispatch().sent == 1
    assert states(db, workspace) == {"delivered": 1}


def test_messages_of_another_workspace_are_not_listed(db: Session, workspace: WorkspaceContext,
                                                     other_workspace: WorkspaceContext) -> None:
    from siyu.messaging.deliveries import list_messages

    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    enqueue_message(db, workspace, customer_id=customer, channel="sandbox", content={"text": "x"},
                    idempotency_key="k")
    db.commit()
    assert len(list_messages(db, workspace.id).items) == 1
    assert list_messages(db, other_workspace.id).items == []
