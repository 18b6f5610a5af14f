"""The membership console: set-up of the programme and the ladder, and a member's page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from siyu.loyalty.service import award_points
from siyu.workspaces.service import WorkspaceContext, create_user, get_workspace
from tests.factories import order
from tests.loyalty.conftest import LADDER, ingest, member, run_jobs, setup_programme
from tests.web.conftest import Console, login


@pytest.fixture
def console(app: Any, owner: dict[str, str]) -> Iterator[Console]:
    with TestClient(app) as client:
        yield Console(client, login(client, owner["email"], owner["password"]))


def test_a_workspace_without_a_programme_is_offered_to_set_one_up(console: Console, db: Session) -> None:
    page = console.get("/loyalty")
    assert page.status_code == 200 and 'id="no-programme"' in page.text
    saved = console.post("/loyalty/programme", data={"name": "小林会员"})
    assert (saved.status_code, saved.headers["location"]) == (303, "/loyalty")
    page = console.get("/loyalty").text
    assert 'data-tier="member"' in page and "小林会员" in page


def test_the_ladder_is_edited_as_json_and_refused_when_unordered(console: Console, db: Session,
                                                                 workspace: WorkspaceContext) -> None:
    setup_programme(db, workspace)
    tiers = [t.model_dump() for t in LADDER]
    tiers[2]["threshold"] = 50
    refused = console.post("/loyalty/tiers", data={"tiers": json.dumps({"tiers": tiers})})
    assert refused.status_code == 422
    assert "thresholds must rise" in refused.text
    tiers[2]["threshold"] = 900_000
    assert console.post("/loyalty/tiers", data={"tiers": json.dumps({"tiers": tiers})}).status_code == 303
    assert "¥9,000.00" in console.get("/loyalty").text


def test_a_member_page_shows_tier_progress_ledger_and_coupons(console: Console, db: Session,
                                                              workspace: WorkspaceContext, engine: Engine) -> None:
    setup_programme(db, workspace)
    m = member(db, workspace)
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00"))
    run_jobs(engine)
    award_points(db, workspace, m.customer_id, 50, "welcome", "welcome gift")
    db.commit()
    page = console.get(f"/loyalty/members/{m.customer_id}")
    assert page.status_code == 200
    assert "M00000001" in page.text and 'data-stat="points"' in page.text
    assert page.text.count("data-entry=") == 2 and "welcome gift" in page.text
    assert "¥702.00" in page.text  # still missing to 银卡 (¥1,000 − ¥298)
    lookup = console.get(f"/loyalty/member?customer_id={m.customer_id}", follow_redirects=False)
    assert lookup.headers["location"] == f"/loyalty/members/{m.customer_id}"
    assert console.get("/loyalty/members/999").status_code == 404


def test_analysts_see_the_programme_but_cannot_change_it(app: Any, db: Session, workspace: WorkspaceContext) -> None:
    setup_programme(db, workspace)
    create_user(db, get_workspace(db, workspace.id), "analyst@acme.test", "分析师", "correct-horse", "analyst")
    db.commit()
    with TestClient(app) as client:
        analyst = Console(client, login(client, "analyst@acme.test", "correct-horse"))
        page = analyst.get("/loyalty").text
        assert 'data-tier="silver"' in page and 'id="tier-editor"' not in page
        assert analyst.post("/loyalty/programme", data={"name": "x"}).status_code == 403
