"""Loyalty REST API: programme and tier set-up, members (by customer id), the ledger, points moves and
benefit runs. Staff at the counter may enrol and redeem; set-up and corrections need an operator."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from siyu.loyalty import service
from siyu.loyalty.schemas import (
    AdjustIn,
    BenefitRunIn,
    BenefitRunOut,
    BenefitsOut,
    DeductIn,
    EnrolIn,
    EntryOut,
    LedgerOut,
    MemberListOut,
    MemberOut,
    MemberPriceOut,
    MemberSummaryOut,
    PointsResultOut,
    ProgrammeIn,
    ProgrammeOut,
    ProgressOut,
    RedeemForCouponIn,
    RedeemPointsIn,
    StaffIn,
    TierBriefOut,
    TierChangeOut,
    TierOut,
    TiersIn,
)
from siyu.web.deps import Db, Ingestor, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["loyalty"])


def _points(result: service.PointsResult) -> PointsResultOut:
    return PointsResultOut(entry=EntryOut.model_validate(result.entry), points_balance=result.member.points_balance,
                           deduction_fen=result.deduction_fen, coupon_code=result.coupon_code)


def _brief(tier: Any) -> TierBriefOut:
    return TierBriefOut(id=tier.id, code=tier.code, name=tier.name, rank=tier.rank, threshold=tier.threshold)


def summary_out(summary: service.MemberSummary) -> MemberSummaryOut:
    return MemberSummaryOut(
        member=MemberOut.model_validate(summary.member), tier=_brief(summary.tier),
        progress=ProgressOut(metric=summary.metric, window=summary.window, value=summary.metric_value,
                             next_tier=_brief(summary.next_tier) if summary.next_tier else None,
                             to_next=summary.to_next),
        benefits=BenefitsOut.model_validate(summary.tier, from_attributes=True),
        usable_coupons=summary.usable_coupons, points_expiring_soon=summary.points_expiring_soon)


# -- programme and tiers -----------------------------------------------------------------------

@router.get("/loyalty/programme", response_model=ProgrammeOut)
def get_programme(caller: Reader, db: Db) -> Any:
    return service.get_programme(db, caller.workspace.id)


@router.put("/loyalty/programme", response_model=ProgrammeOut,
            summary="Create the programme (with a base tier) or change its settings")
def configure_programme(caller: Writer, db: Db, body: ProgrammeIn) -> Any:
    return service.configure_programme(db, caller.workspace, body, actor=caller.actor)


@router.get("/loyalty/tiers", response_model=list[TierOut])
def list_tiers(caller: Reader, db: Db) -> Any:
    return service.ladder(db, caller.workspace.id).tiers


@router.put("/loyalty/tiers", response_model=list[TierOut],
            summary="Replace the ladder (matched by code); thresholds start at 0 and rise strictly")
def set_tiers(caller: Writer, db: Db, body: TiersIn) -> Any:
    return service.set_tiers(db, caller.workspace, body.tiers, actor=caller.actor)


# -- members -----------------------------------------------------------------------------------

@router.post("/loyalty/members", response_model=MemberOut, status_code=201,
             summary="Enrol a customer with their consent (idempotent; a member who left rejoins)")
def enrol(caller: Ingestor, db: Db, body: EnrolIn) -> Any:
    consent = service.Consent(body.consent.channel, body.consent.text_version, body.consent.at)
    return service.enrol_member(db, caller.workspace, body.customer_id, consent, actor=caller.actor)


@router.get("/loyalty/members", response_model=MemberListOut)
def list_members(caller: Reader, db: Db, tier_id: int | None = None, status: str | None = None,
                 cursor: str | None = None, limit: int = Query(50, ge=1, le=200)) -> Any:
    items, next_cursor = service.list_members(db, caller.workspace.id, tier_id=tier_id, status=status,
                                              cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/loyalty/members/{customer_id}", response_model=MemberSummaryOut,
            summary="Tier, progress to the next tier, points, benefits and usable coupons")
def member_summary(caller: Reader, db: Db, customer_id: int) -> Any:
    return summary_out(service.member_summary(db, caller.workspace, customer_id))


@router.get("/loyalty/members/{customer_id}/price", response_model=MemberPriceOut,
            summary="Member price of an order (the tier's shop discount) and the most points may pay of it")
def member_price(caller: Reader, db: Db, customer_id: int,
                 order_amount_fen: int = Query(..., ge=0, le=10**13, description="the order's amount in fen")) -> Any:
    return price_out(service.quote_member_price(db, caller.workspace, customer_id, order_amount_fen))


def price_out(price: service.MemberPrice) -> MemberPriceOut:
    return MemberPriceOut(customer_id=price.member.customer_id, tier_code=price.tier_code,
                          order_amount_fen=price.order_amount_fen, shop_discount_percent=price.shop_discount_percent,
                          member_discount_fen=price.member_discount_fen, member_price_fen=price.member_price_fen,
                          points_balance=price.member.points_balance, max_deduction_points=price.max_deduction_points,
                          max_deduction_fen=price.max_deduction_fen)


@router.post("/loyalty/members/{customer_id}/leave", response_model=MemberOut)
def leave(caller: Writer, db: Db, customer_id: int) -> Any:
    return service.leave_programme(db, caller.workspace, customer_id, actor=caller.actor)


@router.put("/loyalty/members/{customer_id}/dedicated-staff", response_model=MemberOut)
def assign_staff(caller: Writer, db: Db, customer_id: int, body: StaffIn) -> Any:
    return service.assign_dedicated_staff(db, caller.workspace, customer_id, body.staff_id, actor=caller.actor)


@router.get("/loyalty/members/{customer_id}/ledger", response_model=LedgerOut, summary="Newest entries first")
def ledger(caller: Reader, db: Db, customer_id: int, cursor: str | None = None,
           limit: int = Query(50, ge=1, le=500)) -> Any:
    items, next_cursor = service.member_ledger(db, caller.workspace.id, customer_id, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/loyalty/members/{customer_id}/tier-history", response_model=list[TierChangeOut])
def tier_history(caller: Reader, db: Db, customer_id: int) -> Any:
    return service.tier_history(db, caller.workspace.id, customer_id)


# -- points ------------------------------------------------------------------------------------

@router.post("/loyalty/members/{customer_id}/points/adjust", response_model=PointsResultOut,
             summary="An operator's correction with a reason; never below zero")
def adjust(caller: Writer, db: Db, customer_id: int, body: AdjustIn) -> Any:
    return _points(service.adjust_points(db, caller.workspace, customer_id, body.points, body.reason,
                                         body.idempotency_key, actor=caller.actor))


@router.post("/loyalty/members/{customer_id}/points/redeem", response_model=PointsResultOut,
             summary="Spend points on a gift; refused beyond the available balance")
def redeem(caller: Ingestor, db: Db, customer_id: int, body: RedeemPointsIn) -> Any:
    return _points(service.redeem_points(db, caller.workspace, customer_id, body.points, body.reason,
                                         body.idempotency_key, actor=caller.actor))


@router.post("/loyalty/members/{customer_id}/points/redeem-coupon", response_model=PointsResultOut,
             summary="Pay a coupon template's points price and receive the coupon")
def redeem_for_coupon(caller: Ingestor, db: Db, customer_id: int, body: RedeemForCouponIn) -> Any:
    return _points(service.redeem_points_for_coupon(db, caller.workspace, customer_id, body.template_id,
                                                    body.idempotency_key, actor=caller.actor))


@router.post("/loyalty/members/{customer_id}/points/deduct", response_model=PointsResultOut,
             summary="Use points as money off an order (one deduction per order id)")
def deduct(caller: Ingestor, db: Db, customer_id: int, body: DeductIn) -> Any:
    return _points(service.deduct_points(db, caller.workspace, customer_id, body.order_id, body.order_amount_fen,
                                         body.points, actor=caller.actor))


# -- benefits ----------------------------------------------------------------------------------

@router.get("/loyalty/benefit-runs", response_model=list[BenefitRunOut])
def benefit_runs(caller: Reader, db: Db) -> Any:
    return service.benefit_runs(db, caller.workspace.id)


@router.post("/loyalty/benefit-runs", response_model=BenefitRunOut,
             summary="Grant a month's benefits now (the rest of a large run continues as jobs); never twice")
def run_benefits(caller: Writer, db: Db, body: BenefitRunIn) -> Any:
    return service.start_benefit_run(db, caller.workspace, body.period)
