"""Concurrent redemptions on PostgreSQL: many clients, one balance, zero double spends."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import Engine, select

from siyu.db.session import transaction
from siyu.events.service import ingest_events
from siyu.kit.errors import SiyuError
from siyu.loyalty.models import Member
from siyu.loyalty.schemas import ProgrammeIn
from siyu.loyalty.service import Consent, award_points, configure_programme, enrol_member, redeem_points
from siyu.workspaces.service import WorkspaceContext, context_of, create_workspace
from tests.factories import event
from tests.loyalty.conftest import assert_ledger_consistent

pytestmark = pytest.mark.pg


def _member_with_points(engine: Engine, points: int) -> tuple[WorkspaceContext, int, int]:
    with transaction(engine) as session:
        ctx = context_of(create_workspace(session, f"c{uuid.uuid4().hex[:10]}", "concurrency"))
        configure_programme(session, ctx, ProgrammeIn(), actor="test")
        (result,) = ingest_events(session, ctx, [event("identify", identities={"wechat_unionid": "u"})])
        assert result.customer_id is not None
        m = enrol_member(session, ctx, result.customer_id, Consent("app", "v1"), actor="test")
        award_points(session, ctx, m.customer_id, points, "seed", "seed")
        return ctx, m.customer_id, m.id


def test_concurrent_point_redemptions_never_spend_the_same_points(pg_engine: Engine) -> None:
    ctx, customer_id, member_id = _member_with_points(pg_engine, 1000)
    start = threading.Barrier(12)
    outcomes: list[str] = []

    def client(n: int) -> None:
        start.wait()
        try:
            with transaction(pg_engine) as session:
                redeem_points(session, ctx, customer_id, 300, "gift", f"gift-{n}")
            outcomes.append("ok")
        except SiyuError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["insufficient_points"] * 9 + ["ok"] * 3
    with transaction(pg_engine) as session:
        assert session.scalar(select(Member.points_balance).where(Member.id == member_id)) == 100
        assert_ledger_consistent(session, member_id)
