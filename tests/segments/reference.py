"""A plain-Python evaluator of rules, for tests only: it loads the workspace's records and answers a
rule customer by customer, written from the semantics in `siyu.rules.tree`, not from the compiler."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.coupons.models import Coupon
from siyu.customers.models import Customer, Identity
from siyu.events.models import Event, Order, OrderItem
from siyu.loyalty.models import Member, Tier
from siyu.rules.tree import (
    AllOf,
    AnyOf,
    AttributeCondition,
    BoughtCondition,
    Compare,
    CouponCondition,
    EventCondition,
    IdentityCondition,
    LifecycleCondition,
    NotOf,
    OrderCondition,
    PointsCondition,
    ProfileCondition,
    RfmCondition,
    Rule,
    SegmentCondition,
    TagCondition,
    TierCondition,
    ValueTest,
    Window,
)
from siyu.segments.models import CustomerLifecycle, CustomerRfm, SegmentMembership
from siyu.tags.models import CustomerTag

DAY = timedelta(days=1)


@dataclass
class World:
    now: datetime
    zone: ZoneInfo
    customers: dict[int, Customer] = field(default_factory=dict)
    identity_types: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: dict[int, list[Event]] = field(default_factory=lambda: defaultdict(list))
    orders: dict[int, list[Order]] = field(default_factory=lambda: defaultdict(list))
    items: dict[int, list[OrderItem]] = field(default_factory=lambda: defaultdict(list))
    tags: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    segments: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    stages: dict[int, str] = field(default_factory=dict)
    rfm: dict[int, CustomerRfm] = field(default_factory=dict)
    members: dict[int, tuple[str, int]] = field(default_factory=dict)  # active members: (tier code, points)
    coupons: dict[int, list[Coupon]] = field(default_factory=lambda: defaultdict(list))


def load_world(session: Session, workspace_id: int, now: datetime, timezone: str) -> World:
    world = World(now, ZoneInfo(timezone))
    for customer in session.scalars(select(Customer).where(Customer.workspace_id == workspace_id,
                                                           Customer.merged_into_id.is_(None))):
        world.customers[customer.id] = customer
    for identity in session.scalars(select(Identity).where(Identity.workspace_id == workspace_id)):
        world.identity_types[identity.customer_id].add(identity.type)
    for event in session.scalars(select(Event).where(Event.workspace_id == workspace_id)):
        world.events[event.customer_id].append(event)
    for order in session.scalars(select(Order).where(Order.workspace_id == workspace_id)):
        world.orders[order.customer_id].append(order)
    for item in session.scalars(select(OrderItem).where(OrderItem.workspace_id == workspace_id)):
        world.items[item.customer_id].append(item)
    for tag in session.scalars(select(CustomerTag).where(CustomerTag.workspace_id == workspace_id)):
        world.tags[tag.customer_id].add(tag.tag_id)
    for stay in session.scalars(select(SegmentMembership).where(SegmentMembership.workspace_id == workspace_id,
                                                                SegmentMembership.exited_at.is_(None))):
        world.segments[stay.customer_id].add(stay.segment_id)
    for stage in session.scalars(select(CustomerLifecycle).where(CustomerLifecycle.workspace_id == workspace_id)):
        world.stages[stage.customer_id] = stage.stage
    for scores in session.scalars(select(CustomerRfm).where(CustomerRfm.workspace_id == workspace_id)):
        world.rfm[scores.customer_id] = scores
    codes = dict(session.execute(select(Tier.id, Tier.code).where(Tier.workspace_id == workspace_id)).all())
    for member in session.scalars(select(Member).where(Member.workspace_id == workspace_id)):
        if member.status == "active":
            world.members[member.customer_id] = (codes[member.tier_id], member.points_balance)
    for coupon in session.scalars(select(Coupon).where(Coupon.workspace_id == workspace_id)):
        world.coupons[coupon.customer_id].append(coupon)
    return world


def evaluate(rule: Rule, world: World) -> set[int]:
    return {cid for cid in world.customers if holds(rule, cid, world)}


def holds(rule: Rule, cid: int, w: World) -> bool:
    match rule:
        case AllOf(children):
            return all(holds(c, cid, w) for c in children)
        case AnyOf(children):
            return any(holds(c, cid, w) for c in children)
        case NotOf(child):
            return not holds(child, cid, w)
        case ProfileCondition():
            return _profile(rule, getattr(w.customers[cid], rule.field), w)
        case AttributeCondition(test):
            return value_holds(test, (w.customers[cid].attributes or {}))
        case IdentityCondition(identity_type, present):
            return (identity_type in w.identity_types[cid]) == present
        case TagCondition(op, tag_ids):
            worn = w.tags[cid] & set(tag_ids)
            return {"has_any": bool(worn), "has_all": worn == set(tag_ids), "has_none": not worn}[op]
        case SegmentCondition(segment_id, member):
            return (segment_id in w.segments[cid]) == member
        case LifecycleCondition(stages):
            return w.stages.get(cid) in stages
        case RfmCondition(rfm_class, score, compare):
            scores = w.rfm.get(cid)
            if scores is None:
                return False
            if rfm_class is not None:
                return scores.rfm_class == rfm_class
            assert compare is not None
            return compare.holds(getattr(scores, f"{score}_score"))
        case EventCondition():
            return _event(rule, cid, w)
        case OrderCondition():
            return _order(rule, cid, w)
        case BoughtCondition():
            return _bought(rule, cid, w)
        case TierCondition(tiers):
            return cid in w.members and w.members[cid][0] in tiers
        case PointsCondition(compare):
            return cid in w.members and compare.holds(w.members[cid][1])
        case CouponCondition():
            return _coupons(rule, cid, w)
    raise TypeError(rule)


def _midnight(day: date, w: World) -> datetime:
    return datetime.combine(day, time(0), tzinfo=w.zone).astimezone(UTC)


def in_window(moment: datetime, window: Window | None, w: World) -> bool:
    if window is None:
        return True
    if window.last_days is not None:
        return w.now - window.last_days * DAY <= moment <= w.now
    if window.start is not None and moment < _midnight(window.start, w):
        return False
    return not (window.end is not None and moment >= _midnight(window.end + DAY, w))


def _profile(rule: ProfileCondition, value: Any, w: World) -> bool:
    op, arg = rule.op, rule.value
    is_set = value is not None and value != ""
    if op == "is_set":
        return is_set
    if op == "is_not_set":
        return not is_set
    if not is_set:
        return False
    if op == "within_next_days":
        today = w.now.astimezone(w.zone).date()
        for offset in range(arg):
            day = today + timedelta(days=offset)
            if (value.month, value.day) == (day.month, day.day):
                return True
            leap = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
            if (value.month, value.day) == (2, 29) and (day.month, day.day) == (2, 28) and not leap:
                return True
        return False
    if op == "within_last_days":
        return bool(value >= w.now - arg * DAY)
    if op == "more_than_days_ago":
        return bool(value < w.now - arg * DAY)
    if op == "between":
        start, end = arg
        if isinstance(value, datetime):
            return in_window(value, Window(start=start, end=end), w)
        return (start is None or value >= start) and (end is None or value <= end)
    return {"eq": lambda: value == arg, "ne": lambda: value != arg, "in": lambda: value in arg,
            "not_in": lambda: value not in arg, "contains": lambda: arg in value,
            "starts_with": lambda: value.startswith(arg)}[op]()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "other"


def _equals(value: Any, wanted: Any) -> bool:
    return _kind(value) == _kind(wanted) and value == wanted


def value_holds(test: ValueTest, document: dict[str, Any]) -> bool:
    present = test.key in document
    value = document.get(test.key)
    is_set = present and value is not None and value != ""
    op, arg = test.op, test.value
    if op == "is_set":
        return is_set
    if op == "is_not_set":
        return not is_set
    if op in ("eq", "in"):
        return any(_equals(value, a) for a in (arg if op == "in" else (arg,)))
    if op in ("ne", "not_in"):
        return is_set and not any(_equals(value, a) for a in (arg if op == "not_in" else (arg,)))
    if op == "contains":
        return _kind(value) == "text" and arg in value
    if op == "starts_with":
        return _kind(value) == "text" and value.startswith(arg)
    if _kind(value) != "number":
        return False
    compare = Compare(op, arg[0], arg[1]) if op == "between" else Compare(op, arg)
    return compare.holds(value)


def _elapsed_days(moment: datetime, w: World) -> float:
    return (w.now - moment) / DAY


def _event(rule: EventCondition, cid: int, w: World) -> bool:
    chosen = [e for e in w.events[cid] if e.type == rule.event_type and in_window(e.occurred_at, rule.window, w)
              and all(value_holds(t, e.properties or {}) for t in rule.where)]
    if rule.aggregate == "count":
        return rule.compare.holds(len(chosen))
    if rule.aggregate in ("first", "last"):
        if not chosen:
            return False
        moment = (min if rule.aggregate == "first" else max)(e.occurred_at for e in chosen)
        return rule.compare.holds(_elapsed_days(moment, w))
    numbers = [(e.properties or {}).get(rule.prop) for e in chosen]
    numbers = [n for n in numbers if _kind(n) == "number"]
    if rule.aggregate == "sum":
        return rule.compare.holds(sum(numbers))
    if not numbers:
        return False
    return rule.compare.holds((min if rule.aggregate == "min" else max)(numbers))


def _paid(cid: int, w: World, window: Window | None) -> list[Order]:
    return [o for o in w.orders[cid] if o.status != "refunded" and in_window(o.paid_at, window, w)]


def _order(rule: OrderCondition, cid: int, w: World) -> bool:
    orders = _paid(cid, w, rule.window)
    if rule.measure == "count":
        return rule.compare.holds(len(orders))
    spent = sum(o.total_fen - o.refunded_fen for o in orders)
    if rule.measure == "total_spend_fen":
        return rule.compare.holds(spent)
    if not orders:
        return False
    if rule.measure == "average_order_fen":
        return _holds_exactly(rule.compare, Fraction(spent, len(orders)))
    moments = [o.paid_at for o in orders]
    moment = max(moments) if rule.measure == "days_since_last_order" else min(moments)
    return rule.compare.holds(_elapsed_days(moment, w))


def _holds_exactly(compare: Compare, value: Fraction) -> bool:
    low = Fraction(compare.value)
    if compare.op == "between":
        assert compare.high is not None
        return low <= value <= Fraction(compare.high)
    return Compare(compare.op, 0).holds(value - low)  # type: ignore[arg-type]


def _bought(rule: BoughtCondition, cid: int, w: World) -> bool:
    live = {o.id for o in w.orders[cid] if o.status != "refunded"}
    matching = {i.order_pk for i in w.items[cid]
                if i.order_pk in live and in_window(i.paid_at, rule.window, w)
                and (i.sku == rule.sku if rule.sku is not None
                     else i.category == rule.category or i.category.startswith(f"{rule.category}/"))}
    return rule.compare.holds(len(matching))


def _coupons(rule: CouponCondition, cid: int, w: World) -> bool:
    def in_state(coupon: Coupon) -> bool:
        usable_now = coupon.state == "issued" and coupon.valid_from <= w.now < coupon.valid_until
        past = coupon.state == "expired" or (coupon.state == "issued" and coupon.valid_until <= w.now)
        return {"usable": usable_now, "expired": past}.get(rule.state, coupon.state == rule.state)

    counted = [c for c in w.coupons[cid] if in_state(c) and in_window(c.issued_at, rule.window, w)
               and (rule.template_id is None or c.template_id == rule.template_id)]
    return rule.compare.holds(len(counted))
