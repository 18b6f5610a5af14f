"""The rule tree: typed nodes, and the JSON they are written in.

A rule is a tree of groups — `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}` — over conditions,
each an object with a `kind`:

    {"kind": "profile",   "field": "city", "op": "in", "value": ["上海", "杭州"]}
    {"kind": "profile",   "field": "birthday", "op": "within_next_days", "value": 7}
    {"kind": "attribute", "key": "baby_age_months", "op": "between", "value": {"min": 0, "max": 12}}
    {"kind": "identity",  "identity_type": "wecom_external_userid", "op": "present"}
    {"kind": "tag",       "op": "has_any", "tags": [3, 5]}
    {"kind": "event",     "event_type": "page_view", "aggregate": "count", "window": 30,
                          "where": [{"key": "page", "op": "starts_with", "value": "/promo"}],
                          "op": "gte", "value": 3}
    {"kind": "order",     "measure": "count", "window": {"last_days": 90}, "op": "gte", "value": 2}
    {"kind": "bought",    "category": "母婴", "window": 180, "op": "gte", "value": 2}
    {"kind": "segment",   "op": "in", "segment_id": 7}
    {"kind": "lifecycle", "stages": ["sleeping", "lost"]}
    {"kind": "rfm",       "class": "important_value"}      or   {"kind": "rfm", "score": "r", "op": "gte", "value": 4}
    {"kind": "tier",      "tiers": ["gold", "diamond"]}
    {"kind": "points",    "op": "gte", "value": 500}
    {"kind": "coupon",    "state": "usable", "template_id": 4, "op": "gte", "value": 1}

A window is a number of days back from now (`30` or `{"last_days": 30}`) or workspace-local
calendar dates, both inclusive (`{"from": "2026-01-01", "to": "2026-03-31"}`); no window means
all time. Semantics the compiler and the reference evaluator share:

- Every condition is true or false, never unknown: `not` of a condition is exactly its complement.
- Comparisons (eq, ne, in, not_in, contains, starts_with, gt..between) hold only for values that
  are set; blank values (missing, null, "") are matched by `is_not_set` alone.
- Custom attributes and event properties compare within their JSON type: `"3"` never equals `3`.
- count and sum over no events are 0; min, max, first and last over no events make the condition false.
  `first` / `last` are the days since the first / last matching event.
- Orders that were refunded in full do not count; spend is what was paid minus what was refunded.
- Tier and points read active members of the loyalty programme; coupons count like events (0 when none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from siyu.kit.errors import ValidationFailed

MAX_DEPTH = 8
MAX_CONDITIONS = 60
MAX_LIST = 500
MAX_WINDOW_DAYS = 3660

TEXT_FIELDS = ("name", "gender", "phone", "email", "city", "province", "acquisition_channel")
DATE_FIELDS = ("birthday",)
TIME_FIELDS = ("first_seen_at", "last_seen_at", "created_at")
PROFILE_FIELDS = TEXT_FIELDS + DATE_FIELDS + TIME_FIELDS

TEXT_OPS = ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_set", "is_not_set")
DATE_OPS = ("within_next_days", "between", "is_set", "is_not_set")
TIME_OPS = ("within_last_days", "more_than_days_ago", "between", "is_set", "is_not_set")
JSON_OPS = ("eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "between",
            "is_set", "is_not_set")
NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
ELAPSED_OPS = ("gt", "gte", "lt", "lte", "between")  # days since: a real number, so no eq / ne
AGGREGATES = ("count", "sum", "min", "max", "first", "last")
ORDER_MEASURES = ("count", "total_spend_fen", "average_order_fen", "days_since_last_order",
                  "days_since_first_order")
TAG_OPS = ("has_any", "has_all", "has_none")
LIFECYCLE_STAGES = ("prospect", "new", "active", "sleeping", "lost", "returned")
RFM_CLASSES = ("important_value", "important_develop", "important_keep", "important_retain",
               "general_value", "general_develop", "general_keep", "general_retain")
RFM_SCORES = ("r", "f", "m")
# usable: issued and valid now; expired: past its validity (whether or not the expiry job ran yet)
COUPON_STATES = ("usable", "redeemed", "expired", "voided")

KEY_PATTERN = re.compile(r"^[\w\-]{1,64}$")
EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,99}$")
IDENTITY_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,49}$")


# -- nodes -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Compare:
    """A test of a number: `op value`, or `low <= x <= high` for between."""

    op: str
    value: float
    high: float | None = None

    def holds(self, x: float) -> bool:
        match self.op:
            case "eq":
                return x == self.value
            case "ne":
                return x != self.value
            case "gt":
                return x > self.value
            case "gte":
                return x >= self.value
            case "lt":
                return x < self.value
            case "lte":
                return x <= self.value
        assert self.high is not None
        return self.value <= x <= self.high


@dataclass(frozen=True, slots=True)
class Window:
    last_days: int | None = None
    start: date | None = None  # workspace-local calendar days, both inclusive
    end: date | None = None


@dataclass(frozen=True, slots=True)
class ValueTest:
    """A test of a custom attribute or an event property (JSON values, compared within their type)."""

    key: str
    op: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    child: Rule


@dataclass(frozen=True, slots=True)
class ProfileCondition:
    field: str
    op: str
    value: Any = None  # str | tuple[str, ...] | int (days) | tuple[date | None, date | None]


@dataclass(frozen=True, slots=True)
class AttributeCondition:
    test: ValueTest


@dataclass(frozen=True, slots=True)
class IdentityCondition:
    identity_type: str
    present: bool


@dataclass(frozen=True, slots=True)
class TagCondition:
    op: str
    tag_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EventCondition:
    event_type: str
    aggregate: str
    compare: Compare
    prop: str | None = None
    where: tuple[ValueTest, ...] = ()
    window: Window | None = None


@dataclass(frozen=True, slots=True)
class OrderCondition:
    measure: str
    compare: Compare
    window: Window | None = None


@dataclass(frozen=True, slots=True)
class BoughtCondition:
    """Orders holding an item of a category (or any category under it: 母婴 covers 母婴/奶粉) or a SKU."""

    compare: Compare
    category: str | None = None
    sku: str | None = None
    window: Window | None = None


@dataclass(frozen=True, slots=True)
class SegmentCondition:
    segment_id: int
    member: bool


@dataclass(frozen=True, slots=True)
class LifecycleCondition:
    stages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RfmCondition:
    rfm_class: str | None = None
    score: str | None = None
    compare: Compare | None = None


@dataclass(frozen=True, slots=True)
class TierCondition:
    """An active member of the loyalty programme on one of these tiers (by tier code)."""

    tiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PointsCondition:
    """The available points balance of an active member (non-members never match)."""

    compare: Compare


@dataclass(frozen=True, slots=True)
class CouponCondition:
    """How many of the customer's coupons are in a state (of a template, issued within a window)."""

    state: str
    compare: Compare
    template_id: int | None = None
    window: Window | None = None


