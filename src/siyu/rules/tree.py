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

from siyu.customers.identities import normalise_value
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


# -- parsing -----------------------------------------------------------------------------------

def parse_rule(raw: Any) -> Rule:
    """Parse and check a rule's JSON; raise `RuleInvalid` naming the path of every failing node."""
    parser = _Parser()
    rule = parser.node(raw, "", 1)
    if parser.conditions > MAX_CONDITIONS:
        parser.issue("", f"a rule holds at most {MAX_CONDITIONS} conditions, this one has {parser.conditions}")
    if parser.issues or rule is None:
        raise RuleInvalid(parser.issues or [RuleIssue("", "not a rule")])
    return rule


class _Parser:
    def __init__(self) -> None:
        self.issues: list[RuleIssue] = []
        self.conditions = 0

    def issue(self, path: str, message: str) -> None:
        self.issues.append(RuleIssue(path, message))

    def node(self, raw: Any, path: str, depth: int) -> Rule | None:
        if not isinstance(raw, dict):
            self.issue(path, "must be an object: a group (all / any / not) or a condition with a kind")
            return None
        if depth > MAX_DEPTH:
            self.issue(path, f"rules nest at most {MAX_DEPTH} levels deep")
            return None
        groups = [key for key in ("all", "any", "not") if key in raw]
        if groups:
            if len(raw) != 1:
                extra = sorted(k for k in raw if k != groups[0])
                self.issue(child_path(path, extra[0]), f"unknown field next to {groups[0]!r}")
                return None
            return self.group(groups[0], raw[groups[0]], child_path(path, groups[0]), depth)
        kind = raw.get("kind")
        parse = _CONDITIONS.get(kind) if isinstance(kind, str) else None
        if parse is None:
            where = child_path(path, "kind")
            if kind is None:
                self.issue(path, "must be a group (all / any / not) or have a kind")
            else:
                self.issue(where, f"unknown kind {kind!r}; one of {', '.join(_CONDITIONS)}")
            return None
        self.conditions += 1
        return parse(self, raw, path)

    def group(self, name: str, raw: Any, path: str, depth: int) -> Rule | None:
        if name == "not":
            child = self.node(raw, path, depth + 1)
            return NotOf(child) if child is not None else None
        if not isinstance(raw, list) or not raw:
            self.issue(path, "must be a non-empty list of conditions")
            return None
        children = [self.node(item, child_path(path, i), depth + 1) for i, item in enumerate(raw)]
        if any(c is None for c in children):
            return None
        kept = tuple(c for c in children if c is not None)
        return AllOf(kept) if name == "all" else AnyOf(kept)

    # -- helpers -------------------------------------------------------------------------------
    def fields(self, raw: dict[str, Any], path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
               ) -> bool:
        ok = True
        for key in raw:
            if key != "kind" and key not in required and key not in optional:
                self.issue(child_path(path, key), "unknown field")
                ok = False
        for key in required:
            if key not in raw:
                self.issue(child_path(path, key), "is required")
                ok = False
        return ok

    def choice(self, raw: Any, path: str, allowed: tuple[str, ...], what: str = "") -> str | None:
        if isinstance(raw, str) and raw in allowed:
            return raw
        detail = f" for {what}" if what else ""
        self.issue(path, f"{raw!r} is not allowed{detail}; one of {', '.join(allowed)}")
        return None

    def number(self, raw: Any, path: str, minimum: float | None = None) -> float | None:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            self.issue(path, "must be a number")
            return None
        if minimum is not None and raw < minimum:
            self.issue(path, f"must be at least {minimum:g}")
            return None
        return raw

    def positive_int(self, raw: Any, path: str, maximum: int) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.issue(path, "must be a whole number of days")
            return None
        if raw <= 0:
            self.issue(path, "must be positive")
            return None
        if raw > maximum:
            self.issue(path, f"must be at most {maximum}")
            return None
        return raw

    def text(self, raw: Any, path: str, max_length: int = 200) -> str | None:
        if not isinstance(raw, str) or not raw.strip():
            self.issue(path, "must be a non-empty string")
            return None
        if len(raw) > max_length:
            self.issue(path, f"must be at most {max_length} characters")
            return None
        return raw

    def day(self, raw: Any, path: str) -> date | None:
        if not isinstance(raw, str):
            self.issue(path, "must be a date (YYYY-MM-DD)")
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.issue(path, f"{raw!r} is not a date (YYYY-MM-DD)")
            return None

    def ids(self, raw: Any, path: str) -> tuple[int, ...] | None:
        if not isinstance(raw, list) or not raw or len(raw) > 50:
            self.issue(path, "must be a list of 1 to 50 ids")
            return None
        if any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in raw):
            self.issue(path, "ids are positive whole numbers")
            return None
        return tuple(dict.fromkeys(raw))

    def dates(self, raw: Any, path: str) -> tuple[date | None, date | None] | None:
        if not isinstance(raw, dict) or not raw or not set(raw) <= {"from", "to"}:
            self.issue(path, "must be {from, to} dates (YYYY-MM-DD; either may be left out)")
            return None
        start = self.day(raw["from"], child_path(path, "from")) if "from" in raw else None
        end = self.day(raw["to"], child_path(path, "to")) if "to" in raw else None
        if ("from" in raw and start is None) or ("to" in raw and end is None):
            return None
        if start is not None and end is not None and end < start:
            self.issue(path, "must not end before it starts")
            return None
        return start, end

    def window(self, raw: Any, path: str) -> Window | None:
        if isinstance(raw, int) and not isinstance(raw, bool):
            days = self.positive_int(raw, path, MAX_WINDOW_DAYS)
            return Window(last_days=days) if days is not None else None
        if isinstance(raw, dict) and "last_days" in raw:
            if not self.fields(raw, path, ("last_days",)):
                return None
            days = self.positive_int(raw["last_days"], child_path(path, "last_days"), MAX_WINDOW_DAYS)
            return Window(last_days=days) if days is not None else None
        if not isinstance(raw, dict):
            self.issue(path, "must be a number of days, {last_days} or {from, to}")
            return None
        dates = self.dates(raw, path)
        return Window(start=dates[0], end=dates[1]) if dates is not None else None

    def compare(self, raw: dict[str, Any], path: str, ops: tuple[str, ...], what: str,
                minimum: float | None = 0) -> Compare | None:
        op = self.choice(raw.get("op"), child_path(path, "op"), ops, what)
        if op is None:
            return None
        value_path = child_path(path, "value")
        value = raw.get("value")
        if op == "between":
            bounds = self.bounds(value, value_path, minimum)
            return Compare(op, bounds[0], bounds[1]) if bounds else None
        number = self.number(value, value_path, minimum)
        return Compare(op, number) if number is not None else None

    def bounds(self, raw: Any, path: str, minimum: float | None = None) -> tuple[float, float] | None:
        if not isinstance(raw, dict) or set(raw) != {"min", "max"}:
            self.issue(path, "must be {min, max}")
            return None
        low = self.number(raw["min"], child_path(path, "min"), minimum)
        high = self.number(raw["max"], child_path(path, "max"), minimum)
        if low is None or high is None:
            return None
        if high < low:
            self.issue(path, "max must not be below min")
            return None
        return low, high

    def value_test(self, raw: dict[str, Any], path: str, key_field: str) -> ValueTest | None:
        key = raw.get(key_field)
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            self.issue(child_path(path, key_field), "must be 1-64 letters, digits, _ or -")
            return None
        op = self.choice(raw.get("op"), child_path(path, "op"), JSON_OPS, "a custom value")
        if op is None:
            return None
        value_path = child_path(path, "value")
        value = raw.get("value")
        if op in ("is_set", "is_not_set"):
            if value is not None:
                self.issue(value_path, f"{op} takes no value")
                return None
            return ValueTest(key, op)
        if op in ("eq", "ne"):
            if isinstance(value, str) and value:
                return ValueTest(key, op, value)
            if isinstance(value, bool | int | float):
                return ValueTest(key, op, value)
            self.issue(value_path, "must be a non-empty string, a number or true / false")
            return None
        if op in ("in", "not_in"):
            ok = (isinstance(value, list) and 0 < len(value) <= MAX_LIST
                  and all((isinstance(v, str) and v) or (isinstance(v, int | float) and not isinstance(v, bool))
                          for v in value))
            if not ok or not isinstance(value, list):
                self.issue(value_path, f"must be a list of 1 to {MAX_LIST} strings or numbers")
                return None
            return ValueTest(key, op, tuple(dict.fromkeys(value)))
        if op in ("contains", "starts_with"):
            text = self.text(value, value_path)
            return ValueTest(key, op, text) if text is not None else None
        if op == "between":
            bounds = self.bounds(value, value_path)
            return ValueTest(key, op, bounds) if bounds else None
        number = self.number(value, value_path)
        return ValueTest(key, op, number) if number is not None else None


