"""The bulk send other domains use for batch work (journey steps): `submit_messages`."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.messaging.errors import TemplateNotFound
from siyu.messaging.models import ContactUsage, OutboxMessage
from siyu.messaging.preferences import set_preference
from siyu.messaging.sending import submit_messages
from siyu.messaging.settings import update_policy
from siyu.workspaces.service import WorkspaceContext
from tests.messaging.conftest import make_customer, no_policy_limits, sandbox_template

_examples = itertools.count()


def outbox(db: Session, ws: WorkspaceContext) -> list[tuple[int, str, str, str | None]]:
    rows = db.execute(select(OutboxMessage.customer_id, OutboxMessage.idempotency_key, OutboxMessage.state,
                             OutboxMessage.reason).where(OutboxMessage.workspace_id == ws.id)
                      .order_by(OutboxMessage.idempotency_key)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_each_key_writes_one_message_decided_by_the_policy(db: Session, workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    a, b = make_customer(db, workspace), make_customer(db, workspace)
    set_preference(db, workspace.id, b, channel="sandbox", purpose="marketing", status="opted_out", source="test",
                   actor="test")
    template = sandbox_template(db, workspace)

    submitted = submit_messages(db, workspace, template_id=template, wanted=[(a, "k:a"), (b, "k:b")],
                                source="journey")

    assert {k: (s.state, s.reason, s.created) for k, s in submitted.items()} == {
        "k:a": ("queued", None, True), "k:b": ("suppressed", "opted_out", True)}
    assert outbox(db, workspace) == [(a, "k:a", "queued", None), (b, "k:b", "suppressed", "opted_out")]


def test_a_replayed_batch_returns_the_first_messages_and_reserves_nothing_again(db: Session,
                                                                               workspace: WorkspaceContext) -> None:
    update_policy(db, workspace.id, {"quiet_hours": None, "fatigue": None,
                                     "frequency_caps": [{"period": "day", "max": 5}]})
    db.commit()
    customers = [make_customer(db, workspace) for _ in range(3)]
    template = sandbox_template(db, workspace)
    wanted = [(c, f"journey:{c}:0:message") for c in customers]
    first = submit_messages(db, workspace, template_id=template, wanted=wanted)
    used = db.scalar(select(func.sum(ContactUsage.used)).where(ContactUsage.workspace_id == workspace.id))

    again = submit_messages(db, workspace, template_id=template, wanted=[*wanted, wanted[0]])

    assert {k: s.message_id for k, s in again.items()} == {k: s.message_id for k, s in first.items()}
    assert not any(s.created for s in again.values())
    assert db.scalar(select(func.count()).select_from(OutboxMessage)
                     .where(OutboxMessage.workspace_id == workspace.id)) == 3
    assert db.scalar(select(func.sum(ContactUsage.used)).where(ContactUsage.workspace_id == workspace.id)) == used


def test_an_unknown_template_refuses_the_whole_batch_and_writes_nothing(db: Session,
                                                                       workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    try:
        submit_messages(db, workspace, template_id=999_999, wanted=[(customer, "k:1")])
    except TemplateNotFound:
        pass
    else:
        raise AssertionError("an unknown template must be refused")
    assert outbox(db, workspace) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.integers(0, 5), max_size=6), min_size=1, max_size=4), cap=st.integers(1, 3))
def test_any_sequence_of_overlapping_batches_writes_each_key_once_within_the_cap(
        db: Session, workspace: WorkspaceContext, batches: list[list[int]], cap: int) -> None:
    """Keys repeat across and within batches; every key ends with exactly one message, and no
    customer gets more live (queued) marketing messages a day than the cap allows."""
    update_policy(db, workspace.id, {"quiet_hours": None, "fatigue": None,
                                     "frequency_caps": [{"period": "day", "max": cap}]})
    db.commit()
    example = next(_examples)
    customers = [make_customer(db, workspace) for _ in range(3)]
    template = sandbox_template(db, workspace, name=f"example {example}")
    run = f"example:{example}"
    seen: dict[str, int] = {}
    for batch in batches:
        wanted = [(customers[n % 3], f"{run}:{n}") for n in batch]
        for key, submitted in submit_messages(db, workspace, template_id=template, wanted=wanted).items():
            assert seen.setdefault(key, submitted.message_id) == submitted.message_id
    rows = db.execute(select(OutboxMessage.idempotency_key, OutboxMessage.customer_id, OutboxMessage.state)
                      .where(OutboxMessage.idempotency_key.like(f"{run}:%"))).all()
    assert sorted(k for k, _, _ in rows) == sorted(seen)
    for customer in customers:
        assert sum(1 for _, c, state in rows if c == customer and state == "queued") <= cap


def test_a_key_another_writer_stored_first_is_reported_not_created(db: Session, workspace: WorkspaceContext) -> None:
    """The race the key lookup cannot see: the insert skips the key and the writer is told."""
    from siyu.kit import clock
    from siyu.messaging.outbox import Draft, Sender, write_messages
    from siyu.messaging.policy import ContactPolicy
    from siyu.messaging.sending import enqueue_message
    from siyu.messaging.template_service import prepare

    no_policy_limits(db, workspace)
    a, b = make_customer(db, workspace), make_customer(db, workspace)
    template = sandbox_template(db, workspace)
    first = enqueue_message(db, workspace, customer_id=a, channel="sandbox", template_id=template,
                            idempotency_key="race:a")
    prepared = prepare(db, workspace.id, "sandbox", template_id=template)
    policy = ContactPolicy.load(db, workspace.id, workspace.timezone)

    written = write_messages(db, workspace, policy, Sender("sandbox", "marketing", "test"),
                             [Draft(a, "race:a", clock.now(), prepared), Draft(b, "race:b", clock.now(), prepared)])

    assert [w.created for w in written] == [False, True]
    assert outbox(db, workspace) == [(a, "race:a", "queued", None), (b, "race:b", "queued", None)]
    assert first.id != written[0].id
