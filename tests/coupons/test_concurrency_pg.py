"""Concurrent redemptions on PostgreSQL: every code tried by several clients at once is used once."""

from __future__ import annotations

import random
import threading
import uuid

import pytest
from sqlalchemy import Engine, func, select

from siyu.coupons.models import Coupon, CouponRedemption
from siyu.coupons.schemas import TemplateIn
from siyu.coupons.service import create_template, issue_coupons_bulk, redeem_coupon
from siyu.db.session import transaction
from siyu.events.service import ingest_events
from siyu.kit.errors import SiyuError
from siyu.workspaces.service import context_of, create_workspace
from tests.factories import event

pytestmark = pytest.mark.pg


def test_concurrent_redemptions_redeem_each_coupon_once(pg_engine: Engine) -> None:
    with transaction(pg_engine) as session:
        ctx = context_of(create_workspace(session, f"c{uuid.uuid4().hex[:10]}", "concurrency"))
        results = ingest_events(session, ctx, [event("identify", identities={"wechat_unionid": f"u{n}"})
                                               for n in range(20)])
        template = create_template(session, ctx, TemplateIn(name="¥10", kind="amount_off", amount_off_fen=1000,
                                                            valid_days=7), actor="test")
        issue_coupons_bulk(session, ctx, template.id, [r.customer_id or 0 for r in results], "seed")
        codes = list(session.scalars(select(Coupon.code).where(Coupon.workspace_id == ctx.id)))
    start = threading.Barrier(8)
    wins: list[str] = []
    losses: list[str] = []

    def client(n: int) -> None:
        mine = codes[:]
        random.Random(n).shuffle(mine)
        start.wait()
        for code in mine:
            try:
                with transaction(pg_engine) as session:
                    redeem_coupon(session, ctx, code, f"order-{n}-{code}", 10_000)
                wins.append(code)
            except SiyuError as exc:
                losses.append(exc.code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == sorted(codes)
    assert set(losses) == {"coupon_used"} and len(losses) == 7 * len(codes)
    with transaction(pg_engine) as session:
        per_coupon = session.execute(select(CouponRedemption.coupon_id, func.count())
                                     .where(CouponRedemption.workspace_id == ctx.id)
                                     .group_by(CouponRedemption.coupon_id)).all()
        assert len(per_coupon) == 20 and {n for _, n in per_coupon} == {1}
