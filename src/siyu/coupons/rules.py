"""How a coupon prices an order: pure functions, no database.

The threshold and the discount apply to the *eligible* amount: the whole order when the template has
no scope, otherwise the lines whose sku or category is in scope (a category also covers its
sub-categories: "母婴" covers "母婴/奶粉"). The discount never exceeds the eligible amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from siyu.coupons.errors import BelowThreshold, NotApplicable


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    category: str
    quantity: int
    unit_price_fen: int

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.unit_price_fen


@dataclass(frozen=True, slots=True)
class Offer:
    kind: str
    amount_off_fen: int | None
    threshold_fen: int
    percent_off: int | None
    max_discount_fen: int | None
    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()


def in_scope(offer: Offer, line: OrderLine) -> bool:
    if line.sku in offer.skus:
        return True
    return any(line.category == c or line.category.startswith(c + "/") for c in offer.categories)


def eligible_amount(offer: Offer, order_amount_fen: int, lines: Sequence[OrderLine]) -> int:
    if not offer.categories and not offer.skus:
        return order_amount_fen
    if not lines:
        raise NotApplicable("this coupon applies to some categories or skus only: send the order's items",
                            field="items")
    amount = sum(line.amount_fen for line in lines if in_scope(offer, line))
    if amount == 0:
        raise NotApplicable("no item of the order is in this coupon's scope", field="items")
    return min(amount, order_amount_fen)


def discount_for(offer: Offer, order_amount_fen: int, lines: Sequence[OrderLine]) -> int:
    """The discount in fen, or an error when the order does not qualify. Gifts discount nothing."""
    base = eligible_amount(offer, order_amount_fen, lines)
    if base < offer.threshold_fen:
        raise BelowThreshold(f"this coupon needs {offer.threshold_fen} fen of eligible items; the order has {base}",
                             field="order_amount_fen")
    if offer.kind in ("amount_off", "threshold_off"):
        return min(offer.amount_off_fen or 0, base)
    if offer.kind == "percent_off":
        discount = base * (offer.percent_off or 0) // 100
        return discount if offer.max_discount_fen is None else min(discount, offer.max_discount_fen)
    return 0