# -- one parser per kind ---------------------------------------------------------------------------

def _profile(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("field", "op"), ("value",)):
        return None
    field = p.choice(raw["field"], child_path(path, "field"), PROFILE_FIELDS)
    if field is None:
        return None
    ops, kind = ((TEXT_OPS, "a text field") if field in TEXT_FIELDS else
                 (DATE_OPS, "a date field") if field in DATE_FIELDS else (TIME_OPS, "a time field"))
    op = p.choice(raw["op"], child_path(path, "op"), ops, kind)
    if op is None:
        return None
    value_path = child_path(path, "value")
    value = raw.get("value")
    if op in ("is_set", "is_not_set"):
        if value is not None:
            p.issue(value_path, f"{op} takes no value")
            return None
        return ProfileCondition(field, op)
    if op in ("within_next_days", "within_last_days", "more_than_days_ago"):
        days = p.positive_int(value, value_path, 366 if op == "within_next_days" else MAX_WINDOW_DAYS)
        return ProfileCondition(field, op, days) if days is not None else None
    if op == "between":
        dates = p.dates(value, value_path)
        return ProfileCondition(field, op, dates) if dates is not None else None
    if op in ("in", "not_in"):
        ok = isinstance(value, list) and 0 < len(value) <= MAX_LIST and all(isinstance(v, str) and v for v in value)
        if not ok or not isinstance(value, list):
            p.issue(value_path, f"must be a list of 1 to {MAX_LIST} non-empty strings")
            return None
        values = [_normalised(p, field, v, child_path(value_path, i)) for i, v in enumerate(value)]
        if any(v is None for v in values):
            return None
        return ProfileCondition(field, op, tuple(dict.fromkeys(v for v in values if v is not None)))
    text = p.text(value, value_path)
    if text is None:
        return None
    if op in ("eq", "ne"):
        text = _normalised(p, field, text, value_path)
    return ProfileCondition(field, op, text) if text is not None else None


