"""Compile a rule tree to one SQLAlchemy Core condition over `customers.id`.

Aggregates never load rows into Python: each condition is a set test against a subquery on the
workspace's rollups, orders, order items, events, tags or memberships, so the database answers the
whole rule in one statement. Negation is pushed down to the leaves (De Morgan) so that on
PostgreSQL a negated set test is a NOT EXISTS (an anti-join), never a NOT IN over a large subquery.

Counts and sums over nothing are 0: when a test holds for 0 (`count < 2`), the condition is written
as "not among the customers for whom it fails", so customers without any rows are included.

Everything that moves with time (windows, "days since", birthdays) is a named bound parameter
with a maker, so a compiled rule can be cached and re-run at a later `now` (see `params`).
A compiled rule can also be scoped to some customers (`scope_ids`): every subquery is then
restricted to them, which is what makes re-evaluating one customer across many rules cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter
from sqlalchemy.sql.operators import eq

from siyu.coupons.models import Coupon
from siyu.customers.models import Customer, Identity
from siyu.db.base import UTCDateTime, table_of
from siyu.events.models import CustomerRollup, Event, Order, OrderItem
from siyu.kit.errors import ValidationFailed
from siyu.loyalty.models import Member, Tier
from siyu.rules import sql
from siyu.rules.tree import (
    TEXT_FIELDS,
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

SCOPE = "scope_ids"
customers = table_of(Customer)
identities = table_of(Identity)
events = table_of(Event)
orders = table_of(Order)
order_items = table_of(OrderItem)
rollups = table_of(CustomerRollup)
customer_tags = table_of(CustomerTag)
memberships = table_of(SegmentMembership)
lifecycle = table_of(CustomerLifecycle)
rfm = table_of(CustomerRfm)
loyalty_members = table_of(Member)
loyalty_tiers = table_of(Tier)
coupons = table_of(Coupon)
REFUNDED = sql.text_constant("refunded")
Maker = Callable[[datetime], Any]


class UnscopedRule(ValidationFailed):
    code = "unscoped_rule"


@dataclass
class CompiledRule:
    """A rule as SQL. `condition` holds parameters bound at `now`; `params(later)` rebinds them."""

    condition: ColumnElement[bool]
    workspace_id: int
    scoped: bool
    makers: dict[str, Maker] = field(default_factory=dict)

    def params(self, now: datetime) -> dict[str, Any]:
        return {name: make(now) for name, make in self.makers.items()}

    def select(self) -> Select[Any]:
        """The ids of the (unmerged) customers of the workspace the rule holds for."""
        stmt = select(customers.c.id).where(*live_customers(self.workspace_id), self.condition)
        if self.scoped:
            stmt = stmt.where(customers.c.id.in_(scope_param()))
        check_workspace_scoped(stmt, self.workspace_id)
        return stmt


def scope_param() -> BindParameter[Any]:
    return bindparam(SCOPE, expanding=True)


def live_customers(workspace_id: int) -> list[ColumnElement[bool]]:
    return [customers.c.workspace_id == workspace_id, customers.c.merged_into_id.is_(None)]


def compile_rule(rule: Rule, *, workspace_id: int, timezone: str, dialect: str, now: datetime,
                 prefix: str = "r", scoped: bool = False) -> CompiledRule:
    compiler = _Compiler(workspace_id, ZoneInfo(timezone), dialect, now, prefix, scoped)
    condition = compiler.node(rule, positive=True)
    return CompiledRule(condition, workspace_id, scoped, compiler.makers)


def evaluation_select(rules: list[CompiledRule], workspace_id: int) -> Select[Any]:
    """One row per scoped customer with a 0/1 column per rule: many rules, one round trip."""
    columns = [case((r.condition, sql.ONE), else_=sql.ZERO).label(f"r{i}") for i, r in enumerate(rules)]
    stmt = (select(customers.c.id, *columns)
            .where(*live_customers(workspace_id), customers.c.id.in_(scope_param())))
    check_workspace_scoped(stmt, workspace_id)
    return stmt


# -- the workspace guard -------------------------------------------------------------------------

def check_workspace_scoped(stmt: Select[Any], workspace_id: int) -> None:
    """Refuse a statement in which any SELECT reads a table without `workspace_id = <this workspace>`.
    Inner SELECTs that mention the outer statement's tables are correlated to them, not reading them."""
    outer = {t for f in stmt.get_final_froms() for t in _tables_of(f)}
    for element in visitors.iterate(stmt):
        if not isinstance(element, Select):
            continue
        scoped = _scoped_tables(element.whereclause, workspace_id)
        for from_ in element.get_final_froms():
            for table in _tables_of(from_):
                if table not in scoped and (element is stmt or table not in outer):
                    raise UnscopedRule(f"the rule would read {table.name} without a workspace filter", field="rule")


