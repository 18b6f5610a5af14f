"""Loyalty fixtures: a programme with a three-tier ladder, customers made through ingestion, and
helpers to ingest events and run the worker like production does."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.customers.service import find_by_identity
from siyu.events.service import ingest_events
from siyu.jobs.worker import run_due_jobs
from siyu.loyalty.models import Member, PointsEntry, PointsLot
from siyu.loyalty.schemas import ProgrammeIn, TierIn
from siyu.loyalty.service import Consent, configure_programme, enrol_member, set_tiers
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event

# 普通会员 from 0, 银卡 from ¥1,000 (1.5×), 金卡 from ¥5,000 (2×, member day 2×); tiers last 12 months.
LADDER = [
    TierIn(code="member", name="普通会员", threshold=0),
    TierIn(code="silver", name="银卡", threshold=100_000, validity_months=12, points_multiplier_percent=150),
    TierIn(code="gold", name="金卡", threshold=500_000, validity_months=12, points_multiplier_percent=200,
           member_day_multiplier_percent=200, dedicated_service=True),
]


def setup_programme(db: Session, ctx: WorkspaceContext, tiers: list[TierIn] | None = None, **settings: Any) -> None:
    configure_programme(db, ctx, ProgrammeIn(**settings), actor="test")
    set_tiers(db, ctx, tiers or LADDER, actor="test")
    db.commit()


@pytest.fixture
def programme(db: Session, workspace: WorkspaceContext) -> None:
    setup_programme(db, workspace)


def ingest(db: Session, ctx: WorkspaceContext, *events: dict[str, Any]) -> None:
    results = ingest_events(db, ctx, list(events))
    assert all(r.status != "rejected" for r in results), [r.as_dict() for r in results]
    db.commit()


def customer(db: Session, ctx: WorkspaceContext, unionid: str, **traits: Any) -> int:
    ingest(db, ctx, event("identify", identities=[{"type": "wechat_unionid", "value": unionid}],
                          traits=traits or None))
    found = find_by_identity(db, ctx.id, "wechat_unionid", unionid)
    assert found is not None
    return found.id


def member(db: Session, ctx: WorkspaceContext, unionid: str = "u-1", **traits: Any) -> Member:
    enrolled = enrol_member(db, ctx, customer(db, ctx, unionid, **traits), Consent("mini_program", "v1"),
                            actor="test")
    db.commit()
    return enrolled


def run_jobs(engine: Engine) -> int:
    return run_due_jobs(engine)


def fresh(db: Session, m: Member) -> Member:
    db.expire_all()
    found = db.get(Member, m.id)
    assert found is not None
    return found


def assert_ledger_consistent(db: Session, member_id: int) -> None:
    """The invariants of the ledger: balances are the sums of the entries; lots hold max(balance, 0)."""
    db.expire_all()
    m = db.get(Member, member_id)
    assert m is not None
    sums = db.execute(select(func.coalesce(func.sum(PointsEntry.points), 0),
                             func.coalesce(func.sum(PointsEntry.pending), 0),
                             func.coalesce(func.sum(PointsEntry.debt), 0))
                      .where(PointsEntry.member_id == member_id)).one()
    assert (m.points_balance, m.points_pending, m.points_debt) == tuple(sums)
    available = db.scalar(select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
        PointsLot.member_id == member_id, PointsLot.status == "available"))
    pending = db.scalar(select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
        PointsLot.member_id == member_id, PointsLot.status == "pending"))
    assert available == max(0, m.points_balance)
    assert pending == m.points_pending
    assert m.points_debt >= 0
    assert m.points_debt == 0 or m.points_balance <= 0
