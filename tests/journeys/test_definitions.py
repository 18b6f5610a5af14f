"""Bad graphs are refused with the step id and the reason; publishing refuses an invalid draft."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.journeys.definitions import parse_definition
from siyu.journeys.models import JourneyVersion
from tests.journeys.conftest import definition

WAIT = {"id": "w", "type": "wait", "duration": {"days": 1}, "next": None}


def issues_of(doc: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    _, issues = parse_definition(doc)
    return [(i.step_id, i.field, i.message) for i in issues]


@pytest.mark.parametrize(("doc", "step_id", "field", "words"), [
    (definition({"id": "a", "type": "update_attribute", "key": "k", "value": 1, "next": "b"},
                {"id": "b", "type": "condition", "rule": {"kind": "profile", "field": "city", "op": "is_set"},
                 "then": "a", "else": None}),
     "a", "next", "cycle that passes no wait"),
    (definition({"id": "a", "type": "exit"}, {"id": "lost", "type": "exit"}), "lost", "id", "not reachable"),
    (definition({"id": "a", "type": "update_attribute", "key": "k", "value": 1, "next": "nowhere"}),
     "a", "next", "does not exist: 'nowhere'"),
    (definition({"id": "ab", "type": "split", "branches": [{"key": "A", "percent": 60, "next": None},
                                                           {"key": "B", "percent": 30, "next": None}]}),
     "ab", "branches", "sum to 100, they sum to 90"),
    (definition({"id": "w", "type": "wait", "duration": {"days": -1}, "next": None}), "w", "duration",
     "must not be negative"),
    (definition({"id": "c", "type": "condition", "rule": {"kind": "profile", "field": "nope", "op": "eq"},
                 "then": None, "else": None}), "c", "rule.field", "not allowed"),
    (definition({"id": "w", "type": "wait", "until_event": {"event_type": "order_paid"}, "next": None}),
     "w", "timeout", "needs a timeout"),
    (definition({"id": "t", "type": "staff_task", "title": "call", "sla": {"hours": 2},
                 "remind_before": {"hours": 3}}), "t", "remind_before", "shorter than the sla"),
])
def test_bad_graphs_name_the_step_and_reason(doc: dict[str, Any], step_id: str, field: str, words: str) -> None:
    found = issues_of(doc)
    assert any(s == step_id and f == field and words in m for s, f, m in found), found


def test_a_cycle_through_a_wait_is_allowed() -> None:
    doc = definition({"id": "a", "type": "update_attribute", "key": "k", "value": 1, "next": "w"},
                     {"id": "w", "type": "wait", "duration": {"days": 7}, "next": "a"})
    assert issues_of(doc) == []


def test_validate_endpoint_refuses_each_bad_graph_with_422(api: TestClient) -> None:
    doc = definition({"id": "a", "type": "update_attribute", "key": "k", "value": 1, "next": "nowhere"})
    response = api.post("/api/v1/journeys/validate", json={"definition": doc})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "journey_invalid" and body["field"] == "steps.a.next"
    assert body["details"] == [{"step_id": "a", "field": "next",
                                "message": "points to a step that does not exist: 'nowhere'"}]


def test_condition_on_a_missing_segment_is_refused(api: TestClient) -> None:
    doc = definition({"id": "c", "type": "condition", "rule": {"kind": "segment", "segment_id": 999},
                      "then": None, "else": None})
    response = api.post("/api/v1/journeys/validate", json={"definition": doc})
    assert response.status_code == 422
    assert response.json()["details"] == [{"step_id": "c", "field": "rule",
                                           "message": "no segment 999 in this workspace"}]


def test_publishing_an_invalid_draft_is_refused_and_makes_no_version(api: TestClient, db: Session) -> None:
    doc = definition({"id": "ab", "type": "split", "branches": [{"key": "A", "percent": 50, "next": None},
                                                                {"key": "B", "percent": 40, "next": None}]})
    created = api.post("/api/v1/journeys", json={"name": "拆分", "definition": doc})
    assert created.status_code == 201
    assert created.json()["valid"] is False
    assert created.json()["issues"][0]["step_id"] == "ab"
    response = api.post(f"/api/v1/journeys/{created.json()['id']}/publish")
    assert response.status_code == 422
    assert response.json()["field"] == "steps.ab.branches"
    assert db.scalar(select(func.count()).select_from(JourneyVersion)) == 0
    fixed = api.patch(f"/api/v1/journeys/{created.json()['id']}", json={"definition": definition(WAIT)})
    assert fixed.json()["valid"] is True
    published = api.post(f"/api/v1/journeys/{created.json()['id']}/publish")
    assert published.status_code == 200 and published.json()["number"] == 1