Condition = (ProfileCondition | AttributeCondition | IdentityCondition | TagCondition | EventCondition
             | OrderCondition | BoughtCondition | SegmentCondition | LifecycleCondition | RfmCondition
             | TierCondition | PointsCondition | CouponCondition)
Rule = AllOf | AnyOf | NotOf | Condition


# -- errors ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RuleIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class RuleInvalid(ValidationFailed):
    """A rule that does not parse, names a thing that does not exist, or refers to itself."""

    code = "invalid_rule"

    def __init__(self, issues: list[RuleIssue], field_prefix: str = "rule") -> None:
        first = issues[0]
        field = f"{field_prefix}.{first.path}" if first.path else field_prefix
        super().__init__(str(first), field=field, details=[i.as_dict() for i in issues])
        self.issues = issues


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


# -- parsing (siyu.rules.parser) ----------------------------------------------------------------

def parse_rule(raw: Any) -> Rule:
    """Parse and check a rule's JSON; raise `RuleInvalid` naming the path of every failing node."""
    from siyu.rules.parser import parse

    return parse(raw)


# -- walking -----------------------------------------------------------------------------------

def conditions(rule: Rule, path: str = "") -> list[tuple[str, Condition]]:
    """Every condition of the rule with its path, in document order."""
    if isinstance(rule, AllOf | AnyOf):
        name = "all" if isinstance(rule, AllOf) else "any"
        found: list[tuple[str, Condition]] = []
        for i, child in enumerate(rule.children):
            found.extend(conditions(child, child_path(child_path(path, name), i)))
        return found
    if isinstance(rule, NotOf):
        return conditions(rule.child, child_path(path, "not"))
    return [(path, rule)]


