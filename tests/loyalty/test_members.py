"""Enrolment, leaving, dedicated service, and customer merges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.audit.models import AuditEntry
from siyu.coupons.models import Coupon
from siyu.coupons.schemas import TemplateIn
from siyu.coupons.service import create_template, issue_coupon
from siyu.customers.service import merge_customers
from siyu.kit.errors import SiyuError
from siyu.loyalty.models import Member, PointsEntry
from siyu.loyalty.service import (
    Consent,
    assign_dedicated_staff,
    award_points,
    enrol_member,
    get_member,
    ladder,
    leave_programme,
    redeem_points,
)
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order
from tests.loyalty.conftest import assert_ledger_consistent, customer, fresh, ingest, member, run_jobs

PRAM = [{"sku": "PRAM", "category": "母婴/推车", "quantity": 1, "unit_price_fen": 600_000}]


def test_enrolment_records_consent_and_gives_a_member_number(db: Session, workspace: WorkspaceContext,
                                                             programme: None) -> None:
    cid = customer(db, workspace, "u-1")
    consent = Consent("official_account", "terms-2026-09", datetime(2026, 11, 19, 8, tzinfo=UTC))
    first = enrol_member(db, workspace, cid, consent, actor="user:1")
    again = enrol_member(db, workspace, cid, consent, actor="user:1")
    second = enrol_member(db, workspace, customer(db, workspace, "u-2"), consent, actor="user:1")
    db.commit()
    assert first.id == again.id
    assert (first.member_number, second.member_number) == ("M00000001", "M00000002")
    assert (first.consent_at, first.consent_channel, first.consent_text_version) == (
        datetime(2026, 11, 19, 8, tzinfo=UTC), "official_account", "terms-2026-09")
    assert ladder(db, workspace.id).by_id(first.tier_id).code == "member"
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "loyalty.enrolled")) == 2


def test_consent_cannot_be_dated_in_the_future(db: Session, workspace: WorkspaceContext, programme: None) -> None:
    cid = customer(db, workspace, "u-1")
    with pytest.raises(SiyuError) as refused:
        enrol_member(db, workspace, cid, Consent("app", "v1", datetime(2026, 12, 1, tzinfo=UTC)), actor="t")
    assert refused.value.field == "consent.at"


def test_enrolment_needs_a_programme_and_a_customer_of_the_workspace(db: Session, workspace: WorkspaceContext,
                                                                     other_workspace: WorkspaceContext) -> None:
    from tests.loyalty.conftest import setup_programme

    cid = customer(db, workspace, "u-1")
    with pytest.raises(SiyuError) as no_programme:
        enrol_member(db, workspace, cid, Consent("app", "v1"), actor="t")
    assert no_programme.value.code == "loyalty_programme_not_configured"
    setup_programme(db, other_workspace)
    with pytest.raises(SiyuError) as foreign:
        enrol_member(db, other_workspace, cid, Consent("app", "v1"), actor="t")
    assert foreign.value.code == "customer_not_found"


def test_a_member_who_leaves_stops_earning_keeps_history_and_rejoins_with_the_same_number(
        db: Session, workspace: WorkspaceContext, programme: None) -> None:
    m = member(db, workspace)
    award_points(db, workspace, m.customer_id, 40, "welcome", "welcome")
    leave_programme(db, workspace, m.customer_id, actor="t")
    db.commit()
    with pytest.raises(SiyuError) as refused:
        award_points(db, workspace, m.customer_id, 10, "later", "later")
    assert refused.value.code == "member_not_active"
    db.rollback()
    back = enrol_member(db, workspace, m.customer_id, Consent("app", "v2"), actor="t")
    db.commit()
    assert (back.id, back.member_number, back.status, back.consent_text_version) == (m.id, m.member_number,
                                                                                      "active", "v2")
    assert fresh(db, m).points_balance == 40


def test_dedicated_staff_only_for_tiers_that_offer_it(db: Session, workspace: WorkspaceContext, programme: None,
                                                      engine: Engine) -> None:
    m = member(db, workspace)
    with pytest.raises(SiyuError) as refused:
        assign_dedicated_staff(db, workspace, m.customer_id, "staff-7", actor="t")
    assert refused.value.code == "no_dedicated_service"
    db.rollback()
    ingest(db, workspace, order("O-1", at="2026-11-01T10:00:00+08:00", items=PRAM))  # ¥6,000: 金卡
    run_jobs(engine)
    assigned = assign_dedicated_staff(db, workspace, m.customer_id, "staff-7", actor="t")
    assert assigned.dedicated_staff_id == "staff-7"


def test_merging_two_members_moves_points_ledger_and_coupons_to_the_survivor(
        db: Session, workspace: WorkspaceContext, programme: None, engine: Engine) -> None:
    old, new = member(db, workspace, "u-old"), member(db, workspace, "u-new")
    ingest(db, workspace, order("O-1", unionid="u-new", at="2026-11-01T10:00:00+08:00", items=PRAM))
    run_jobs(engine)
    award_points(db, workspace, old.customer_id, 100, "welcome-old", "welcome")
    template = create_template(db, workspace, TemplateIn(name="¥10", kind="amount_off", amount_off_fen=1000,
                                                         valid_days=30), actor="t")
    issue_coupon(db, workspace, template.id, new.customer_id, "gift-new")
    merge_customers(db, workspace, old.customer_id, new.customer_id, reason="same phone", actor="t")
    db.commit()
    run_jobs(engine)
    survivor, absorbed = fresh(db, old), fresh(db, new)
    assert (survivor.points_balance, absorbed.points_balance, absorbed.status) == (6100, 0, "merged")
    assert ladder(db, workspace.id).by_id(survivor.tier_id).code == "gold"
    assert db.scalar(select(func.count()).select_from(PointsEntry).where(PointsEntry.member_id == old.id)) == 2
    assert db.scalars(select(Coupon.customer_id)).all() == [old.customer_id]
    assert get_member(db, workspace.id, new.customer_id).id == old.id  # the absorbed id finds the survivor
    assert_ledger_consistent(db, survivor.id)
    assert_ledger_consistent(db, absorbed.id)


def test_merging_settles_debt_from_the_other_profiles_points(db: Session, workspace: WorkspaceContext,
                                                             programme: None, engine: Engine) -> None:
    from tests.factories import refund

    old, new = member(db, workspace, "u-old"), member(db, workspace, "u-new")
    ingest(db, workspace, order("O-1", unionid="u-old", at="2026-11-01T10:00:00+08:00"))
    run_jobs(engine)
    redeem_points(db, workspace, old.customer_id, 298, "gift", "g-1")
    award_points(db, workspace, new.customer_id, 500, "welcome-new", "welcome")
    db.commit()
    ingest(db, workspace, refund("O-1", 29_800, unionid="u-old"))
    run_jobs(engine)
    assert fresh(db, old).points_debt == 298
    merge_customers(db, workspace, old.customer_id, new.customer_id, reason="same phone", actor="t")
    db.commit()
    run_jobs(engine)
    survivor = fresh(db, old)
    assert (survivor.points_balance, survivor.points_debt) == (202, 0)
    assert_ledger_consistent(db, survivor.id)


def test_a_merge_of_a_member_into_a_non_member_moves_the_membership(db: Session, workspace: WorkspaceContext,
                                                                    programme: None, engine: Engine) -> None:
    plain = customer(db, workspace, "u-plain")
    m = member(db, workspace, "u-member")
    merge_customers(db, workspace, plain, m.customer_id, reason="same phone", actor="t")
    db.commit()
    run_jobs(engine)
    db.expire_all()
    moved = db.scalars(select(Member)).one()
    assert (moved.id, moved.customer_id, moved.status) == (m.id, plain, "active")
