"""Scheduled benefits: exactly once per member per period, whatever re-runs and benefit changes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from siyu.coupons.models import Coupon
from siyu.coupons.schemas import TemplateIn
from siyu.coupons.service import create_template
from siyu.db.session import transaction
from siyu.jobs.service import enqueue
from siyu.jobs.worker import run_due_jobs
from siyu.kit.clock import FrozenClock
from siyu.loyalty.models import BenefitGrant, BenefitRun
from siyu.loyalty.service import due_period, get_programme, run_benefits_chunk, set_tiers
from siyu.workspaces.service import WorkspaceContext
from tests.factories import order
from tests.loyalty.conftest import LADDER, fresh, ingest, member, run_jobs, setup_programme

PRAM = [{"sku": "PRAM", "category": "母婴/推车", "quantity": 1, "unit_price_fen": 120_000}]


def template(db: Session, ctx: WorkspaceContext, fen: int) -> int:
    return create_template(db, ctx, TemplateIn(name=f"¥{fen // 100} 无门槛券", kind="amount_off", amount_off_fen=fen,
                                               valid_days=30), actor="test").id


def coupons_of(db: Session, customer_id: int) -> list[int]:
    return sorted(db.scalars(select(Coupon.template_id).where(Coupon.customer_id == customer_id)))


def tick(engine: Engine) -> None:
    with transaction(engine) as session:
        enqueue(session, "loyalty.benefits_tick")
    run_due_jobs(engine)


def test_monthly_coupons_are_issued_once_per_member_per_period(db: Session, workspace: WorkspaceContext,
                                                               engine: Engine, clock: FrozenClock) -> None:
    setup_programme(db, workspace)
    ten, fifty = template(db, workspace, 1000), template(db, workspace, 5000)
    silver = LADDER[1].model_copy(update={"monthly_coupon_template_id": ten})
    set_tiers(db, workspace, [LADDER[0], silver, LADDER[2]], actor="test")
    db.commit()
    vip, regular = member(db, workspace, "u-vip"), member(db, workspace, "u-regular")
    ingest(db, workspace, order("O-1", unionid="u-vip", at="2026-11-01T10:00:00+08:00", items=PRAM))
    run_jobs(engine)
    tick(engine)  # set up mid-month: November's run is due at once
    tick(engine)
    assert (coupons_of(db, vip.customer_id), coupons_of(db, regular.customer_id)) == ([ten], [])
    clock.set(datetime(2026, 11, 30, 15, 59, tzinfo=UTC))  # 23:59 on Nov 30 in Shanghai: December not yet
    tick(engine)
    assert coupons_of(db, vip.customer_id) == [ten]
    clock.set(datetime(2026, 11, 30, 16, 30, tzinfo=UTC))  # 00:30 on Dec 1
    tick(engine)
    tick(engine)
    assert coupons_of(db, vip.customer_id) == [ten, ten]
    silver = silver.model_copy(update={"monthly_coupon_template_id": fifty})
    set_tiers(db, workspace, [LADDER[0], silver, LADDER[2]], actor="test")
    db.commit()
    with transaction(engine) as session:
        run = run_benefits_chunk(session, workspace, "2026-12", restart=True)
        assert (run.members_granted, run.finished_at is not None) == (1, True)
    assert coupons_of(db, vip.customer_id) == [ten, ten]
    clock.set(datetime(2026, 12, 31, 16, 30, tzinfo=UTC))
    tick(engine)
    assert coupons_of(db, vip.customer_id) == [ten, ten, fifty]
    assert [(g.period, g.coupons) for g in db.scalars(select(BenefitGrant).order_by(BenefitGrant.id))] == [
        ("2026-11", 1), ("2026-12", 1), ("2027-01", 1)]


def test_a_run_goes_through_members_in_chunks_and_resumes(db: Session, workspace: WorkspaceContext,
                                                          engine: Engine) -> None:
    setup_programme(db, workspace)
    ten = template(db, workspace, 1000)
    set_tiers(db, workspace, [LADDER[0].model_copy(update={"monthly_coupon_template_id": ten,
                                                            "monthly_coupon_quantity": 2})], actor="test")
    db.commit()
    for n in range(5):
        member(db, workspace, f"u-{n}")
    periods = []
    for _ in range(3):
        with transaction(engine) as session:
            run = run_benefits_chunk(session, workspace, "2026-11", chunk=2)
            periods.append((run.cursor_member_id > 0, run.finished_at is not None))
    assert periods == [(True, False), (True, False), (True, True)]
    assert db.scalar(select(func.count()).select_from(Coupon)) == 10
    assert db.scalar(select(BenefitRun.coupons_issued)) == 10


def test_the_benefit_day_31_falls_on_the_last_day_of_february(db: Session, workspace: WorkspaceContext) -> None:
    setup_programme(db, workspace, benefit_day=31)
    programme = get_programme(db, workspace.id)
    assert due_period(programme, workspace, datetime(2027, 2, 27, 4, tzinfo=UTC)) is None
    assert due_period(programme, workspace, datetime(2027, 2, 28, 4, tzinfo=UTC)) == "2027-02"
    assert due_period(programme, workspace, datetime(2027, 3, 30, 4, tzinfo=UTC)) is None


def test_birthday_gift_comes_once_in_the_birthday_month(db: Session, workspace: WorkspaceContext,
                                                        engine: Engine, clock: FrozenClock) -> None:
    setup_programme(db, workspace)
    cake = template(db, workspace, 3000)
    base = LADDER[0].model_copy(update={"birthday_coupon_template_id": cake, "birthday_points": 100})
    set_tiers(db, workspace, [base, *LADDER[1:]], actor="test")
    db.commit()
    december, june = member(db, workspace, "u-dec", birthday="1990-12-05"), member(db, workspace, "u-jun",
                                                                                   birthday="1991-06-01")
    clock.set(datetime(2026, 12, 1, 2, tzinfo=UTC))
    tick(engine)
    with transaction(engine) as session:
        run_benefits_chunk(session, workspace, "2026-12", restart=True)
    clock.set(datetime(2027, 1, 1, 2, tzinfo=UTC))
    tick(engine)
    assert (coupons_of(db, december.customer_id), fresh(db, december).points_balance) == ([cake], 100)
    assert (coupons_of(db, june.customer_id), fresh(db, june).points_balance) == ([], 0)