# -- back to JSON ------------------------------------------------------------------------------

def to_json(rule: Rule) -> dict[str, Any]:
    """The canonical JSON of a parsed rule: what is stored, and what the console's builder edits."""
    match rule:
        case AllOf(children):
            return {"all": [to_json(c) for c in children]}
        case AnyOf(children):
            return {"any": [to_json(c) for c in children]}
        case NotOf(child):
            return {"not": to_json(child)}
        case ProfileCondition(field, op, value):
            return _with_value({"kind": "profile", "field": field, "op": op}, value)
        case AttributeCondition(test):
            return _test_json({"kind": "attribute"}, test)
        case IdentityCondition(identity_type, present):
            return {"kind": "identity", "identity_type": identity_type, "op": "present" if present else "absent"}
        case TagCondition(op, tag_ids):
            return {"kind": "tag", "op": op, "tags": list(tag_ids)}
        case EventCondition(event_type, aggregate, compare, prop, where, window):
            doc: dict[str, Any] = {"kind": "event", "event_type": event_type, "aggregate": aggregate}
            if prop is not None:
                doc["property"] = prop
            if where:
                doc["where"] = [_test_json({}, t) for t in where]
            return _window_json(_compare_json(doc, compare), window)
        case OrderCondition(measure, compare, window):
            return _window_json(_compare_json({"kind": "order", "measure": measure}, compare), window)
        case BoughtCondition(compare, category, sku, window):
            doc = {"kind": "bought", "category": category} if category is not None else {"kind": "bought", "sku": sku}
            return _window_json(_compare_json(doc, compare), window)
        case SegmentCondition(segment_id, member):
            return {"kind": "segment", "op": "in" if member else "not_in", "segment_id": segment_id}
        case LifecycleCondition(stages):
            return {"kind": "lifecycle", "stages": list(stages)}
        case RfmCondition(rfm_class, score, compare):
            if rfm_class is not None:
                return {"kind": "rfm", "class": rfm_class}
            assert compare is not None
            return _compare_json({"kind": "rfm", "score": score}, compare)
        case TierCondition(tiers):
            return {"kind": "tier", "tiers": list(tiers)}
        case PointsCondition(compare):
            return _compare_json({"kind": "points"}, compare)
        case CouponCondition(state, compare, template_id, window):
            doc = {"kind": "coupon", "state": state}
            if template_id is not None:
                doc["template_id"] = template_id
            return _window_json(_compare_json(doc, compare), window)
    raise TypeError(f"not a rule node: {rule!r}")


def _with_value(doc: dict[str, Any], value: Any) -> dict[str, Any]:
    if value is None:
        return doc
    if isinstance(value, tuple) and len(value) == 2 and all(v is None or isinstance(v, date) for v in value):
        doc["value"] = {k: v.isoformat() for k, v in zip(("from", "to"), value, strict=True) if v is not None}
    elif isinstance(value, tuple):
        doc["value"] = list(value)
    else:
        doc["value"] = value
    return doc


def _test_json(doc: dict[str, Any], test: ValueTest) -> dict[str, Any]:
    doc.update(key=test.key, op=test.op)
    if test.op == "between":
        doc["value"] = {"min": test.value[0], "max": test.value[1]}
    elif test.value is not None:
        doc["value"] = list(test.value) if isinstance(test.value, tuple) else test.value
    return doc


def _compare_json(doc: dict[str, Any], compare: Compare) -> dict[str, Any]:
    doc["op"] = compare.op
    doc["value"] = {"min": compare.value, "max": compare.high} if compare.op == "between" else compare.value
    return doc


def _window_json(doc: dict[str, Any], window: Window | None) -> dict[str, Any]:
    if window is None:
        return doc
    if window.last_days is not None:
        doc["window"] = {"last_days": window.last_days}
    else:
        doc["window"] = {k: v.isoformat() for k, v in (("from", window.start), ("to", window.end)) if v is not None}
    return doc