def _normalised(p: _Parser, field: str, value: str, path: str) -> str | None:
    """Phones and emails are stored normalised; compare them the same way."""
    if field not in ("phone", "email"):
        return value
    try:
        return normalise_value(field, value)
    except ValidationFailed as exc:
        p.issue(path, exc.message)
        return None


def _attribute(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("key", "op"), ("value",)):
        return None
    test = p.value_test(raw, path, "key")
    return AttributeCondition(test) if test is not None else None


def _identity(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("identity_type",), ("op",)):
        return None
    identity_type = raw["identity_type"]
    if not isinstance(identity_type, str) or not IDENTITY_TYPE_PATTERN.match(identity_type):
        p.issue(child_path(path, "identity_type"), "must be an identity type such as wecom_external_userid")
        return None
    op = p.choice(raw.get("op", "present"), child_path(path, "op"), ("present", "absent"), "an identity")
    return IdentityCondition(identity_type, op == "present") if op is not None else None


def _tag(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("op", "tags")):
        return None
    op = p.choice(raw["op"], child_path(path, "op"), TAG_OPS, "tags")
    tag_ids = p.ids(raw["tags"], child_path(path, "tags"))
    return TagCondition(op, tag_ids) if op is not None and tag_ids is not None else None


def _event(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("event_type", "aggregate", "op", "value"), ("property", "where", "window")):
        return None
    event_type = raw["event_type"]
    if not isinstance(event_type, str) or not EVENT_TYPE_PATTERN.match(event_type):
        p.issue(child_path(path, "event_type"), "must be an event type such as page_view")
        return None
    aggregate = p.choice(raw["aggregate"], child_path(path, "aggregate"), AGGREGATES)
    if aggregate is None:
        return None
    prop = raw.get("property")
    prop_path = child_path(path, "property")
    if aggregate in ("sum", "min", "max"):
        if not isinstance(prop, str) or not KEY_PATTERN.match(prop):
            p.issue(prop_path, f"{aggregate} needs the numeric property to aggregate")
            return None
    elif prop is not None:
        p.issue(prop_path, f"{aggregate} takes no property")
        return None
    elapsed = aggregate in ("first", "last")
    compare = p.compare(raw, path, ELAPSED_OPS if elapsed else NUMBER_OPS,
                        f"days since the {aggregate} event" if elapsed else f"an event {aggregate}",
                        minimum=0 if aggregate == "count" or elapsed else None)
    where = _where(p, raw.get("where", []), child_path(path, "where"))
    window = p.window(raw["window"], child_path(path, "window")) if "window" in raw else None
    if compare is None or where is None or ("window" in raw and window is None):
        return None
    return EventCondition(event_type, aggregate, compare, prop, where, window)


def _where(p: _Parser, raw: Any, path: str) -> tuple[ValueTest, ...] | None:
    if not isinstance(raw, list) or len(raw) > 10:
        p.issue(path, "must be a list of at most 10 property tests")
        return None
    tests = []
    for i, item in enumerate(raw):
        item_path = child_path(path, i)
        if not isinstance(item, dict) or not p.fields(item, item_path, ("key", "op"), ("value",)):
            if not isinstance(item, dict):
                p.issue(item_path, "must be {key, op, value}")
            return None
        test = p.value_test(item, item_path, "key")
        if test is None:
            return None
        tests.append(test)
    return tuple(tests)


