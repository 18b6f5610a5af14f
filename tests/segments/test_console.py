"""Console pages of tags, segments and layering, through the logged-in console client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.customers.models import Identity
from siyu.jobs.worker import run_due_jobs
from siyu.rules.tree import parse_rule, to_json
from siyu.segments import builder as forms
from siyu.segments.models import Segment
from siyu.tags.models import Tag
from siyu.workspaces.service import WorkspaceContext, create_user, get_workspace
from tests.factories import order
from tests.web.conftest import Console, ingest, login, person

LOYAL = {"order": "r0,r1", "match": "all", "r0.kind": "order", "r0.measure": "count", "r0.op": "gte",
         "r0.value": "2", "r0.window": "90", "r1.kind": "order", "r1.measure": "total_spend_fen", "r1.op": "gte",
         "r1.value": "50000"}


@pytest.fixture
def console(app: Any, owner: dict[str, str]) -> Iterator[Console]:
    with TestClient(app) as client:
        yield Console(client, login(client, owner["email"], owner["password"]))


@pytest.fixture
def analyst(app: Any, db: Session, workspace: WorkspaceContext) -> Iterator[Console]:
    create_user(db, get_workspace(db, workspace.id), "analyst@acme.test", "分析师", "correct-horse", "analyst")
    db.commit()
    with TestClient(app) as client:
        yield Console(client, login(client, "analyst@acme.test", "correct-horse"))


def two_buyers(engine: Engine, workspace: WorkspaceContext) -> None:
    ingest(engine, workspace, [person(1), person(2), order("O-1", unionid="u-1", at="2026-10-01T10:00:00+08:00"),
                               order("O-2", unionid="u-1"), order("O-3", unionid="u-2")])


def test_the_builder_shows_the_live_count_and_places_errors_on_rows(console: Console, engine: Engine,
                                                                    workspace: WorkspaceContext) -> None:
    two_buyers(engine, workspace)
    page = console.get("/segments/new")
    assert page.status_code == 200 and 'id="builder"' in page.text
    counted = console.post("/segments/builder", htmx=True, data=LOYAL)
    assert counted.status_code == 200
    assert re.search(r'data-count="1"', counted.text)
    added = console.post("/segments/builder", htmx=True, data={**LOYAL, "action": "add_group"})
    assert 'data-group="g0"' in added.text and 'data-row="g0r0"' in added.text
    broken = console.post("/segments/builder", htmx=True, data={**LOYAL, "r0.window": "0"})
    assert 'data-row-error="r0"' in broken.text and "window: must be positive" in broken.text
    assert 'data-count=""' in broken.text


def test_saving_from_the_builder_creates_a_dynamic_segment(console: Console, engine: Engine, db: Session,
                                                           workspace: WorkspaceContext) -> None:
    two_buyers(engine, workspace)
    saved = console.post("/segments/new", data={**LOYAL, "name": "复购", "refresh_minutes": "60"})
    assert saved.status_code == 303
    segment = db.scalar(select(Segment).where(Segment.name == "复购"))
    assert segment is not None
    assert segment.rule == {"all": [
        {"kind": "order", "measure": "count", "op": "gte", "value": 2, "window": {"last_days": 90}},
        {"kind": "order", "measure": "total_spend_fen", "op": "gte", "value": 50000}]}
    run_due_jobs(engine)
    detail = console.get(saved.headers["location"])
    assert detail.status_code == 200 and 'data-state="fresh"' in detail.text and "客户001" in detail.text
    edit = console.get(f"/segments/{segment.id}/edit")
    assert edit.status_code == 200 and 'name="r1.value" value="50000"' in edit.text
    refused = console.post("/segments/new", data={**LOYAL, "r1.value": "", "name": "坏的"})
    assert refused.status_code == 422 and "value: must be a number" in refused.text


def test_the_builder_reads_back_every_kind_it_writes() -> None:
    rule = {"any": [
        {"kind": "tag", "op": "has_all", "tags": [1, 2]},
        {"not": {"kind": "profile", "field": "birthday", "op": "within_next_days", "value": 7}},
        {"all": [{"kind": "event", "event_type": "page_view", "aggregate": "count", "op": "gte", "value": 2,
                  "where": [{"key": "page", "op": "starts_with", "value": "/promo"}], "window": {"last_days": 30}},
                 {"not": {"kind": "bought", "category": "母婴", "op": "between", "value": {"min": 1, "max": 3}}},
                 {"kind": "lifecycle", "stages": ["sleeping", "lost"]},
                 {"kind": "attribute", "key": "vip", "op": "eq", "value": True},
                 {"kind": "rfm", "score": "m", "op": "gte", "value": 4},
                 {"kind": "tier", "tiers": ["gold", "diamond"]},
                 {"kind": "points", "op": "between", "value": {"min": 100, "max": 500}},
                 {"kind": "coupon", "state": "usable", "template_id": 3, "op": "gte", "value": 1,
                  "window": {"last_days": 30}}]}]}
    assert to_json(parse_rule(forms.to_rule(forms.from_rule(rule))[0])) == rule


def test_tag_pages_tag_customers_from_a_pasted_list(console: Console, engine: Engine, db: Session,
                                                    workspace: WorkspaceContext) -> None:
    two_buyers(engine, workspace)
    assert console.post("/tags/groups", data={"name": "意向度"}).status_code == 303
    created = console.post("/tags/new", data={"name": "高意向"})
    assert created.status_code == 303
    tag = db.scalar(select(Tag).where(Tag.name == "高意向"))
    assert tag is not None
    applied = console.post(f"/tags/{tag.id}/apply", data={"customers": "wechat_unionid\nu-1\nu-9\n"})
    assert applied.status_code == 303
    detail = console.get(f"/tags/{tag.id}")
    assert "客户001" in detail.text and "客户002" not in detail.text
    assert console.post("/tags/presets").status_code == 303
    listing = console.get("/tags").text
    assert "高客单价" in listing and 'data-state="pending"' in listing


def test_rfm_and_lifecycle_pages(console: Console, engine: Engine, workspace: WorkspaceContext) -> None:
    two_buyers(engine, workspace)
    assert "Not scored yet" in console.get("/segments/rfm?lang=en").text
    assert console.post("/segments/rfm/score").status_code == 303
    run_due_jobs(engine)
    page = console.get("/segments/rfm").text
    assert 'data-class="important_value"' in page and 'data-cell="55"' in page
    assert console.post("/segments/lifecycle/evaluate").status_code == 303
    run_due_jobs(engine)
    assert re.search(r'data-stage="new">.*?<div class="stat-value">1<', console.get("/segments/lifecycle").text,
                     re.S)


def test_a_customer_page_loads_their_layers(console: Console, engine: Engine, workspace: WorkspaceContext,
                                            db: Session) -> None:
    two_buyers(engine, workspace)
    console.post("/segments/lifecycle/evaluate")
    run_due_jobs(engine)
    customer_id = db.scalar(select(Identity.customer_id).where(Identity.value == "u-1"))
    fragment = console.get(f"/customers/{customer_id}/layers", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and 'data-lifecycle="active"' in fragment.text
    assert "<html" not in fragment.text
    assert "<html" in console.get(f"/customers/{customer_id}/layers").text


def test_analysts_see_segments_but_cannot_change_them(analyst: Console, db: Session) -> None:
    assert analyst.get("/segments").status_code == 200
    refused = analyst.post("/segments/new", data={**LOYAL, "name": "x"})
    assert refused.status_code == 403
    assert db.scalar(select(Segment)) is None
