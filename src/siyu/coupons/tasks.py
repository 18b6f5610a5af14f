"""Coupons' worker jobs: orders that carry a coupon code redeem it, refunds may restore it, merges
move coupons to the survivor, and the expiry tick."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.coupons import service
from siyu.coupons.errors import CouponNotFound
from siyu.coupons.rules import OrderLine
from siyu.jobs.registry import job_handler
from siyu.kit.errors import SiyuError
from siyu.workspaces.service import WorkspaceContext, context_of, get_workspace


def _ctx(session: Session, workspace_id: int) -> WorkspaceContext:
    return context_of(get_workspace(session, workspace_id))


def _lines(items: list[dict[str, Any]]) -> list[OrderLine]:
    return [OrderLine(str(i["sku"]), str(i.get("category", "uncategorised")), int(i.get("quantity", 1)),
                      int(i["unit_price_fen"])) for i in items]


@job_handler("coupons.on_order_paid")
def on_order_paid(session: Session, payload: dict[str, Any]) -> None:
    """An `order_paid` carrying the code of a coupon issued here redeems it. The shop has already taken
    the order, so a coupon that does not qualify is not an error here: the refusal is recorded in the
    audit log. Codes siyu never issued (a shop's own promotion codes) are left alone."""
    from siyu.events.service import events_by_ids

    ctx = _ctx(session, int(payload["workspace_id"]))
    orders = []
    for event in events_by_ids(session, ctx.id, [int(i) for i in payload["event_ids"]]):
        props = event.properties
        code = props.get("coupon_code")
        if event.type != "order_paid" or not code:
            continue
        gross = int(props["total_fen"]) + int(props.get("discount_fen", 0))
        try:
            with session.begin_nested():  # a refusal after the claim must leave nothing behind
                service.redeem_coupon(session, ctx, str(code), str(props["order_id"]), gross,
                                      _lines(props.get("items", [])), customer_id=event.customer_id,
                                      source="order_paid")
        except CouponNotFound:
            continue  # a shop's own promotion code (NEW20, 满减 codes), not a coupon issued here
        except SiyuError as exc:
            record_audit(session, ctx.id, "system", "coupon.redemption_refused", "order", props["order_id"],
                         {"code": exc.code, "message": exc.message})
        orders.append(str(props["order_id"]))
    service.restore_for_refunded_orders(session, ctx, orders)


@job_handler("coupons.on_order_refunded")
def on_order_refunded(session: Session, payload: dict[str, Any]) -> None:
    from siyu.events.service import events_by_ids

    ctx = _ctx(session, int(payload["workspace_id"]))
    events = events_by_ids(session, ctx.id, [int(i) for i in payload["event_ids"]])
    service.restore_for_refunded_orders(session, ctx, [str(e.properties["order_id"]) for e in events
                                                       if e.type == "order_refunded"])


@job_handler("coupons.on_customer_merged")
def on_customer_merged(session: Session, payload: dict[str, Any]) -> None:
    service.move_customer_coupons(session, int(payload["workspace_id"]), int(payload["absorbed_id"]),
                                  int(payload["survivor_id"]))


@job_handler("coupons.expire")
def expire(session: Session, payload: dict[str, Any]) -> None:
    for _ in range(20):
        if service.expire_coupons(session) == 0:
            break