def _order(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("measure", "op", "value"), ("window",)):
        return None
    measure = p.choice(raw["measure"], child_path(path, "measure"), ORDER_MEASURES)
    if measure is None:
        return None
    elapsed = measure.startswith("days_since")
    if elapsed and "window" in raw:
        p.issue(child_path(path, "window"), f"does not apply to {measure}")
        return None
    compare = p.compare(raw, path, ELAPSED_OPS if elapsed else NUMBER_OPS, measure)
    window = p.window(raw["window"], child_path(path, "window")) if "window" in raw else None
    if compare is None or ("window" in raw and window is None):
        return None
    return OrderCondition(measure, compare, window)


def _bought(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, (), ("category", "sku", "window", "op", "value")):
        return None
    if ("category" in raw) == ("sku" in raw):
        p.issue(path, "needs exactly one of category or sku")
        return None
    what = "category" if "category" in raw else "sku"
    name = p.text(raw[what], child_path(path, what), 100)
    compare = (p.compare(raw, path, NUMBER_OPS, "a number of orders") if "op" in raw or "value" in raw
               else Compare("gte", 1))
    window = p.window(raw["window"], child_path(path, "window")) if "window" in raw else None
    if name is None or compare is None or ("window" in raw and window is None):
        return None
    if what == "category":
        return BoughtCondition(compare, category=name.strip("/"), window=window)
    return BoughtCondition(compare, sku=name, window=window)


def _segment(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("segment_id",), ("op",)):
        return None
    op = p.choice(raw.get("op", "in"), child_path(path, "op"), ("in", "not_in"), "a segment")
    segment_id = raw["segment_id"]
    if isinstance(segment_id, bool) or not isinstance(segment_id, int) or segment_id <= 0:
        p.issue(child_path(path, "segment_id"), "must be a segment id")
        return None
    return SegmentCondition(segment_id, op == "in") if op is not None else None


def _lifecycle(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("stages",)):
        return None
    stages = raw["stages"]
    stages_path = child_path(path, "stages")
    if not isinstance(stages, list) or not stages:
        p.issue(stages_path, f"must be a non-empty list of {', '.join(LIFECYCLE_STAGES)}")
        return None
    for i, stage in enumerate(stages):
        if p.choice(stage, child_path(stages_path, i), LIFECYCLE_STAGES) is None:
            return None
    return LifecycleCondition(tuple(dict.fromkeys(stages)))


def _rfm(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if "class" in raw:
        if not p.fields(raw, path, ("class",)):
            return None
        rfm_class = p.choice(raw["class"], child_path(path, "class"), RFM_CLASSES)
        return RfmCondition(rfm_class=rfm_class) if rfm_class is not None else None
    if not p.fields(raw, path, ("score", "op", "value")):
        return None
    score = p.choice(raw["score"], child_path(path, "score"), RFM_SCORES)
    compare = p.compare(raw, path, NUMBER_OPS, "an RFM score", minimum=1)
    if score is None or compare is None:
        return None
    return RfmCondition(score=score, compare=compare)


def _tier(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("tiers",)):
        return None
    tiers = raw["tiers"]
    if (not isinstance(tiers, list) or not tiers or len(tiers) > 50
            or not all(isinstance(t, str) and KEY_PATTERN.match(t) for t in tiers)):
        p.issue(child_path(path, "tiers"), "must be a list of 1 to 50 tier codes")
        return None
    return TierCondition(tuple(dict.fromkeys(tiers)))


def _points(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("op", "value")):
        return None
    compare = p.compare(raw, path, NUMBER_OPS, "a points balance", minimum=None)
    return PointsCondition(compare) if compare is not None else None


def _coupon(p: _Parser, raw: dict[str, Any], path: str) -> Rule | None:
    if not p.fields(raw, path, ("state",), ("template_id", "window", "op", "value")):
        return None
    state = p.choice(raw["state"], child_path(path, "state"), COUPON_STATES, "a coupon")
    template_id = raw.get("template_id")
    if template_id is not None and (isinstance(template_id, bool) or not isinstance(template_id, int)
                                    or template_id <= 0):
        p.issue(child_path(path, "template_id"), "must be a coupon template id")
        return None
    compare = (p.compare(raw, path, NUMBER_OPS, "a number of coupons") if "op" in raw or "value" in raw
               else Compare("gte", 1))
    window = p.window(raw["window"], child_path(path, "window")) if "window" in raw else None
    if state is None or compare is None or ("window" in raw and window is None):
        return None
    return CouponCondition(state, compare, template_id, window)


_CONDITIONS = {
    "profile": _profile, "attribute": _attribute, "identity": _identity, "tag": _tag, "event": _event,
    "order": _order, "bought": _bought, "segment": _segment, "lifecycle": _lifecycle, "rfm": _rfm,
    "tier": _tier, "points": _points, "coupon": _coupon,
}


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
