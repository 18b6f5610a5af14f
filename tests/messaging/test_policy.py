"""The contact policy, rule by rule, through the send API every domain uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.messaging.models import ContactUsage, MessageEvent, OneTimeConsent
from siyu.messaging.preferences import grant_one_time_consents, set_preference
from siyu.messaging.quotas import quota_rows, set_quota
from siyu.messaging.sending import enqueue_message
from siyu.messaging.settings import update_policy
from siyu.workspaces.service import WorkspaceContext
from tests.messaging.conftest import make_customer, no_policy_limits, reload, sandbox_count, states

NIGHT = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 22:00 in Asia/Shanghai
_keys = iter(range(1, 10_000))


def send(db: Session, ws: WorkspaceContext, customer: int, *, purpose: str = "marketing", channel: str = "sandbox",
         **kwargs: Any) -> Any:
    message = enqueue_message(db, ws, customer_id=customer, channel=channel, content={"text": "上新啦"},
                              purpose=purpose, idempotency_key=f"test:{next(_keys)}", **kwargs)
    db.commit()
    return message


def used(db: Session, ws: WorkspaceContext) -> int:
    return int(db.scalar(select(func.coalesce(func.sum(ContactUsage.used), 0))
                         .where(ContactUsage.workspace_id == ws.id)) or 0)


def test_opted_out_customer_gets_no_marketing_and_the_rule_is_recorded(db: Session, workspace: WorkspaceContext,
                                                                       dispatch) -> None:
    customer = make_customer(db, workspace)
    set_preference(db, workspace.id, customer, channel="sandbox", purpose="marketing", status="opted_out",
                   source="test", actor="test")
    message = send(db, workspace, customer)
    dispatch()
    assert (message.state, message.reason) == ("suppressed", "opted_out")
    assert sandbox_count(db, workspace) == 0
    assert used(db, workspace) == 0


def test_a_service_message_ignores_a_marketing_opt_out_but_never_a_block(db: Session, workspace: WorkspaceContext
                                                                        ) -> None:
    customer = make_customer(db, workspace)
    set_preference(db, workspace.id, customer, channel="*", purpose="marketing", status="opted_out", source="t",
                   actor="t")
    assert send(db, workspace, customer, purpose="service").state == "queued"
    set_preference(db, workspace.id, customer, channel="sandbox", purpose="*", status="blocked", source="t", actor="t")
    blocked = send(db, workspace, customer, purpose="service")
    assert (blocked.state, blocked.reason) == ("suppressed", "blocked")


def test_the_most_specific_preference_decides(db: Session, workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    customer = make_customer(db, workspace)
    set_preference(db, workspace.id, customer, channel="*", purpose="marketing", status="opted_out", source="t",
                   actor="t")
    set_preference(db, workspace.id, customer, channel="sandbox", purpose="marketing", status="opted_in",
                   source="t", actor="t")
    assert send(db, workspace, customer).state == "queued"


def test_an_opt_in_is_needed_where_the_workspace_requires_one(db: Session, workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    update_policy(db, workspace.id, {"require_opt_in": ["sandbox:marketing"]})
    customer = make_customer(db, workspace)
    refused = send(db, workspace, customer)
    set_preference(db, workspace.id, customer, channel="sandbox", purpose="marketing", status="opted_in",
                   source="form", actor="t")
    accepted = send(db, workspace, customer)
    assert (refused.state, refused.reason, accepted.state) == ("suppressed", "no_consent", "queued")


def test_quiet_hours_defer_marketing_to_the_next_morning_in_the_workspace_zone(
        db: Session, workspace: WorkspaceContext, clock: FrozenClock, dispatch) -> None:
    clock.set(NIGHT)
    customer = make_customer(db, workspace)
    message = send(db, workspace, customer)
    assert (message.state, message.reason) == ("deferred", "quiet_hours")
    assert message.due_at == datetime(2026, 11, 21, 0, 30, tzinfo=UTC)  # 08:30 Shanghai
    assert dispatch().claimed == 0
    clock.set(datetime(2026, 11, 21, 0, 30, tzinfo=UTC))
    assert dispatch().sent == 1
    assert sandbox_count(db, workspace) == 1


def test_a_droppable_message_inside_quiet_hours_is_dropped_not_deferred(db: Session, workspace: WorkspaceContext,
                                                                        clock: FrozenClock) -> None:
    clock.set(NIGHT)
    message = send(db, workspace, make_customer(db, workspace), droppable=True)
    assert (message.state, message.reason) == ("suppressed", "quiet_hours")
    assert used(db, workspace) == 0


def test_service_messages_go_out_at_night(db: Session, workspace: WorkspaceContext, clock: FrozenClock) -> None:
    clock.set(NIGHT)
    assert send(db, workspace, make_customer(db, workspace), purpose="service").state == "queued"


def test_at_most_one_marketing_message_a_day_and_three_a_week_across_channels(
        db: Session, workspace: WorkspaceContext, clock: FrozenClock) -> None:
    update_policy(db, workspace.id, {"quiet_hours": None, "fatigue": None})
    db.commit()
    customer = make_customer(db, workspace)
    clock.set(datetime(2026, 11, 16, 4, 0, tzinfo=UTC))  # Monday noon in Shanghai
    outcomes = []
    for _ in range(5):
        outcomes.append([send(db, workspace, customer).reason, send(db, workspace, customer).reason])
        clock.advance(timedelta(days=1))
    assert outcomes == [[None, "frequency_cap:marketing:*:day"], [None, "frequency_cap:marketing:*:day"],
                        [None, "frequency_cap:marketing:*:day"], ["frequency_cap:marketing:*:week"] * 2,
                        ["frequency_cap:marketing:*:week"] * 2]
    clock.advance(timedelta(days=2))  # the next Monday: a new week
    assert send(db, workspace, customer).state == "queued"


def test_a_transactional_message_ignores_marketing_caps(db: Session, workspace: WorkspaceContext) -> None:
    customer = make_customer(db, workspace)
    assert send(db, workspace, customer).state == "queued"
    assert send(db, workspace, customer).reason == "frequency_cap:marketing:*:day"
    assert [send(db, workspace, customer, purpose="service").state for _ in range(3)] == ["queued"] * 3


def test_platform_quotas_are_data_that_a_workspace_can_change(db: Session, workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    defaults = [(q.channel, q.name, q.scope, q.period, q.max_count) for q in quota_rows(db, workspace.id)]
    assert defaults == [("wecom", "group_send_per_customer_day", "customer", "day", 1)]
    set_quota(db, workspace.id, channel="sandbox", name="per_customer_day", scope="customer", period="day",
              max_count=2, purposes=[])
    db.commit()
    customer = make_customer(db, workspace)
    reasons = [send(db, workspace, customer, purpose="service").reason for _ in range(3)]
    assert reasons == [None, None, "platform_quota:sandbox:per_customer_day"]
    set_quota(db, workspace.id, channel="sandbox", name="per_customer_day", scope="customer", period="day",
              max_count=2, purposes=[], active=False)
    db.commit()
    assert send(db, workspace, customer, purpose="service").state == "queued"


def test_a_staff_quota_counts_per_staff_member(db: Session, workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    set_quota(db, workspace.id, channel="sandbox", name="per_staff_day", scope="staff", period="day", max_count=1,
              purposes=["service"])
    a, b = make_customer(db, workspace), make_customer(db, workspace)
    first = send(db, workspace, a, purpose="service", staff_id="s-1")
    second = send(db, workspace, b, purpose="service", staff_id="s-1")
    other_staff = send(db, workspace, b, purpose="service", staff_id="s-2")
    assert [first.reason, second.reason, other_staff.reason] == [None, "platform_quota:sandbox:per_staff_day", None]


def test_a_customer_who_ignored_the_last_messages_cools_down(db: Session, workspace: WorkspaceContext,
                                                             clock: FrozenClock, dispatch) -> None:
    update_policy(db, workspace.id, {"quiet_hours": None, "frequency_caps": [],
                                     "fatigue": {"ignored_messages": 2, "cooldown_days": 10}})
    db.commit()
    customer = make_customer(db, workspace)
    for _ in range(2):
        send(db, workspace, customer)
        dispatch()
        clock.advance(timedelta(days=1))
    tired = send(db, workspace, customer)
    assert (tired.state, tired.reason) == ("suppressed", "fatigue")
    clock.advance(timedelta(days=9))  # ten days after the last ignored message
    assert send(db, workspace, customer).state == "queued"


def test_an_engaged_message_breaks_the_fatigue_streak(db: Session, workspace: WorkspaceContext, dispatch) -> None:
    from siyu.messaging.models import OutboxMessage

    update_policy(db, workspace.id, {"quiet_hours": None, "frequency_caps": [],
                                     "fatigue": {"ignored_messages": 2, "cooldown_days": 10}})
    db.commit()
    customer = make_customer(db, workspace)
    first = send(db, workspace, customer)
    send(db, workspace, customer)
    dispatch()
    db.execute(OutboxMessage.__table__.update().where(OutboxMessage.id == first.id)
               .values(engaged_at=first.created_at))
    db.commit()
    assert send(db, workspace, customer).state == "queued"


def test_a_blackout_window_defers_marketing_to_its_end(db: Session, workspace: WorkspaceContext,
                                                       clock: FrozenClock) -> None:
    update_policy(db, workspace.id, {"calendar": [{"name": "春节", "kind": "blackout", "start": "2026-11-20T00:00:00",
                                                   "end": "2026-11-23T10:00:00"}]})
    db.commit()
    message = send(db, workspace, make_customer(db, workspace))
    assert (message.state, message.reason) == ("deferred", "blackout:春节")
    assert message.due_at == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_a_boost_window_raises_the_caps(db: Session, workspace: WorkspaceContext) -> None:
    update_policy(db, workspace.id, {"calendar": [{"name": "双11", "kind": "boost", "start": "2026-11-20T00:00:00",
                                                   "end": "2026-11-21T00:00:00", "cap_multiplier": 2}]})
    db.commit()
    customer = make_customer(db, workspace)
    assert [send(db, workspace, customer).reason for _ in range(3)] == [None, None, "frequency_cap:marketing:*:day"]


def test_the_holdout_never_receives_marketing_but_gets_service(db: Session, workspace: WorkspaceContext) -> None:
    from siyu.messaging.holdout import refresh_holdout
    from siyu.messaging.policy import in_holdout
    from siyu.messaging.settings import load_policy

    no_policy_limits(db, workspace)
    update_policy(db, workspace.id, {"holdout": {"share": 0.5, "draw": "q4"}})
    db.commit()
    customers = [make_customer(db, workspace) for _ in range(12)]
    policy = load_policy(db, workspace.id)
    held = [c for c in customers if in_holdout(policy, workspace.id, c)]
    assert 0 < len(held) < len(customers)
    for customer in customers:
        message = send(db, workspace, customer)
        assert message.reason == ("holdout" if customer in held else None)
    assert all(send(db, workspace, c, purpose="service").state == "queued" for c in held)
    assert refresh_holdout(db, workspace.id) == len(held)


def test_a_one_time_consent_allows_exactly_one_send(db: Session, workspace: WorkspaceContext, dispatch) -> None:
    no_policy_limits(db, workspace)
    update_policy(db, workspace.id, {"one_time_consent_channels": ["sandbox"]})
    customer = make_customer(db, workspace)
    db.commit()
    assert send(db, workspace, customer, purpose="service").reason == "no_subscription_consent"
    grant_one_time_consents(db, workspace.id, customer, channel="sandbox")
    db.commit()
    granted = send(db, workspace, customer, purpose="service")
    spent = send(db, workspace, customer, purpose="service")
    dispatch()
    assert (granted.state, spent.reason) == ("queued", "no_subscription_consent")
    consent = db.scalars(select(OneTimeConsent)).one()
    assert consent.outbox_id == granted.id and consent.used_at is not None


def test_the_policy_is_checked_again_when_the_message_goes(db: Session, workspace: WorkspaceContext,
                                                           dispatch) -> None:
    customer = make_customer(db, workspace)
    message = send(db, workspace, customer)
    assert used(db, workspace) == 2  # its day and its week
    set_preference(db, workspace.id, customer, channel="sandbox", purpose="marketing", status="opted_out",
                   source="sms_reply", actor="t")
    db.commit()
    stats = dispatch()
    reload(db, message)
    assert (stats.suppressed, message.state, message.reason) == (1, "suppressed", "opted_out")
    assert sandbox_count(db, workspace) == 0
    assert used(db, workspace) == 0  # the inventory it held is given back
    events = db.scalars(select(MessageEvent).where(MessageEvent.outbox_id == message.id)).all()
    assert [(e.type, e.reason) for e in events] == [("suppressed", "opted_out")]


def test_a_customer_without_an_address_on_the_channel_is_suppressed(db: Session, workspace: WorkspaceContext) -> None:
    from siyu.messaging.settings import configure_channel

    configure_channel(db, workspace.id, "sms", {"config": {"url": "http://127.0.0.1:9/sms", "app_key": "k",
                                                           "secret": "s" * 16}})
    db.commit()
    message = send(db, workspace, make_customer(db, workspace), channel="sms", purpose="service")
    assert (message.state, message.reason) == ("suppressed", "no_address")
    assert states(db, workspace) == {"suppressed": 1}
