"""When a demo customer buys what: replenishment on consumption cycles, churn, return, refunds."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from siyu.demo.catalog import (
    BABY_FOOD,
    DIAPERS,
    FACE_MASK,
    MAKEUP,
    MILK_POWDER,
    PRODUCTS,
    SKINCARE,
    Product,
    products_in,
)
from siyu.demo.timeline import DAY, MINUTE, Activity, Window

Basket = tuple[int, tuple[tuple[Product, int], ...]]
Period = tuple[int, int]

# Which categories a customer replenishes, by interest, and how likely each is.
_LINE_CHANCES: dict[str, tuple[tuple[str, float], ...]] = {
    "baby": ((MILK_POWDER, 0.85), (DIAPERS, 0.7), (BABY_FOOD, 0.35)),
    "beauty": ((FACE_MASK, 0.85), (SKINCARE, 0.55), (MAKEUP, 0.3)),
    "both": ((MILK_POWDER, 0.7), (FACE_MASK, 0.75), (DIAPERS, 0.5), (SKINCARE, 0.4)),
}
# Units per order by category: (quantities, cumulative weights).
_QUANTITIES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    MILK_POWDER: ((1, 2, 3, 4), (55, 85, 95, 100)),
    DIAPERS: ((1, 2, 3), (50, 85, 100)),
    BABY_FOOD: ((1, 2, 3), (50, 80, 100)),
    FACE_MASK: ((1, 2, 3), (50, 85, 100)),
    SKINCARE: ((1, 2), (85, 100)),
    MAKEUP: ((1,), (100,)),
}
MEAN_ACTIVE_DAYS = 270    # mean time a customer keeps buying before churning
COMEBACK_SHARE = 0.3      # churned customers who come back (沉睡 → 回流)
BUNDLE_DAYS = 7           # lines due within this many days ride along in the same order
MISSED_SHARE = 0.04       # replenishments bought elsewhere
CROSS_SELL_SHARE = 0.1
REFUND_SHARE = 0.03
_MAX_ORDERS = 80
_REFUND_REASONS = ("七天无理由退货", "商品破损", "发错货", "不想要了")


@dataclass(slots=True)
class _Line:
    product: Product
    due: float


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    ts: int
    channel: str
    order_id: str


def choose_products(rng: random.Random, interest: str) -> list[Product]:
    """The SKUs a customer replenishes: one per category they buy, the first being the main one."""
    chances = _LINE_CHANCES[interest]
    chosen = [rng.choice(products_in(category)) for category, chance in chances if rng.random() < chance]
    return chosen or [rng.choice(products_in(chances[0][0]))]


def active_periods(rng: random.Random, first_ts: int, window: Window, once: bool) -> list[Period]:
    """When the customer buys: until churn, and for some a second period after a dormant spell."""
    if once:
        return [(first_ts, first_ts + 1)]
    stop = first_ts + int(rng.expovariate(1 / MEAN_ACTIVE_DAYS) * DAY)
    periods = [(first_ts, min(stop, window.end_ts))]
    if stop < window.end_ts and rng.random() < COMEBACK_SHARE:
        back = stop + int(rng.uniform(60, 150) * DAY)
        if back < window.end_ts:
            again = back + int(rng.expovariate(1 / MEAN_ACTIVE_DAYS) * DAY)
            periods.append((window.daytime(rng, back, stop), min(again, window.end_ts)))
    return periods


def plan_baskets(rng: random.Random, products: list[Product], periods: list[Period],
                 window: Window) -> list[Basket]:
    """Replenishment orders: each line comes due when the last units run out (cycle × quantity ×
    the customer's pace, ±20 %), lines due within BUNDLE_DAYS are bought together."""
    pace = rng.uniform(0.8, 1.2)
    lines = [_Line(product, 0.0) for product in products]
    baskets: list[Basket] = []
    for begin, stop in periods:
        for position, line in enumerate(lines):
            line.due = begin if position == 0 else begin + rng.uniform(0.1, 0.7) * _cycle_s(line.product)
        while len(baskets) < _MAX_ORDERS:
            due = min(line.due for line in lines)
            if due >= stop:
                break
            ts = begin if due == begin else window.daytime(rng, int(due), begin)
            basket = [line for line in lines if line.due <= due + BUNDLE_DAYS * DAY]
            items = tuple(_restock(rng, line, ts, pace) for line in basket)
            if rng.random() < CROSS_SELL_SHARE:
                items = _cross_sell(rng, items)
            if ts == begin or rng.random() >= MISSED_SHARE:
                baskets.append((ts, items))
    return baskets


def _cycle_s(product: Product) -> float:
    return float(product.consumption_cycle_days * DAY)


def _restock(rng: random.Random, line: _Line, ts: int, pace: float) -> tuple[Product, int]:
    quantities, cum = _QUANTITIES[line.product.category]
    quantity = rng.choices(quantities, cum_weights=cum)[0]
    jitter = min(1.25, max(0.75, rng.gauss(1.0, 0.08)))
    line.due = ts + _cycle_s(line.product) * quantity * pace * jitter
    return line.product, quantity


def _cross_sell(rng: random.Random, items: tuple[tuple[Product, int], ...]) -> tuple[tuple[Product, int], ...]:
    extra = rng.choice(PRODUCTS)
    if any(product.sku == extra.sku for product, _ in items):
        return items
    return (*items, (extra, 1))


@dataclass(frozen=True, slots=True)
class OrderContext:
    seed: int
    index: int
    home_market: str            # where they buy while not (yet) in the 私域
    wechat_since: int | None    # from then on the 小程序 competes for their orders
    window: Window


def order_activities(rng: random.Random, baskets: list[Basket], ctx: OrderContext,
                     out: list[Activity]) -> list[PlacedOrder]:
    """order_paid events (with browsing before 小程序 orders) and ~3 % order_refunded."""
    placed: list[PlacedOrder] = []
    for number, (ts, items) in enumerate(baskets, start=1):
        channel = _order_channel(rng, ctx.home_market, ctx.wechat_since, ts)
        order_id = f"DEMO-{ctx.seed}-{ctx.index}-{number}"
        properties = _order_properties(rng, order_id, channel, items, first=number == 1)
        out.append(Activity(ts, "order_paid", channel, properties))
        placed.append(PlacedOrder(ts, channel, order_id))
        if channel == "mini_program":
            _browse_before(rng, ts, items, ctx, out)
        if rng.random() < REFUND_SHARE:
            _refund(rng, ts, channel, properties, ctx, out)
    return placed


def _order_channel(rng: random.Random, home: str, wechat_since: int | None, ts: int) -> str:
    if wechat_since is None or ts < wechat_since:
        return home
    draw = rng.random()
    if home == "mini_program":
        return "mini_program" if draw < 0.92 else "tmall"
    if draw < 0.55:
        return "mini_program"
    if draw < 0.93:
        return home
    return "jd" if home != "jd" else "tmall"


def _order_properties(rng: random.Random, order_id: str, channel: str,
                      items: tuple[tuple[Product, int], ...], first: bool) -> dict[str, Any]:
    subtotal = sum(product.unit_price_fen * quantity for product, quantity in items)
    coupon_code, discount_fen = _coupon(rng, subtotal, first)
    return {
        "order_id": order_id,
        "channel": channel,
        "currency": "CNY",
        "total_fen": subtotal - discount_fen,
        "discount_fen": discount_fen,
        "items": [
            {"sku": p.sku, "name": p.name, "category": p.category, "quantity": quantity,
             "unit_price_fen": p.unit_price_fen}
            for p, quantity in items
        ],
        "coupon_code": coupon_code,
    }


def _coupon(rng: random.Random, subtotal_fen: int, first: bool) -> tuple[str | None, int]:
    """新人无门槛券 on some first orders, else occasionally 满减 or 折扣; never more than the subtotal."""
    if first and rng.random() < 0.3:
        return "NEW20", min(2000, subtotal_fen)          # 无门槛 ¥20
    draw = rng.random()
    if draw < 0.07 and subtotal_fen >= 30000:
        return "MJ300-40", 4000                          # 满300减40
    if draw < 0.12 and subtotal_fen >= 19900:
        return "MJ199-20", 2000                          # 满199减20
    if draw < 0.15:
        return "ZK95", subtotal_fen * 5 // 100           # 95折
    return None, 0


def _browse_before(rng: random.Random, ts: int, items: tuple[tuple[Product, int], ...], ctx: OrderContext,
                   out: list[Activity]) -> None:
    floor = max(ctx.window.start_ts, ctx.wechat_since or ctx.window.start_ts)
    pages = [("/", "小林母婴美妆 首页")] if rng.random() < 0.5 else []
    pages += [(f"/products/{p.sku}", p.name) for p, _ in items[: rng.randint(1, 2)]]
    moment = ts - rng.randint(5, 40) * MINUTE
    for page, title in pages:
        if floor <= moment < ts:
            out.append(Activity(moment, "page_view", "mini_program", {"page": page, "title": title}))
        moment += rng.randint(1, 6) * MINUTE


def _refund(rng: random.Random, ts: int, channel: str, order: dict[str, Any], ctx: OrderContext,
            out: list[Activity]) -> None:
    refund_ts = ts + int(rng.uniform(1, 12) * DAY)
    if refund_ts >= ctx.window.end_ts:
        return
    total: int = order["total_fen"]
    first_item = order["items"][0]
    amount = total if rng.random() < 0.7 else min(total, first_item["unit_price_fen"])
    properties = {
        "order_id": order["order_id"],
        "amount_fen": max(1, amount),
        "refund_id": "RF" + order["order_id"].removeprefix("DEMO"),
        "reason": rng.choice(_REFUND_REASONS),
    }
    out.append(Activity(refund_ts, "order_refunded", channel, properties, identity_ts=ts))
