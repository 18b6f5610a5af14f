"""Coupons REST API: templates with stats, issuance (one, a list, a segment), redemption, listing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from siyu.coupons import service
from siyu.coupons.models import CouponTemplate
from siyu.coupons.rules import OrderLine
from siyu.coupons.schemas import (
    BulkIssueIn,
    BulkIssueOut,
    CouponListOut,
    CouponOut,
    IssueIn,
    RedeemIn,
    RedemptionOut,
    TemplateDetailOut,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
    TemplateStatsOut,
)
from siyu.web.deps import Db, Ingestor, Reader, Writer

router = APIRouter(prefix="/api/v1", tags=["coupons"])


def _stats_out(stats: service.TemplateStats) -> TemplateStatsOut:
    return TemplateStatsOut(template_id=stats.template_id, issued=stats.issued, redeemed=stats.redeemed,
                            expired=stats.expired, redemption_rate=stats.redemption_rate, gmv_fen=stats.gmv_fen,
                            discount_fen=stats.discount_fen)


def _detail(template: CouponTemplate, stats: service.TemplateStats) -> TemplateDetailOut:
    return TemplateDetailOut(**TemplateOut.model_validate(template).model_dump(), stats=_stats_out(stats))


@router.get("/coupons/templates", response_model=list[TemplateDetailOut], summary="Templates with their stats")
def list_templates(caller: Reader, db: Db, status: str | None = None) -> Any:
    templates = service.list_templates(db, caller.workspace.id, status)
    stats = service.template_stats(db, caller.workspace.id, [t.id for t in templates])
    return [_detail(t, stats[t.id]) for t in templates]


@router.post("/coupons/templates", response_model=TemplateOut, status_code=201)
def create_template(caller: Writer, db: Db, body: TemplateIn) -> Any:
    return service.create_template(db, caller.workspace, body, actor=caller.actor)


@router.get("/coupons/templates/{template_id}", response_model=TemplateDetailOut,
            summary="A template with issued, redeemed, redemption rate, GMV and discount of redeemed orders")
def get_template(caller: Reader, db: Db, template_id: int) -> Any:
    template = service.get_template(db, caller.workspace.id, template_id)
    return _detail(template, service.template_stats(db, caller.workspace.id, [template.id])[template.id])


@router.patch("/coupons/templates/{template_id}", response_model=TemplateOut)
def update_template(caller: Writer, db: Db, template_id: int, body: TemplatePatch) -> Any:
    return service.update_template(db, caller.workspace, template_id, body, actor=caller.actor)


@router.post("/coupons/issue", response_model=CouponOut, status_code=201,
             summary="Issue one coupon; the same idempotency key returns the first coupon")
def issue(caller: Writer, db: Db, body: IssueIn) -> Any:
    return service.issue_coupon(db, caller.workspace, body.template_id, body.customer_id,
                                f"api:{body.idempotency_key}")


@router.post("/coupons/issue-bulk", response_model=BulkIssueOut,
             summary="One coupon per listed customer or per current segment member (stock and limits apply)")
def issue_bulk(caller: Writer, db: Db, body: BulkIssueIn) -> Any:
    if body.segment_id is not None:
        return service.issue_coupons_to_segment(db, caller.workspace, body.template_id, body.segment_id,
                                                body.idempotency_key)
    return service.issue_coupons_bulk(db, caller.workspace, body.template_id, body.customer_ids or [],
                                      body.idempotency_key)


@router.post("/coupons/redeem", response_model=RedemptionOut,
             summary="Redeem a code on an order, once; the same code and order again returns the first result")
def redeem(caller: Ingestor, db: Db, body: RedeemIn) -> Any:
    lines = [OrderLine(i.sku, i.category, i.quantity, i.unit_price_fen) for i in body.items]
    result = service.redeem_coupon(db, caller.workspace, body.code, body.order_id, body.order_amount_fen, lines,
                                   customer_id=body.customer_id)
    return RedemptionOut(code=result.code, template_id=result.template_id, customer_id=result.customer_id,
                         order_id=result.order_id, order_amount_fen=result.order_amount_fen,
                         discount_fen=result.discount_fen, payable_fen=result.payable_fen,
                         gift_name=result.gift_name, redeemed_at=result.redeemed_at)


@router.get("/coupons", response_model=CouponListOut)
def list_coupons(caller: Reader, db: Db, customer_id: int | None = None, state: str | None = None,
                 template_id: int | None = None, cursor: str | None = None,
                 limit: int = Query(50, ge=1, le=200)) -> Any:
    items, next_cursor = service.list_coupons(db, caller.workspace.id, customer_id=customer_id, state=state,
                                              template_id=template_id, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/coupons/{code}", response_model=CouponOut)
def get_coupon(caller: Reader, db: Db, code: str) -> Any:
    return service.find_coupon(db, caller.workspace.id, code)


@router.post("/coupons/{code}/void", response_model=CouponOut)
def void_coupon(caller: Writer, db: Db, code: str) -> Any:
    return service.void_coupon(db, caller.workspace, code, actor=caller.actor)
