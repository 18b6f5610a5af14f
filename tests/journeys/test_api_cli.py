"""The journey API and CLI end to end: define, publish, enrol, inspect; roles and workspaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.cli import app as cli
from siyu.config import Settings, get_settings
from siyu.workspaces.service import WorkspaceContext
from tests.journeys.conftest import customer, definition, steps

DOC = definition({"id": "tag_it", "type": "update_attribute", "key": "vip", "value": True, "next": "w"},
                 {"id": "w", "type": "wait", "duration": {"days": 1}, "next": None})


def test_define_publish_enrol_and_inspect(api: TestClient, db: Session, workspace: WorkspaceContext,
                                          engine: Engine) -> None:
    cid = customer(db, workspace, "u-1")
    created = api.post("/api/v1/journeys", json={"name": "欢迎", "definition": DOC}).json()
    assert api.post(f"/api/v1/journeys/{created['id']}/publish").status_code == 200
    enrolled = api.post(f"/api/v1/journeys/{created['id']}/enrol", json={"customer_ids": [cid, 999999], "key": "a"})
    assert enrolled.json()["entered"] == 1 and enrolled.json()["unknown"] == [999999]
    again = api.post(f"/api/v1/journeys/{created['id']}/enrol", json={"customer_ids": [cid], "key": "a"})
    assert (again.json()["entered"], again.json()["already_active"]) == (0, 1)
    steps(engine)
    (run,) = api.get(f"/api/v1/journeys/{created['id']}/customers/{cid}").json()
    assert (run["step_id"], run["seq"], run["version"]) == ("w", 1, 1)
    assert [(s["step_id"], s["outcome"]) for s in run["steps"]] == [("tag_it", "updated")]
    report = api.get(f"/api/v1/journeys/{created['id']}/analytics").json()
    assert (report["entered"], report["in_step"]) == (1, {"w": 1})
    assert api.post(f"/api/v1/journeys/{created['id']}/pause").json()["status"] == "paused"
    refused = api.post(f"/api/v1/journeys/{created['id']}/enrol", json={"customer_ids": [cid]})
    assert refused.status_code == 409 and refused.json()["code"] == "journey_state_conflict"


def test_roles_and_workspaces_are_enforced(api_as: Any, db: Session, workspace: WorkspaceContext,
                                           other_workspace: WorkspaceContext) -> None:
    mine: TestClient = api_as("operator")
    created = mine.post("/api/v1/journeys", json={"name": "J", "definition": DOC}).json()
    assert TestClient(mine.app).get("/api/v1/journeys").status_code == 401
    assert api_as("analyst").post("/api/v1/journeys", json={"name": "K", "definition": DOC}).status_code == 403
    assert api_as("analyst").get(f"/api/v1/journeys/{created['id']}").status_code == 200
    rival: TestClient = api_as("owner", other_workspace)
    assert rival.get(f"/api/v1/journeys/{created['id']}").status_code == 404
    assert rival.post(f"/api/v1/journeys/{created['id']}/publish").status_code == 404
    assert rival.get("/api/v1/journeys").json() == []


def test_templates_copy_into_drafts_that_name_what_is_missing(api: TestClient) -> None:
    keys = [t["key"] for t in api.get("/api/v1/journey-templates").json()]
    assert keys == ["welcome_series", "replenishment", "birthday_month", "wake_up", "post_purchase",
                    "high_value_follow_up"]
    copied = api.post("/api/v1/journey-templates/post_purchase/copy", json={"name": "购后关怀"})
    assert copied.status_code == 201
    assert {(i["step_id"], i["field"]) for i in copied.json()["issues"]} == {("tips", "template_id"),
                                                                            ("review", "template_id")}


def test_cli_validates_creates_publishes_and_enrols(db: Session, workspace: WorkspaceContext, settings: Settings,
                                                    tmp_path: Path, monkeypatch: Any, engine: Engine) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    cid = customer(db, workspace, "u-1")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(definition({"id": "a", "type": "wait", "duration": {"days": -2}, "next": None})))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(DOC))
    runner = CliRunner()
    result = runner.invoke(cli, ["journeys", "validate", str(bad), "-w", "acme"])
    assert result.exit_code == 1 and "step a: duration: must not be negative" in result.output
    result = runner.invoke(cli, ["journeys", "create", str(good), "--name", "CLI", "-w", "acme"])
    assert result.exit_code == 0, result.output
    journey_id = result.output.split()[1]
    assert runner.invoke(cli, ["journeys", "publish", journey_id, "-w", "acme"]).exit_code == 0
    result = runner.invoke(cli, ["journeys", "enrol", journey_id, "--customers", str(cid), "-w", "acme"])
    assert json.loads(result.output)["entered"] == 1
    assert runner.invoke(cli, ["journeys", "run-due"]).exit_code == 0
    result = runner.invoke(cli, ["journeys", "run", journey_id, "--customer", str(cid), "-w", "acme"])
    assert result.exit_code == 0 and "tag_it: updated" in result.output
    get_settings.cache_clear()


def test_console_pages_show_the_graph_the_inspector_and_the_inbox(app: Any, db: Session, workspace: WorkspaceContext,
                                                                 owner: dict[str, str], engine: Engine) -> None:
    from siyu.journeys import service

    cid = customer(db, workspace, "u-1")
    draft = service.create_journey(db, workspace, name="控制台", definition=DOC, actor="t")
    service.publish_journey(db, workspace, draft.journey.id, actor="t")
    service.enrol_customers(db, workspace, draft.journey.id, [cid], key="c")
    db.commit()
    steps(engine)
    with TestClient(app) as client:
        login = client.get("/login")
        token = login.text.split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"email": owner["email"], "password": owner["password"], "csrf_token": token})
        assert "控制台" in client.get("/journeys").text
        page = client.get(f"/journeys/{draft.journey.id}?customer_id={cid}")
        assert page.status_code == 200
        assert 'data-step-id="tag_it"' in page.text and 'data-run-id="' in page.text
        assert client.get("/staff-tasks?scope=all").status_code == 200
