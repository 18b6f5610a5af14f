"""The coupons console: templates with their stats, creating and pausing a template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.coupons.service import issue_coupon, redeem_coupon
from siyu.workspaces.service import WorkspaceContext
from tests.loyalty.conftest import customer
from tests.web.conftest import Console, login


@pytest.fixture
def console(app: Any, owner: dict[str, str]) -> Iterator[Console]:
    with TestClient(app) as client:
        yield Console(client, login(client, owner["email"], owner["password"]))


def test_templates_show_their_stats_and_can_be_paused(console: Console, db: Session,
                                                      workspace: WorkspaceContext) -> None:
    template = {"name": "满200减20", "kind": "threshold_off", "amount_off_fen": 2000, "threshold_fen": 20_000,
                "valid_days": 30}
    created = console.post("/coupons/templates", data={"template": json.dumps(template, ensure_ascii=False)})
    assert created.status_code == 303
    path = created.headers["location"]
    template_id = int(path.rsplit("/", 1)[1])
    coupon = issue_coupon(db, workspace, template_id, customer(db, workspace, "u-1"), "k")
    issue_coupon(db, workspace, template_id, customer(db, workspace, "u-2"), "k2")
    redeem_coupon(db, workspace, coupon.code, "O-1", 30_000)
    db.commit()
    listing = console.get("/coupons").text
    assert f'data-template-id="{template_id}"' in listing and "50.0%" in listing and "¥300.00" in listing
    detail = console.get(path).text
    assert 'data-stat="gmv"' in detail and detail.count("data-coupon=") == 2
    assert coupon.code not in detail  # codes are bearer secrets: the console shows a prefix only
    assert console.post(f"{path}/status", data={"status": "paused"}).status_code == 303
    assert "paused" in console.get(path).text


def test_a_bad_template_gets_an_error_page_and_creates_nothing(console: Console) -> None:
    response = console.post("/coupons/templates", data={"template": json.dumps({"name": "x", "kind": "amount_off"})})
    assert response.status_code == 422
    assert 'data-template-id=' not in console.get("/coupons").text
