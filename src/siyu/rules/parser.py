"""Parsing a rule's JSON into the typed tree of `siyu.rules.tree`, one function per kind of
condition, collecting every problem with the path of its node (`all[2].window: must be positive`)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from siyu.customers.identities import normalise_value
from siyu.kit.errors import ValidationFailed
from siyu.rules.tree import (
    AGGREGATES,
    COUPON_STATES,
    DATE_FIELDS,
    DATE_OPS,
    ELAPSED_OPS,
    EVENT_TYPE_PATTERN,
    IDENTITY_TYPE_PATTERN,
    JSON_OPS,
    KEY_PATTERN,
    LIFECYCLE_STAGES,
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_LIST,
    MAX_WINDOW_DAYS,
    NUMBER_OPS,
    ORDER_MEASURES,
    PROFILE_FIELDS,
    RFM_CLASSES,
    RFM_SCORES,
    TAG_OPS,
    TEXT_FIELDS,
    TEXT_OPS,
    TIME_OPS,
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
    RuleInvalid,
    RuleIssue,
    SegmentCondition,
    TagCondition,
    TierCondition,
    ValueTest,
    Window,
    child_path,
)


def parse(raw: Any) -> Rule:
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
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
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

    def no_value(self, op: str, value: Any, path: str) -> bool:
        """An operator that takes no value (is_set / is_not_set) was given none; else the issue is noted."""
        if value is not None:
            self.issue(path, f"{op} takes no value")
            return False
        return True

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
            return ValueTest(key, op) if self.no_value(op, value, value_path) else None
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
        return ProfileCondition(field, op) if p.no_value(op, value, value_path) else None
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