def _tables_of(from_: Any) -> list[Any]:
    if hasattr(from_, "left") and hasattr(from_, "right"):
        return _tables_of(from_.left) + _tables_of(from_.right)
    return [from_] if hasattr(from_, "c") and "workspace_id" in from_.c and not hasattr(from_, "element") else []


def _scoped_tables(where: Any, workspace_id: int) -> set[Any]:
    found: set[Any] = set()
    if where is None:
        return found
    for element in visitors.iterate(where):
        if (isinstance(element, BinaryExpression) and element.operator is eq
                and getattr(element.left, "name", None) == "workspace_id"
                and isinstance(element.right, BindParameter) and element.right.value == workspace_id):
            found.add(element.left.table)
    return found


# -- compiling -----------------------------------------------------------------------------------

class _Compiler:
    def __init__(self, workspace_id: int, zone: ZoneInfo, dialect: str, now: datetime, prefix: str,
                 scoped: bool) -> None:
        # One parameter for every workspace filter of the statement.
        self.ws = bindparam("rule_workspace", value=workspace_id, type_=BigInteger())
        self.zone = zone
        self.dialect = dialect
        self.now = now
        self.prefix = prefix
        self.scoped = scoped
        self.makers: dict[str, Maker] = {}

    # -- parameters ------------------------------------------------------------------------------
    def moving(self, make: Maker, type_: Any = None, expanding: bool = False) -> BindParameter[Any]:
        name = f"{self.prefix}_{len(self.makers)}"
        self.makers[name] = make
        return bindparam(name, value=make(self.now), type_=type_, expanding=expanding)

    def ago(self, days: float) -> BindParameter[Any]:
        delta = timedelta(days=days)
        return self.moving(lambda now: now - delta, UTCDateTime())

    def local_midnight(self, day: date) -> BindParameter[Any]:
        at = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        return bindparam(None, value=at, type_=UTCDateTime())

    def in_scope(self, column: Any) -> list[ColumnElement[bool]]:
        return [column.in_(scope_param())] if self.scoped else []

    def window(self, column: Any, window: Window | None) -> list[ColumnElement[bool]]:
        if window is None:
            return []
        if window.last_days is not None:
            return [column >= self.ago(window.last_days), column <= self.ago(0)]
        clauses = []
        if window.start is not None:
            clauses.append(column >= self.local_midnight(window.start))
        if window.end is not None:
            clauses.append(column < self.local_midnight(window.end + timedelta(days=1)))
        return clauses

    # -- set tests -------------------------------------------------------------------------------
    def member(self, sub: Select[Any], positive: bool) -> ColumnElement[bool]:
        """`customers.id` is (positive) or is not among the customer ids `sub` selects."""
        if positive:
            return customers.c.id.in_(sub)
        if self.dialect == "postgresql":
            derived = sub.subquery()
            return ~exists(select(literal(1)).select_from(derived)
                           .where(derived.c[0] == customers.c.id))
        return customers.c.id.not_in(sub)

    def counted(self, sub: Select[Any], key: Any, aggregate: Any, compare: Compare, positive: bool
                ) -> ColumnElement[bool]:
        """A count or sum that is 0 for customers without rows."""
        grouped = sub.group_by(key)
        if compare.holds(0):
            return self.member(grouped.having(not_(self.test(aggregate, compare))), not positive)
        return self.member(grouped.having(self.test(aggregate, compare)), positive)

    @staticmethod
    def test(value: Any, compare: Compare) -> ColumnElement[bool]:
        number = sql.number(compare.value)
        match compare.op:
            case "eq":
                return value == number  # type: ignore[no-any-return]
            case "ne":
                return value != number  # type: ignore[no-any-return]
            case "gt":
                return value > number  # type: ignore[no-any-return]
            case "gte":
                return value >= number  # type: ignore[no-any-return]
            case "lt":
                return value < number  # type: ignore[no-any-return]
            case "lte":
                return value <= number  # type: ignore[no-any-return]
        assert compare.high is not None
        return and_(value >= number, value <= sql.number(compare.high))

    def elapsed(self, moment: Any, compare: Compare) -> ColumnElement[bool]:
        """"Days since `moment`" compared, written as comparisons of `moment` itself (index friendly)."""
        match compare.op:
            case "gt":
                return moment < self.ago(compare.value)  # type: ignore[no-any-return]
            case "gte":
                return moment <= self.ago(compare.value)  # type: ignore[no-any-return]
            case "lt":
                return moment > self.ago(compare.value)  # type: ignore[no-any-return]
            case "lte":
                return moment >= self.ago(compare.value)  # type: ignore[no-any-return]
        assert compare.high is not None
        return and_(moment >= self.ago(compare.high), moment <= self.ago(compare.value))

    # -- the tree --------------------------------------------------------------------------------
    def node(self, rule: Rule, positive: bool) -> ColumnElement[bool]:
        match rule:
            case AllOf(children):
                parts = [self.node(c, positive) for c in children]
                return and_(true(), *parts) if positive else or_(false(), *parts)
            case AnyOf(children):
                parts = [self.node(c, positive) for c in children]
                return or_(false(), *parts) if positive else and_(true(), *parts)
            case NotOf(child):
                return self.node(child, not positive)
            case ProfileCondition() | AttributeCondition():
                condition = self.profile(rule) if isinstance(rule, ProfileCondition) else self.json_test(
                    sql.JsonValue(self.dialect, customers.c.attributes, rule.test.key), rule.test)
                return condition if positive else not_(condition)
            case IdentityCondition(identity_type, present):
                sub = select(identities.c.customer_id).where(identities.c.workspace_id == self.ws,
                                                             identities.c.type == identity_type,
                                                             *self.in_scope(identities.c.customer_id))
                return self.member(sub, present == positive)
            case TagCondition():
                return self.tags(rule, positive)
            case EventCondition():
                return self.event(rule, positive)
            case OrderCondition():
                return self.order(rule, positive)
            case BoughtCondition():
                return self.bought(rule, positive)
            case SegmentCondition(segment_id, member):
                sub = select(memberships.c.customer_id).where(
                    memberships.c.workspace_id == self.ws, memberships.c.segment_id == segment_id,
                    memberships.c.exited_at.is_(None), *self.in_scope(memberships.c.customer_id))
                return self.member(sub, member == positive)
            case LifecycleCondition(stages):
                sub = select(lifecycle.c.customer_id).where(lifecycle.c.workspace_id == self.ws,
                                                            lifecycle.c.stage.in_(stages),
                                                            *self.in_scope(lifecycle.c.customer_id))
                return self.member(sub, positive)
            case RfmCondition():
                return self.rfm(rule, positive)
            case TierCondition(codes):
                sub = (select(loyalty_members.c.customer_id)
                       .join(loyalty_tiers, loyalty_tiers.c.id == loyalty_members.c.tier_id)
                       .where(loyalty_members.c.workspace_id == self.ws, loyalty_tiers.c.workspace_id == self.ws,
                              loyalty_members.c.status == sql.text_constant("active"), loyalty_tiers.c.code.in_(codes),
                              *self.in_scope(loyalty_members.c.customer_id)))
                return self.member(sub, positive)
            case PointsCondition(compare):
                sub = select(loyalty_members.c.customer_id).where(
                    loyalty_members.c.workspace_id == self.ws, loyalty_members.c.status == sql.text_constant("active"),
                    self.test(loyalty_members.c.points_balance, compare),
                    *self.in_scope(loyalty_members.c.customer_id))
                return self.member(sub, positive)
            case CouponCondition():
                return self.coupons(rule, positive)
        raise TypeError(f"not a rule node: {rule!r}")

    def coupons(self, rule: CouponCondition, positive: bool) -> ColumnElement[bool]:
        state, now = coupons.c.state, self.ago(0)
        in_state = {
            "usable": and_(state == "issued", coupons.c.valid_from <= now, coupons.c.valid_until > now),
            "expired": or_(state == "expired", and_(state == "issued", coupons.c.valid_until <= now)),
            "redeemed": state == "redeemed",
            "voided": state == "voided",
        }[rule.state]
        sub = select(coupons.c.customer_id).where(
            coupons.c.workspace_id == self.ws, in_state,
            *([coupons.c.template_id == rule.template_id] if rule.template_id is not None else []),
            *self.window(coupons.c.issued_at, rule.window), *self.in_scope(coupons.c.customer_id))
        return self.counted(sub, coupons.c.customer_id, func.count(), rule.compare, positive)

    # -- profile and custom attributes -----------------------------------------------------------
    def profile(self, rule: ProfileCondition) -> ColumnElement[bool]:
        column = customers.c[rule.field]
        op, value = rule.op, rule.value
        if op == "is_set" or op == "is_not_set":
            is_set: ColumnElement[bool] = column.is_not(None)
            if rule.field in TEXT_FIELDS:
                is_set = and_(is_set, column != "")
            return is_set if op == "is_set" else not_(is_set)
        if op == "within_next_days":
            zone = self.zone
            days = int(value)
            month_days = self.moving(lambda now: upcoming_month_days(now, zone, days), expanding=True)
            return and_(column.is_not(None), sql.month_day(self.dialect, column).in_(month_days))
        if op == "within_last_days":
            return and_(column.is_not(None), column >= self.ago(value))
        if op == "more_than_days_ago":
            return and_(column.is_not(None), column < self.ago(value))
        if op == "between":
            start, end = value
            clauses: list[ColumnElement[bool]] = [column.is_not(None)]
            if rule.field == "birthday":
                clauses += [column >= start] if start else []
                clauses += [column <= end] if end else []
            else:
                clauses += [column >= self.local_midnight(start)] if start else []
                clauses += [column < self.local_midnight(end + timedelta(days=1))] if end else []
            return and_(*clauses)
        is_set = and_(column.is_not(None), column != "")  # text fields from here on
        match op:
            case "eq":
                return and_(is_set, column == value)
            case "ne":
                return and_(is_set, column != value)
            case "in":
                return and_(is_set, column.in_(value))
            case "not_in":
                return and_(is_set, column.not_in(value))
            case "contains":
                return and_(is_set, sql.contains(self.dialect, column, value))
        return and_(is_set, sql.starts_with(column, value))

    def json_test(self, item: sql.JsonValue, test: ValueTest) -> ColumnElement[bool]:
        op, value = test.op, test.value
        if op == "is_set":
            return item.is_set
        if op == "is_not_set":
            return not_(item.is_set)
        if op in ("eq", "ne", "in", "not_in"):
            values = value if isinstance(value, tuple) else (value,)
            matches = or_(false(), *self.json_equals(item, values))
            return matches if op in ("eq", "in") else and_(item.is_set, not_(matches))
        if op == "contains":
            return and_(item.is_text, sql.contains(self.dialect, item.text, value))
        if op == "starts_with":
            return and_(item.is_text, sql.starts_with(item.text, value))
        bounds = Compare(op, value[0], value[1]) if op == "between" else Compare(op, value)
        return and_(item.is_number, self.test(item.number, bounds))

    @staticmethod
    def json_equals(item: sql.JsonValue, values: tuple[Any, ...]) -> list[ColumnElement[bool]]:
        texts = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        flags = [v for v in values if isinstance(v, bool)]
        tests = []
        if texts:
            tests.append(and_(item.is_text, item.text.in_(texts)))
        if numbers:
            tests.append(and_(item.is_number, item.number.in_(numbers)))
        tests.extend(item.is_bool(flag) for flag in flags)
        return tests

    # -- tags, events, orders, purchases, RFM ----------------------------------------------------
    def tags(self, rule: TagCondition, positive: bool) -> ColumnElement[bool]:
        def having(tag_ids: tuple[int, ...], member: bool) -> ColumnElement[bool]:
            sub = select(customer_tags.c.customer_id).where(
                customer_tags.c.workspace_id == self.ws, customer_tags.c.tag_id.in_(tag_ids),
                *self.in_scope(customer_tags.c.customer_id))
            return self.member(sub, member)

        if rule.op == "has_any":
            return having(rule.tag_ids, positive)
        if rule.op == "has_none":
            return having(rule.tag_ids, not positive)
        parts = [having((tag_id,), positive) for tag_id in rule.tag_ids]
        return and_(true(), *parts) if positive else or_(false(), *parts)

    def event(self, rule: EventCondition, positive: bool) -> ColumnElement[bool]:
        props = events.c.properties
        sub = select(events.c.customer_id).where(
            events.c.workspace_id == self.ws, events.c.type == rule.event_type,
            *self.window(events.c.occurred_at, rule.window),
            *(self.json_test(sql.JsonValue(self.dialect, props, t.key), t) for t in rule.where),
            *self.in_scope(events.c.customer_id))
        key = events.c.customer_id
        if rule.aggregate == "count":
            return self.counted(sub, key, func.count(), rule.compare, positive)
        if rule.aggregate in ("first", "last"):
            moment = (func.min if rule.aggregate == "first" else func.max)(events.c.occurred_at)
            return self.member(sub.group_by(key).having(self.elapsed(moment, rule.compare)), positive)
        assert rule.prop is not None
        number = sql.JsonValue(self.dialect, props, rule.prop).number
        if rule.aggregate == "sum":
            return self.counted(sub, key, func.coalesce(func.sum(number), 0), rule.compare, positive)
        extreme = (func.min if rule.aggregate == "min" else func.max)(number)
        return self.member(sub.group_by(key).having(and_(extreme.is_not(None), self.test(extreme, rule.compare))),
                           positive)

    def order(self, rule: OrderCondition, positive: bool) -> ColumnElement[bool]:
        measure, compare = rule.measure, rule.compare
        if measure.startswith("days_since"):
            moment = rollups.c.last_order_at if measure == "days_since_last_order" else rollups.c.first_order_at
            sub = select(rollups.c.customer_id).where(rollups.c.workspace_id == self.ws, moment.is_not(None),
                                                      self.elapsed(moment, compare),
                                                      *self.in_scope(rollups.c.customer_id))
            return self.member(sub, positive)
        if rule.window is None:  # all time: the rollups already hold the answer
            count, spend = rollups.c.orders_count, rollups.c.total_spend_fen
            base = select(rollups.c.customer_id).where(rollups.c.workspace_id == self.ws,
                                                       *self.in_scope(rollups.c.customer_id))
            if measure == "average_order_fen":
                return self.member(base.where(count > sql.ZERO, self.average(spend, count, compare)), positive)
            value = count if measure == "count" else spend
            if compare.holds(0):
                return self.member(base.where(not_(self.test(value, compare))), not positive)
            return self.member(base.where(self.test(value, compare)), positive)
        sub = select(orders.c.customer_id).where(
            orders.c.workspace_id == self.ws, orders.c.status != REFUNDED,
            *self.window(orders.c.paid_at, rule.window), *self.in_scope(orders.c.customer_id))
        key = orders.c.customer_id
        spent = func.sum(orders.c.total_fen - orders.c.refunded_fen)
        if measure == "average_order_fen":
            return self.member(sub.group_by(key).having(self.average(spent, func.count(), compare)), positive)
        aggregate = func.count() if measure == "count" else func.coalesce(spent, 0)
        return self.counted(sub, key, aggregate, compare, positive)

    def average(self, spend: Any, count: Any, compare: Compare) -> ColumnElement[bool]:
        """spend / count compared exactly, without division: spend op value × count."""
        if compare.op == "between":
            assert compare.high is not None
            return and_(spend >= count * sql.number(compare.value), spend <= count * sql.number(compare.high))
        return self.test(spend - count * sql.number(compare.value), Compare(compare.op, 0))

    def bought(self, rule: BoughtCondition, positive: bool) -> ColumnElement[bool]:
        if rule.category is not None:
            category = order_items.c.category
            matches = or_(category == rule.category, sql.starts_with(category, rule.category + "/"))
        else:
            matches = order_items.c.sku == rule.sku
        sub = (select(order_items.c.customer_id)
               .join(orders, orders.c.id == order_items.c.order_pk)
               .where(order_items.c.workspace_id == self.ws, orders.c.workspace_id == self.ws,
                      orders.c.status != REFUNDED, matches, *self.window(order_items.c.paid_at, rule.window),
                      *self.in_scope(order_items.c.customer_id)))
        return self.counted(sub, order_items.c.customer_id, func.count(order_items.c.order_pk.distinct()),
                            rule.compare, positive)

    def rfm(self, rule: RfmCondition, positive: bool) -> ColumnElement[bool]:
        if rule.rfm_class is not None:
            test = rfm.c.rfm_class == rule.rfm_class
        else:
            assert rule.compare is not None and rule.score is not None
            test = self.test(rfm.c[f"{rule.score}_score"], rule.compare)
        sub = select(rfm.c.customer_id).where(rfm.c.workspace_id == self.ws, test, *self.in_scope(rfm.c.customer_id))
        return self.member(sub, positive)


def upcoming_month_days(now: datetime, zone: ZoneInfo, days: int) -> list[str]:
    """'MM-DD' of the `days` calendar days starting today in the workspace's zone. People born on
    29 February celebrate on the 28th in other years."""
    today = now.astimezone(zone).date()
    found = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        found.append(day.strftime("%m-%d"))
        if day.month == 2 and day.day == 28 and not _leap(day.year):
            found.append("02-29")
    return found


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
