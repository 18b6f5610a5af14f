"""Redeeming a coupon on an order, restoring it after a refund, expiring it, and merges.

Redemption checks everything first (state, validity, owner, threshold, scope) and then claims the
coupon with one conditional `UPDATE ... WHERE state = 'issued'`: whatever the concurrency, exactly
one claim wins. Redeeming the same code for the same order again returns the first result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.coupons import repository
from siyu.coupons.errors import (
    CouponAlreadyRedeemed,
    CouponExpired,
    CouponNotFound,
    CouponNotOwned,
    CouponNotYetValid,
    CouponVoided,
)
from siyu.coupons.models import Coupon, CouponTemplate
from siyu.coupons.repository import Redeemable
from siyu.coupons.rules import Offer, OrderLine, discount_for
from siyu.coupons.service.issuance import normalise_code
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.workspaces.service import WorkspaceContext


@dataclass(frozen=True)
class Redemption:
    code: str
    template_id: int
    customer_id: int
    order_id: str
    order_amount_fen: int
    discount_fen: int
    gift_name: str | None
    redeemed_at: datetime

    @property
    def payable_fen(self) -> int:
        return self.order_amount_fen - self.discount_fen


def _gift(coupon: Redeemable) -> str | None:
    return coupon.gift_name if coupon.kind == "gift" else None


def _check_money(order_amount_fen: object, lines: Sequence[OrderLine]) -> None:
    if not isinstance(order_amount_fen, int) or isinstance(order_amount_fen, bool) or order_amount_fen < 0:
        raise ValidationFailed("order_amount_fen is a whole, non-negative number of fen", field="order_amount_fen")
    for index, line in enumerate(lines):
        if line.unit_price_fen < 0 or line.quantity <= 0:
            raise ValidationFailed("item prices are non-negative fen and quantities positive",
                                   field=f"items[{index}]")


def redeem_coupon(session: Session, ctx: WorkspaceContext, code: str, order_id: str, order_amount_fen: int,
                  lines: Sequence[OrderLine] = (), *, customer_id: int | None = None,
                  source: str = "api") -> Redemption:
    _check_money(order_amount_fen, lines)
    coupon = repository.redeemable(session, ctx.id, normalise_code(code))
    if coupon is None:
        raise CouponNotFound("no coupon with this code", field="code")
    if customer_id is not None:
        from siyu.customers.service import resolve_customer_id

        if resolve_customer_id(session, ctx.id, customer_id) != coupon.customer_id:
            raise CouponNotOwned("this coupon belongs to another customer", field="code")
    if coupon.state == "redeemed":
        return _replay(session, coupon, order_id)
    now = clock.now()
    _check_usable(coupon, now)
    offer = Offer(coupon.kind, coupon.amount_off_fen, coupon.threshold_fen, coupon.percent_off,
                  coupon.max_discount_fen, tuple(coupon.categories or ()), tuple(coupon.skus or ()))
    discount = discount_for(offer, order_amount_fen, lines)
    claimed, recorded = repository.claim_and_record(session, {
        "workspace_id": ctx.id, "coupon_id": coupon.id, "template_id": coupon.template_id,
        "customer_id": coupon.customer_id, "order_id": order_id, "order_amount_fen": order_amount_fen,
        "discount_fen": discount, "source": source, "redeemed_at": now})
    if not claimed:
        # Another redemption (or the expiry) won between our read and our claim.
        current = repository.redeemable(session, ctx.id, coupon.code)
        assert current is not None
        if current.state == "redeemed":
            return _replay(session, current, order_id)
        _check_usable(current, now)
        raise CouponExpired("this coupon has expired", field="code")
    if not recorded:
        raise CouponAlreadyRedeemed("this coupon was used on this order and given back by its refund",
                                    field="code")
    return Redemption(coupon.code, coupon.template_id, coupon.customer_id, order_id, order_amount_fen, discount,
                      _gift(coupon), now)


def _replay(session: Session, coupon: Redeemable, order_id: str) -> Redemption:
    """The same code for the same order returns the first result; any other order finds it used."""
    previous = repository.redemption_of(session, coupon.id, order_id)
    if previous is not None and previous.restored_at is None:
        return Redemption(coupon.code, coupon.template_id, coupon.customer_id, previous.order_id,
                          previous.order_amount_fen, previous.discount_fen, _gift(coupon), previous.redeemed_at)
    raise CouponAlreadyRedeemed("this coupon was already used", field="code")


def _check_usable(coupon: Redeemable | Coupon, now: datetime) -> None:
    if coupon.state == "redeemed":
        raise CouponAlreadyRedeemed("this coupon was already used", field="code")
    if coupon.state == "voided":
        raise CouponVoided("this coupon was voided", field="code")
    if coupon.state == "expired" or coupon.valid_until <= now:
        raise CouponExpired("this coupon has expired", field="code")
    if coupon.valid_from > now:
        raise CouponNotYetValid("this coupon is not valid yet", field="code")


def restore_for_refunded_orders(session: Session, ctx: WorkspaceContext, order_ids: Sequence[str]) -> int:
    """Give coupons back for fully refunded orders when their template says so and they are still valid."""
    from siyu.events.service import orders_by_order_ids

    orders = orders_by_order_ids(session, ctx.id, list(order_ids))
    refunded = [oid for oid, order in orders.items() if order.status == "refunded"]
    if not refunded:
        return 0
    now = clock.now()
    restored = 0
    for row in repository.redemptions_of_orders(session, ctx.id, refunded):
        coupon = session.get(Coupon, row.coupon_id)
        template = session.get(CouponTemplate, row.template_id)
        assert coupon is not None and template is not None
        if not template.restore_on_refund or coupon.valid_until <= now:
            continue
        if repository.give_back(session, coupon.id):
            row.restored_at = now
            restored += 1
    session.flush()
    return restored


def void_coupon(session: Session, ctx: WorkspaceContext, code: str, *, actor: str) -> Coupon:
    from siyu.audit.service import record_audit

    coupon = repository.coupon_by_code(session, ctx.id, normalise_code(code))
    if coupon is None:
        raise CouponNotFound("no coupon with this code", field="code")
    if not repository.end_issued(session, coupon.id, "voided", clock.now()):
        refreshed = repository.coupon_by_code(session, ctx.id, coupon.code)
        assert refreshed is not None
        _check_usable(refreshed, clock.now())
    record_audit(session, ctx.id, actor, "coupon.voided", "coupon", coupon.id, {})
    result = repository.coupon_by_code(session, ctx.id, coupon.code)
    assert result is not None
    return result


def expire_coupons(session: Session, *, limit: int = 5000) -> int:
    """Mark issued coupons past their validity as expired, every workspace, `limit` at a time."""
    now = clock.now()
    ids = repository.due_for_expiry(session, now, limit)
    return repository.mark_expired(session, ids, now) if ids else 0


def move_customer_coupons(session: Session, workspace_id: int, absorbed_id: int, survivor_id: int) -> int:
    """After a customer merge the survivor holds the absorbed profile's coupons and redemptions."""
    return repository.move_customer(session, workspace_id, absorbed_id, survivor_id)


def usable_coupon_count(session: Session, workspace_id: int, customer_id: int) -> int:
    return repository.count_usable(session, workspace_id, customer_id, clock.now())


def find_coupon(session: Session, workspace_id: int, code: str) -> Coupon:
    coupon = repository.coupon_by_code(session, workspace_id, normalise_code(code))
    if coupon is None:
        raise CouponNotFound("no coupon with this code", field="code")
    return coupon


def list_coupons(session: Session, workspace_id: int, *, customer_id: int | None = None, state: str | None = None,
                 template_id: int | None = None, cursor: str | None = None,
                 limit: int = 50) -> tuple[list[Coupon], str | None]:
    return repository.list_coupons(session, workspace_id, customer_id=customer_id, state=state,
                                   template_id=template_id, cursor=cursor, limit=max(1, min(limit, 200)))
