"""Coupon templates, issuance and redemption through the service, and orders that carry a code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.coupons.models import Coupon, CouponRedemption
from siyu.coupons.rules import OrderLine
from siyu.coupons.schemas import TemplateIn
from siyu.coupons.service import (
    create_template,
    expire_coupons,
    find_coupon,
    issue_coupon,
    issue_coupons_bulk,
    redeem_coupon,
    template_stats,
)
from siyu.db.session import transaction
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import SiyuError
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order, refund
from tests.loyalty.conftest import customer, ingest, run_jobs


def make(db: Session, ctx: WorkspaceContext, **fields: Any) -> int:
    data: dict[str, Any] = {"name": "券", "kind": "amount_off", "amount_off_fen": 1000, "valid_days": 30, **fields}
    return create_template(db, ctx, TemplateIn(**data), actor="test").id


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SiyuError) as caught:
        call(*args, **kwargs)
    return caught.value.code


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "threshold_off", "amount_off_fen": 2000, "threshold_fen": 2000}, "above amount_off_fen"),
    ({"kind": "amount_off", "threshold_fen": 100}, "no threshold"),
    ({"kind": "percent_off", "amount_off_fen": None}, "percent_off is required"),
    ({"amount_off_fen": 12.5}, "valid integer"),
    ({"amount_off_fen": -1}, "greater than 0"),
    ({"valid_days": None}, "either valid_days or fixed dates"),
    ({"kind": "gift", "amount_off_fen": None}, "gift_name is required"),
])
def test_templates_must_be_consistent(fields: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"name": "券", "kind": "amount_off", "amount_off_fen": 1000, "valid_days": 30, **fields}
    with pytest.raises(ValidationError, match=message):
        TemplateIn(**data)


def test_issued_codes_are_unguessable_and_issuing_again_for_a_cause_returns_the_first(
        db: Session, workspace: WorkspaceContext) -> None:
    template_id = make(db, workspace)
    cid = customer(db, workspace, "u-1")
    first = issue_coupon(db, workspace, template_id, cid, "welcome")
    again = issue_coupon(db, workspace, template_id, cid, "welcome")
    other = issue_coupon(db, workspace, template_id, cid, "birthday")
    assert first.id == again.id != other.id
    assert re.fullmatch(r"[A-Z2-7]{16}", first.code) and first.code != other.code
    assert first.valid_until - first.issued_at == timedelta(days=30)
    with pytest.raises(SiyuError) as reused:
        issue_coupon(db, workspace, make(db, workspace), cid, "welcome")
    assert reused.value.code == "idempotency_key_reused"


def test_stock_and_per_customer_limits_are_never_exceeded(db: Session, workspace: WorkspaceContext) -> None:
    template_id = make(db, workspace, total_stock=3, per_customer_limit=2)
    a, b, c = (customer(db, workspace, f"u-{n}") for n in range(3))
    issue_coupon(db, workspace, template_id, a, "k1")
    issue_coupon(db, workspace, template_id, a, "k2")
    assert refused(issue_coupon, db, workspace, template_id, a, "k3") == "coupon_per_customer_limit"
    result = issue_coupons_bulk(db, workspace, template_id, [b, c], "campaign")
    assert (result.issued, result.skipped_stock) == (1, 1)
    assert refused(issue_coupon, db, workspace, template_id, c, "k4") == "coupon_out_of_stock"
    assert db.scalar(select(func.count()).select_from(Coupon)) == 3


def test_bulk_issuance_refuses_customers_of_another_workspace(db: Session, workspace: WorkspaceContext,
                                                              other_workspace: WorkspaceContext) -> None:
    template_id = make(db, workspace)
    ours, theirs = customer(db, workspace, "u-1"), customer(db, other_workspace, "u-1")
    assert refused(issue_coupons_bulk, db, workspace, template_id, [ours, theirs], "k") == "validation_failed"
    assert db.scalar(select(func.count()).select_from(Coupon)) == 0


def test_redemption_checks_threshold_scope_and_caps(db: Session, workspace: WorkspaceContext) -> None:
    cid = customer(db, workspace, "u-1")
    full_reduction = make(db, workspace, kind="threshold_off", amount_off_fen=2000, threshold_fen=20_000,
                          categories=["美妆"])
    nine_tenths = make(db, workspace, kind="percent_off", amount_off_fen=None, percent_off=10, max_discount_fen=5000)
    lines = [OrderLine("MASK", "美妆/面膜", 2, 9900), OrderLine("MILK", "母婴/奶粉", 1, 29800)]
    scoped = issue_coupon(db, workspace, full_reduction, cid, "a")
    assert refused(redeem_coupon, db, workspace, scoped.code, "O-1", 49_600, lines) == "coupon_below_threshold"
    assert refused(redeem_coupon, db, workspace, scoped.code, "O-1", 49_600, [lines[1]]) == "coupon_not_applicable"
    lines[0] = OrderLine("MASK", "美妆/面膜", 3, 9900)
    assert redeem_coupon(db, workspace, scoped.code, "O-1", 59_500, lines).discount_fen == 2000
    capped = issue_coupon(db, workspace, nine_tenths, cid, "b")
    result = redeem_coupon(db, workspace, capped.code.lower(), "O-2", 80_000)
    assert (result.discount_fen, result.payable_fen) == (5000, 75_000)


def test_a_coupon_is_redeemed_once_and_a_retry_returns_the_first_result(db: Session,
                                                                        workspace: WorkspaceContext) -> None:
    cid = customer(db, workspace, "u-1")
    coupon = issue_coupon(db, workspace, make(db, workspace), cid, "a")
    first = redeem_coupon(db, workspace, coupon.code, "O-1", 5000)
    again = redeem_coupon(db, workspace, coupon.code, "O-1", 5000)
    assert first == again
    assert refused(redeem_coupon, db, workspace, coupon.code, "O-2", 5000) == "coupon_used"
    assert db.scalar(select(func.count()).select_from(CouponRedemption)) == 1


def test_expired_unknown_foreign_and_other_peoples_coupons_are_refused(
        db: Session, workspace: WorkspaceContext, other_workspace: WorkspaceContext, clock: FrozenClock,
        engine: Engine) -> None:
    owner, stranger = customer(db, workspace, "u-1"), customer(db, workspace, "u-2")
    coupon = issue_coupon(db, workspace, make(db, workspace), owner, "a")
    db.commit()
    assert refused(redeem_coupon, db, workspace, "NOSUCHCODE", "O-1", 5000) == "coupon_not_found"
    assert refused(redeem_coupon, db, other_workspace, coupon.code, "O-1", 5000) == "coupon_not_found"
    assert refused(redeem_coupon, db, workspace, coupon.code, "O-1", 5000, customer_id=stranger) == \
        "coupon_not_owned"
    assert refused(redeem_coupon, db, workspace, coupon.code, "O-1", -1) == "validation_failed"
    clock.advance(timedelta(days=30))
    assert refused(redeem_coupon, db, workspace, coupon.code, "O-1", 5000) == "coupon_expired"
    with transaction(engine) as session:
        assert expire_coupons(session) == 1
    db.expire_all()
    assert find_coupon(db, workspace.id, coupon.code).state == "expired"
    assert db.scalar(select(func.count()).select_from(CouponRedemption)) == 0


def test_an_order_carrying_a_code_redeems_it_and_its_full_refund_restores_it(
        db: Session, workspace: WorkspaceContext, engine: Engine) -> None:
    cid = customer(db, workspace, "u-1")
    coupon = issue_coupon(db, workspace, make(db, workspace, restore_on_refund=True), cid, "a")
    db.commit()
    ingest(db, workspace, order("O-1", at="2026-11-19T10:00:00+08:00", coupon_code=coupon.code, discount_fen=1000,
                                total_fen=28_800))
    run_jobs(engine)
    db.expire_all()
    redemption = db.scalars(select(CouponRedemption)).one()
    assert (find_coupon(db, workspace.id, coupon.code).state, redemption.order_amount_fen,
            redemption.discount_fen, redemption.source) == ("redeemed", 29_800, 1000, "order_paid")
    ingest(db, workspace, refund("O-1", 28_800))
    run_jobs(engine)
    db.expire_all()
    assert find_coupon(db, workspace.id, coupon.code).state == "issued"
    stats = template_stats(db, workspace.id, [coupon.template_id])[coupon.template_id]
    assert (stats.issued, stats.redeemed) == (1, 0)


def test_an_order_with_a_coupon_that_does_not_qualify_is_recorded_not_failed(
        db: Session, workspace: WorkspaceContext, engine: Engine) -> None:
    from siyu.audit.models import AuditEntry
    from siyu.jobs.models import Job

    cid = customer(db, workspace, "u-1")
    coupon = issue_coupon(db, workspace, make(db, workspace, kind="threshold_off", amount_off_fen=2000,
                                              threshold_fen=50_000), cid, "a")
    db.commit()
    ingest(db, workspace, order("O-1", at="2026-11-19T10:00:00+08:00", coupon_code=coupon.code),
           order("O-2", at="2026-11-19T11:00:00+08:00", coupon_code="NEW20"))  # the shop's own promo code
    run_jobs(engine)
    refusal = db.scalars(select(AuditEntry).where(AuditEntry.action == "coupon.redemption_refused")).one()
    assert (refusal.subject_id, refusal.details["code"]) == ("O-1", "coupon_below_threshold")
    assert find_coupon(db, workspace.id, coupon.code).state == "issued"
    assert db.scalar(select(func.count()).select_from(Job).where(Job.state != "done")) == 0


def test_stats_per_template(db: Session, workspace: WorkspaceContext) -> None:
    template_id = make(db, workspace)
    codes = [issue_coupon(db, workspace, template_id, customer(db, workspace, f"u-{n}"), f"k{n}").code
             for n in range(4)]
    redeem_coupon(db, workspace, codes[0], "O-1", 30_000)
    redeem_coupon(db, workspace, codes[1], "O-2", 500)
    stats = template_stats(db, workspace.id, [template_id])[template_id]
    assert (stats.issued, stats.redeemed, stats.redemption_rate, stats.gmv_fen, stats.discount_fen) == (
        4, 2, 0.5, 30_500, 1500)


def test_fixed_validity_dates(db: Session, workspace: WorkspaceContext, clock: FrozenClock) -> None:
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)
    template_id = make(db, workspace, valid_days=None, valid_from=start, valid_until=end)
    coupon = issue_coupon(db, workspace, template_id, customer(db, workspace, "u-1"), "a")
    assert refused(redeem_coupon, db, workspace, coupon.code, "O-1", 5000) == "coupon_not_yet_valid"
    clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    assert redeem_coupon(db, workspace, coupon.code, "O-1", 5000).discount_fen == 1000


def test_gift_coupons_discount_nothing_and_name_the_gift(db: Session, workspace: WorkspaceContext) -> None:
    template_id = make(db, workspace, kind="gift", amount_off_fen=None, gift_name="试用装")
    coupon = issue_coupon(db, workspace, template_id, customer(db, workspace, "u-1"), "a")
    result = redeem_coupon(db, workspace, coupon.code, "O-1", 100)
    assert (result.discount_fen, result.gift_name) == (0, "试用装")



def test_bulk_issuance_to_a_segment_gives_each_current_member_one(db: Session, workspace: WorkspaceContext) -> None:
    from siyu.coupons.service import issue_coupons_to_segment
    from siyu.segments.service import create_segment

    members = [customer(db, workspace, f"u-{n}") for n in range(3)]
    customer(db, workspace, "outsider")
    segment = create_segment(db, workspace, name="VIP", actor="test", kind="static", customer_ids=members[:2])
    template_id = make(db, workspace)
    first = issue_coupons_to_segment(db, workspace, template_id, segment.id, "vip-week")
    again = issue_coupons_to_segment(db, workspace, template_id, segment.id, "vip-week")
    assert (first.requested, first.issued, again.issued, again.already_issued) == (2, 2, 0, 2)
    assert sorted(db.scalars(select(Coupon.customer_id))) == members[:2]


def test_replaying_a_refunded_order_does_not_use_its_restored_coupon_again(
        db: Session, workspace: WorkspaceContext, engine: Engine) -> None:
    from siyu.coupons.tasks import on_order_paid
    from siyu.events.models import Event

    cid = customer(db, workspace, "u-1")
    coupon = issue_coupon(db, workspace, make(db, workspace, restore_on_refund=True), cid, "a")
    db.commit()
    ingest(db, workspace, order("O-1", at="2026-11-19T10:00:00+08:00", coupon_code=coupon.code))
    run_jobs(engine)
    ingest(db, workspace, refund("O-1", 29_800))
    run_jobs(engine)
    paid = db.scalars(select(Event.id).where(Event.type == "order_paid")).one()
    with transaction(engine) as session:
        on_order_paid(session, {"workspace_id": workspace.id, "event_ids": [paid]})
    db.expire_all()
    assert find_coupon(db, workspace.id, coupon.code).state == "issued"
    assert db.scalar(select(func.count()).select_from(CouponRedemption)) == 1
