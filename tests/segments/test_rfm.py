"""RFM: quintile scores where equal values score equally, the eight classes against the workspace
average or operator thresholds, and the ready-made segments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.db.session import transaction
from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock
from siyu.segments.models import CustomerRfm
from siyu.segments.rfm import score_rfm
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order, refund
from tests.segments.helpers import ids_by_unionid, ingest

FREQUENCIES = [1, 1, 1, 1, 1, 1, 2, 2, 3, 5]  # c1..c10; ci last ordered 10·i days ago


def ten_customers(db: Session, ctx: WorkspaceContext, clock: FrozenClock) -> None:
    events: list[dict[str, Any]] = []
    for i, frequency in enumerate(FREQUENCIES, start=1):
        for n in range(frequency):
            events.append(order(f"O-{i}-{n}", unionid=f"c{i}", total_fen=10_000,
                                at=clock.now() - timedelta(days=10 * i + 30 * n),
                                items=[{"sku": "M", "category": "母婴/奶粉", "quantity": 1, "unit_price_fen": 10_000}]))
    ingest(db, ctx, *events)


def scores(db: Session, ctx: WorkspaceContext) -> dict[str, tuple[int, int, int, str]]:
    names = {cid: unionid for unionid, cid in ids_by_unionid(db, ctx).items()}
    return {names[r.customer_id]: (r.r_score, r.f_score, r.m_score, r.rfm_class)
            for r in db.scalars(select(CustomerRfm))}


def test_quintile_scores_give_equal_values_equal_scores(db: Session, engine: Engine, workspace: WorkspaceContext,
                                                        clock: FrozenClock) -> None:
    ten_customers(db, workspace, clock)
    with transaction(engine) as session:
        summary = score_rfm(session, workspace)
    # F sorted: 1 1 1 1 1 1 2 2 3 5 → boundaries at ranks 2, 4, 6, 8 = 1, 1, 1, 2
    assert summary["boundaries"]["f"] == [1.0, 1.0, 1.0, 2.0]
    result = scores(db, workspace)
    assert [result[f"c{i}"][1] for i in range(1, 11)] == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert [result[f"c{i}"][2] for i in range(1, 11)] == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    # R: 10, 20, … 100 days; the most recent fifth scores 5, the oldest fifth 1
    assert [result[f"c{i}"][0] for i in range(1, 11)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_the_eight_classes_split_on_the_workspace_average(db: Session, engine: Engine, workspace: WorkspaceContext,
                                                          clock: FrozenClock) -> None:
    ten_customers(db, workspace, clock)
    with transaction(engine) as session:
        summary = score_rfm(session, workspace)
    assert summary["averages"] == pytest.approx([55.0, 1.8, 18_000.0])
    classes = {name: cell[3] for name, cell in scores(db, workspace).items()}
    assert classes == {"c1": "general_develop", "c2": "general_develop", "c3": "general_develop",
                       "c4": "general_develop", "c5": "general_develop", "c6": "general_retain",
                       "c7": "important_keep", "c8": "important_keep", "c9": "important_keep",
                       "c10": "important_keep"}
    assert summary["classes"]["important_keep"] == {"label": "重要保持", "customers": 4, "monetary_fen": 120_000}
    assert sum(sum(row) for row in summary["rf_grid"]) == 10


def test_only_orders_in_the_window_count_and_refunds_do_not(db: Session, engine: Engine,
                                                            workspace: WorkspaceContext, clock: FrozenClock) -> None:
    ingest(db, workspace, order("OLD", unionid="old", at=clock.now() - timedelta(days=400)),
           order("R-1", unionid="refunded", at=clock.now() - timedelta(days=3)),
           order("K-1", unionid="kept", at=clock.now() - timedelta(days=3), total_fen=29_800),
           refund("R-1", 29_800, unionid="refunded"))
    with transaction(engine) as session:
        assert score_rfm(session, workspace)["customers"] == 1
    assert list(scores(db, workspace)) == ["kept"]


def test_operator_thresholds_and_the_ready_segments(api: TestClient, db: Session, engine: Engine,
                                                    workspace: WorkspaceContext, clock: FrozenClock) -> None:
    ten_customers(db, workspace, clock)
    settings = {"score_by": "thresholds", "r_days": [15, 30, 60, 90], "f_orders": [2, 3, 4, 5],
                "m_fen": [20_000, 30_000, 40_000, 50_000], "split_by": "thresholds", "r_high_days": 30,
                "f_high_orders": 3, "m_high_fen": 30_000}
    assert api.put("/api/v1/rfm/settings", json=settings).status_code == 200
    assert api.post("/api/v1/rfm/score").status_code == 202
    run_due_jobs(engine)
    result = scores(db, workspace)
    assert result["c1"] == (5, 1, 1, "general_develop")   # 10 days, 1 order
    assert result["c10"] == (1, 5, 5, "important_keep")   # 100 days, 5 orders
    overview = api.get("/api/v1/rfm").json()
    assert overview["last_run"]["summary"]["classes"]["important_keep"]["customers"] == 2
    ready = overview["segments"]
    assert sorted(ready) == sorted(overview["labels"])
    sizes = {name: api.get(f"/api/v1/segments/{segment_id}").json()["size"] for name, segment_id in ready.items()}
    assert sizes["important_keep"] == 2 and sum(sizes.values()) == 10
    members = api.get(f"/api/v1/segments/{ready['important_keep']}/members").json()["items"]
    people = ids_by_unionid(db, workspace)
    assert {m["id"] for m in members} == {people["c9"], people["c10"]}
    refused = api.patch(f"/api/v1/segments/{ready['important_keep']}", json={"rule": {"kind": "rfm", "class":
                                                                                       "general_keep"}})
    assert refused.status_code == 409 and refused.json()["code"] == "builtin_segment"


def test_thresholds_must_be_four_ascending_values(api: TestClient) -> None:
    response = api.put("/api/v1/rfm/settings", json={"score_by": "thresholds", "r_days": [30, 15, 60, 90],
                                                     "f_orders": [2, 3, 4, 5], "m_fen": [1, 2, 3, 4]})
    assert response.status_code == 422
    assert response.json()["message"] == "r_days: scoring by thresholds needs four ascending values"
    assert api.get("/api/v1/rfm").json()["settings"]["score_by"] == "quintiles"
