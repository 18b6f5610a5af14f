"""Broadcasts (群发): audiences, preview, the fill, pacing, A/B variants, pause/resume/cancel, results."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock
from siyu.messaging.broadcasts import (
    cancel_broadcast,
    create_broadcast,
    fill_broadcast,
    pause_broadcast,
    preview_broadcast,
    resume_broadcast,
    start_broadcast,
    variant_of,
)
from siyu.messaging.models import Broadcast, ContactUsage, OutboxMessage
from siyu.messaging.preferences import set_preference
from siyu.messaging.sending import enqueue_message
from siyu.messaging.settings import update_policy
from siyu.messaging.tasks import dispatch_outbox
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event, order
from tests.messaging.conftest import make_customer, no_policy_limits, sandbox_count, sandbox_template, states


def _broadcast(db: Session, ws: WorkspaceContext, customers: list[int], template: int, **kwargs: object) -> int:
    broadcast = create_broadcast(db, ws, name="双11预热", channel="sandbox",
                                 audience={"kind": "list", "customer_ids": customers},
                                 variants=kwargs.pop("variants", [{"template_id": template}]), actor="test",
                                 **kwargs)  # type: ignore[arg-type]
    db.commit()
    return broadcast.id


def test_the_preview_says_how_many_go_and_why_the_others_do_not_and_writes_nothing(
        db: Session, workspace: WorkspaceContext) -> None:
    update_policy(db, workspace.id, {"quiet_hours": None})
    customers = [make_customer(db, workspace) for _ in range(6)]
    set_preference(db, workspace.id, customers[0], channel="*", purpose="marketing", status="opted_out", source="t",
                   actor="t")
    enqueue_message(db, workspace, customer_id=customers[1], channel="sandbox", content={"text": "早鸟"},
                    idempotency_key="earlier")
    template = sandbox_template(db, workspace)
    broadcast = _broadcast(db, workspace, customers, template)
    usage_before = db.scalar(select(func.sum(ContactUsage.used)))

    preview = preview_broadcast(db, workspace, broadcast)

    assert (preview.audience_size, preview.send, preview.defer, preview.suppress) == (6, 4, 0, 2)
    assert preview.suppressed_by_rule == {"opted_out": 1, "frequency_cap:marketing:*:day": 1}
    assert db.scalar(select(func.count()).select_from(OutboxMessage)
                     .where(OutboxMessage.broadcast_id == broadcast)) == 0
    assert db.scalar(select(func.sum(ContactUsage.used))) == usage_before


def test_a_broadcast_runs_through_the_workers_and_ends_with_results(api: TestClient, db: Session, engine: Engine,
                                                                    workspace: WorkspaceContext) -> None:
    no_policy_limits(db, workspace)
    customers = [make_customer(db, workspace) for _ in range(5)]
    set_preference(db, workspace.id, customers[0], channel="sandbox", purpose="marketing", status="opted_out",
                   source="t", actor="t")
    db.commit()
    template = sandbox_template(db, workspace)
    created = api.post("/api/v1/messaging/broadcasts", json={
        "name": "会员日", "channel": "sandbox", "template_id": template,
        "audience": {"kind": "list", "customer_ids": [*customers, 999_999]}})
    assert created.status_code == 201
    body = created.json()
    assert (body["state"], body["audience_size"], body["audience"]["unknown"]) == ("draft", 5, ["999999"])

    assert api.post(f"/api/v1/messaging/broadcasts/{body['id']}/start").json()["state"] == "scheduled"
    run_due_jobs(engine)  # the fill job
    dispatch_outbox(engine)  # what every worker's loop does

    detail = api.get(f"/api/v1/messaging/broadcasts/{body['id']}").json()
    assert (detail["state"], detail["filled_count"]) == ("completed", 5)
    (results,) = detail["results"]
    assert (results["total"], results["sent"], results["suppressed_by_rule"]) == (5, 4, {"opted_out": 1})
    assert sandbox_count(db, workspace) == 4


def test_a_broadcast_to_nobody_is_refused_and_writes_nothing(api: TestClient, db: Session,
                                                             workspace: WorkspaceContext) -> None:
    template = sandbox_template(db, workspace)
    created = api.post("/api/v1/messaging/broadcasts", json={
        "name": "空", "channel": "sandbox", "template_id": template,
        "audience": {"kind": "list", "customer_ids": [42]}})
    response = api.post(f"/api/v1/messaging/broadcasts/{created.json()['id']}/start")
    assert (response.status_code, response.json()["code"]) == (422, "empty_audience")
    assert api.get(f"/api/v1/messaging/broadcasts/{created.json()['id']}").json()["state"] == "draft"
    assert states(db, workspace) == {}


def test_variants_split_the_audience_by_their_percentages(db: Session, engine: Engine,
                                                          workspace: WorkspaceContext, dispatch) -> None:
    no_policy_limits(db, workspace)
    customers = [make_customer(db, workspace, name=f"客{i}") for i in range(60)]
    a = sandbox_template(db, workspace, name="A", body="A：{{ customer.name }}")
    b = sandbox_template(db, workspace, name="B", body="B：{{ customer.name }}")
    variants = [{"name": "A", "template_id": a, "percent": 30}, {"name": "B", "template_id": b, "percent": 70}]
    broadcast = _broadcast(db, workspace, customers, a, variants=variants)
    start_broadcast(db, workspace, broadcast, actor="t")
    db.commit()
    fill_broadcast(engine, broadcast)
    dispatch()

    rows = db.execute(select(OutboxMessage.customer_id, OutboxMessage.variant, OutboxMessage.content)
                      .where(OutboxMessage.broadcast_id == broadcast)).all()
    checked = [{"name": "A", "percent": 30}, {"name": "B", "percent": 70}]
    assert all(variant == variant_of(broadcast, cid, checked)["name"] for cid, variant, _ in rows)
    assert all(content["text"].startswith(f"{variant}：") for _, variant, content in rows)
    split = Counter(variant for _, variant, _ in rows)
    assert split["A"] + split["B"] == 60 and 8 <= split["A"] <= 28


def test_a_paced_broadcast_spaces_its_messages(db: Session, engine: Engine, workspace: WorkspaceContext,
                                               clock: FrozenClock) -> None:
    no_policy_limits(db, workspace)
    customers = [make_customer(db, workspace) for _ in range(4)]
    broadcast = _broadcast(db, workspace, customers, sandbox_template(db, workspace), rate_per_minute=30)
    start_broadcast(db, workspace, broadcast, actor="t")
    db.commit()
    fill_broadcast(engine, broadcast)
    due = db.scalars(select(OutboxMessage.due_at).where(OutboxMessage.broadcast_id == broadcast)
                     .order_by(OutboxMessage.due_at)).all()
    assert [d - clock.now() for d in due] == [timedelta(seconds=s) for s in (0, 2, 4, 6)]


def test_pause_holds_resume_releases_and_cancel_gives_the_inventory_back(
        db: Session, engine: Engine, workspace: WorkspaceContext, dispatch) -> None:
    update_policy(db, workspace.id, {"quiet_hours": None, "fatigue": None})
    customers = [make_customer(db, workspace) for _ in range(3)]
    broadcast = _broadcast(db, workspace, customers, sandbox_template(db, workspace))
    start_broadcast(db, workspace, broadcast, actor="t")
    db.commit()
    fill_broadcast(engine, broadcast)
    pause_broadcast(db, workspace, broadcast, actor="t")
    db.commit()
    assert dispatch().claimed == 0 and states(db, workspace) == {"paused": 3}

    resume_broadcast(db, workspace, broadcast, actor="t")
    db.commit()
    assert states(db, workspace) == {"queued": 3}
    assert db.scalar(select(func.sum(ContactUsage.used))) == 6  # a day and a week unit each
    cancel_broadcast(db, workspace, broadcast, actor="t")
    db.commit()
    assert dispatch().claimed == 0 and states(db, workspace) == {"cancelled": 3}
    assert db.scalar(select(func.sum(ContactUsage.used))) == 0


def test_a_csv_audience_finds_customers_by_phone(api: TestClient, db: Session, workspace: WorkspaceContext) -> None:
    a = make_customer(db, workspace, phone="13900000001")
    b = make_customer(db, workspace)
    csv = f"phone,customer_id\n139 0000 0001,\n,{b}\n13900000099,\n"
    response = api.post("/api/v1/messaging/broadcasts", json={
        "name": "CSV", "channel": "sandbox", "template_id": sandbox_template(db, workspace),
        "audience": {"kind": "csv", "csv": csv}})
    assert response.status_code == 201
    body = response.json()
    assert (body["audience_size"], body["audience"]["unknown"]) == (2, ["phone:13900000099"])
    assert a != b


def test_a_tag_is_an_audience(db: Session, workspace: WorkspaceContext) -> None:
    from siyu.tags.service import create_tag, tag_customers

    customers = [make_customer(db, workspace) for _ in range(3)]
    tag = create_tag(db, workspace, name="高价值", actor="t")
    tag_customers(db, workspace, tag.id, actor="t", customer_ids=customers[:2])
    db.commit()
    broadcast = create_broadcast(db, workspace, name="b", channel="sandbox", audience={"kind": "tag", "tag_id": tag.id},
                                 variants=[{"template_id": sandbox_template(db, workspace)}], actor="t")
    assert broadcast.audience_size == 2


def test_results_count_clicks_replies_and_orders_within_the_window(api: TestClient, db: Session, engine: Engine,
                                                                   workspace: WorkspaceContext, clock: FrozenClock,
                                                                   dispatch) -> None:
    no_policy_limits(db, workspace)
    buyer = make_customer(db, workspace, unionid="u-buyer")
    talker = make_customer(db, workspace, unionid="u-talker")
    late = make_customer(db, workspace, unionid="u-late")
    broadcast = _broadcast(db, workspace, [buyer, talker, late], sandbox_template(db, workspace))
    start_broadcast(db, workspace, broadcast, actor="t")
    db.commit()
    fill_broadcast(engine, broadcast)
    dispatch()
    sent_at = clock.now()
    clock.set(sent_at + timedelta(days=9))
    ingested = api.post("/api/v1/events/batch", json={"events": [
        order("O-1", unionid="u-buyer", at=(sent_at + timedelta(days=2)).isoformat()),
        event("message_received", identities={"wechat_unionid": "u-talker"},
              at=(sent_at + timedelta(days=2)).isoformat(), properties={"text": "有小码吗？"}),
        order("O-2", unionid="u-late", at=(sent_at + timedelta(days=8)).isoformat()),  # after the 7-day window
    ]})
    assert ingested.json()["accepted"] == 3
    run_due_jobs(engine)

    (results,) = api.get(f"/api/v1/messaging/broadcasts/{broadcast}").json()["results"]
    assert (results["orders"], results["revenue_fen"], results["replied"]) == (1, 29800, 1)


def test_the_channel_pace_caps_a_broadcast(db: Session, workspace: WorkspaceContext) -> None:
    from siyu.messaging.settings import configure_channel

    configure_channel(db, workspace.id, "sandbox", {"rate_per_minute": 120})
    customers = [make_customer(db, workspace)]
    template = sandbox_template(db, workspace)
    faster = create_broadcast(db, workspace, name="快", channel="sandbox", audience={"kind": "all"},
                              variants=[{"template_id": template}], rate_per_minute=600, actor="t")
    slower = create_broadcast(db, workspace, name="慢", channel="sandbox", audience={"kind": "all"},
                              variants=[{"template_id": template}], rate_per_minute=30, actor="t")
    unpaced = create_broadcast(db, workspace, name="默认", channel="sandbox",
                               audience={"kind": "list", "customer_ids": customers},
                               variants=[{"template_id": template}], actor="t")
    assert (faster.rate_per_minute, slower.rate_per_minute, unpaced.rate_per_minute) == (120, 30, 120)


@pytest.mark.pg
def test_two_fills_of_one_broadcast_on_postgresql_write_each_recipient_once(pg_engine: Engine) -> None:
    import threading
    import uuid

    from sqlalchemy import delete

    from siyu.db.session import session_factory
    from siyu.events.service import ingest_events
    from siyu.messaging.template_service import create_template
    from siyu.workspaces.service import context_of, create_workspace

    sessions = session_factory(pg_engine)
    slug = f"fill-{uuid.uuid4().hex[:8]}"
    with sessions() as db:
        ctx = context_of(create_workspace(db, slug, "Two fills"))
        ingest_events(db, ctx, [{"id": f"{slug}-{i}", "type": "identify", "occurred_at": "2026-11-01T10:00:00+08:00",
                                 "identities": {"wechat_unionid": f"{slug}-u{i}"}} for i in range(600)])
        template = create_template(db, ctx, name="t", channel="sandbox", kind="text", body="hi", actor="t")
        broadcast = create_broadcast(db, ctx, name="b", channel="sandbox", audience={"kind": "all"},
                                     variants=[{"template_id": template.id}], actor="t")
        start_broadcast(db, ctx, broadcast.id, actor="t")
        db.commit()
    threads = [threading.Thread(target=fill_broadcast, args=(pg_engine, broadcast.id, 100)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        with sessions() as db:
            rows = db.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.broadcast_id
                                                                                   == broadcast.id))
            held = db.scalar(select(func.sum(ContactUsage.used)).where(ContactUsage.workspace_id == ctx.id))
            filled = db.scalar(select(Broadcast.filled_count).where(Broadcast.id == broadcast.id))
            assert (rows, held, filled) == (600, 1200, 600)  # one message each, a day and a week unit each
    finally:
        with sessions() as db:
            for table in (OutboxMessage, ContactUsage):
                db.execute(delete(table).where(table.workspace_id == ctx.id))
            db.commit()
