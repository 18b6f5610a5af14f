"""A journey's definition: the JSON graph, parsed into typed parts and checked.

    {
      "trigger":  {"type": "event", "event_type": "order_paid",
                   "where": [{"key": "item.category", "op": "eq", "value": "母婴/奶粉"}]},
      "entry":    {"mode": "once" | "once_per_period" | "every_time", "period_days": 30},
      "holdout_percent": 10,
      "goal":     {"event_type": "order_paid", "within_days": 7, "exit": true},
      "start":    "welcome",
      "steps": [
        {"id": "welcome", "type": "send_message", "template_id": 3, "next": "day1"},
        {"id": "day1", "type": "wait", "duration": {"days": 1}, "until_time": "10:00", "next": "bought"},
        {"id": "bought", "type": "condition", "rule": {...rule language...}, "then": null, "else": "coupon"},
        ...
      ]
    }

Triggers: `event` (type + property filter), `segment_entered` / `segment_exited` (segment_id),
`date` (a customer date field: birthday; `offset_days` before (-) or after (+), `match` day or month,
at a local time), `replenishment` (a category or SKU, `days_before` the predicted run-out) and
`manual` (API / CLI enrolment only; every journey also accepts manual enrolment).

Steps and their edges (an edge is a step id; null or absent ends the run as completed):
`wait` (a `duration`, then optionally `until_time` "HH:MM" in the workspace zone; or `until_event`
with a `timeout`: `next` when the event happens, `timeout_next` otherwise), `condition` (`rule`:
`then` / `else`), `split` (`branches`: key, percent, next — percents sum to 100), `send_message`,
`issue_coupon`, `award_points`, `add_tag`, `remove_tag`, `update_attribute`, `webhook`,
`staff_task` (`done_next` / `skipped_next` / `overdue_next`, each defaulting to `next`) and `exit`.

Checks report every issue with its step id and field: dangling edges, unreachable steps, cycles
that do not pass a wait or a staff task, splits not summing to 100 %, negative waits, malformed
parameters. References to other domains (segments, templates, tags, users) are checked by
`siyu.journeys.service.check_definition`, which also runs these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

from siyu.journeys.errors import JourneyInvalid

STEP_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{1,99}$")
ATTRIBUTE_KEY = re.compile(r"^[\w\-]{1,64}$")
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

TRIGGER_TYPES = ("event", "segment_entered", "segment_exited", "date", "replenishment", "manual")
ENTRY_MODES = ("once", "once_per_period", "every_time")
DATE_FIELDS = ("birthday",)
ACTION_TYPES = ("send_message", "issue_coupon", "award_points", "add_tag", "remove_tag", "update_attribute",
                "webhook")
STEP_TYPES = ("wait", "condition", "split", *ACTION_TYPES, "staff_task", "exit")
PAUSING_TYPES = frozenset({"wait", "staff_task"})  # a cycle must pass one of these
PRIORITIES = ("low", "normal", "high", "urgent")
ASSIGN_TO = ("owner", "pool", "user")
FILTER_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "starts_with", "exists")
MAX_STEPS = 200
MAX_WAIT = timedelta(days=3660)


# -- the parsed parts ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Issue:
    step_id: str | None
    field: str
    message: str

    @property
    def field_path(self) -> str:
        return f"steps.{self.step_id}.{self.field}" if self.step_id else self.field

    def __str__(self) -> str:
        return f"step {self.step_id}: {self.field}: {self.message}" if self.step_id else f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"step_id": self.step_id, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class Filter:
    """A test of one event property. `item.category` / `item.sku` test the items of an order: true
    when any item matches, and a category matches itself and every category under it."""

    key: str
    op: str
    value: Any = None

    def matches(self, properties: Mapping[str, Any]) -> bool:
        if self.key in ("item.category", "item.sku"):
            items = properties.get("items")
            name = self.key.split(".", 1)[1]
            values = [i.get(name) for i in items if isinstance(i, dict)] if isinstance(items, list) else []
            return any(self._test(v, category=name == "category") for v in values)
        return self._test(properties.get(self.key), category=False)

    def _test(self, actual: Any, *, category: bool) -> bool:
        if self.op == "exists":
            return actual not in (None, "")
        if actual is None:
            return False
        if category and self.op in ("eq", "in"):
            wanted = self.value if self.op == "in" else [self.value]
            return isinstance(actual, str) and any(actual == w or actual.startswith(f"{w}/") for w in wanted)
        return _compare(self.op, actual, self.value)


def _compare(op: str, actual: Any, value: Any) -> bool:
    same_kind = isinstance(actual, str) == isinstance(value, str) and not isinstance(actual, bool)
    match op:
        case "eq":
            return bool(actual == value)
        case "ne":
            return bool(actual != value)
        case "in":
            return actual in value
        case "not_in":
            return actual not in value
        case "contains":
            return isinstance(actual, str) and value in actual
        case "starts_with":
            return isinstance(actual, str) and actual.startswith(value)
    if not same_kind or isinstance(actual, str):
        return False
    return bool({"gt": actual > value, "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[op])


@dataclass(frozen=True, slots=True)
class Trigger:
    type: str
    event_type: str | None = None
    where: tuple[Filter, ...] = ()
    segment_id: int | None = None
    field: str | None = None
    offset_days: int = 0
    match: str = "day"
    at: time = time(10, 0)
    category: str | None = None
    sku: str | None = None
    days_before: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    mode: str = "once"
    period_days: int | None = None


@dataclass(frozen=True, slots=True)
class Goal:
    event_type: str
    within: timedelta
    where: tuple[Filter, ...] = ()
    exit: bool = True


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    type: str
    params: Mapping[str, Any]
    edges: Mapping[str, str | None]  # label → step id (None: the run completes)
    name: str = ""

    def edge(self, label: str) -> str | None:
        if label in self.edges:
            return self.edges[label]
        return self.edges.get("next")


@dataclass(frozen=True, slots=True)
class Definition:
    trigger: Trigger
    entry: Entry
    holdout_percent: float
    goal: Goal | None
    start: str
    steps: Mapping[str, Step]
    raw: Mapping[str, Any] = field(default_factory=dict)

    def step(self, step_id: str) -> Step:
        return self.steps[step_id]


# -- parsing ------------------------------------------------------------------------------------

def parse_definition(raw: Any) -> tuple[Definition | None, list[Issue]]:
    """Parse and check the graph; the definition is returned only when there is no issue."""
    parser = _Parser()
    definition = parser.definition(raw)
    if parser.issues:
        return None, parser.issues
    return definition, []


def validate_definition(raw: Any) -> Definition:
    definition, issues = parse_definition(raw)
    if issues or definition is None:
        raise JourneyInvalid(issues or [Issue(None, "definition", "not a journey definition")])
    return definition


def duration_of(raw: Any) -> timedelta | None:
    """{"days": 1, "hours": 2, "minutes": 30, "seconds": 0} → timedelta; None when malformed."""
    if not isinstance(raw, dict) or not raw or any(k not in ("days", "hours", "minutes", "seconds") for k in raw):
        return None
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in raw.values()):
        return None
    return timedelta(**{k: float(v) for k, v in raw.items()})


class _Parser:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def issue(self, step_id: str | None, field_name: str, message: str) -> None:
        self.issues.append(Issue(step_id, field_name, message))

    def definition(self, raw: Any) -> Definition | None:
        if not isinstance(raw, dict):
            self.issue(None, "definition", "must be a JSON object")
            return None
        known = {"trigger", "entry", "holdout_percent", "goal", "start", "steps"}
        for key in sorted(set(raw) - known):
            self.issue(None, key, "unknown field")
        trigger = self.trigger(raw.get("trigger"))
        entry = self.entry(raw.get("entry", {"mode": "once"}))
        holdout = self.holdout(raw.get("holdout_percent", 0))
        goal = self.goal(raw["goal"]) if raw.get("goal") is not None else None
        steps = self.steps(raw.get("steps"))
        start = raw.get("start")
        if steps and not isinstance(start, str):
            self.issue(None, "start", "must name the first step")
        elif steps and start not in steps:
            self.issue(None, "start", f"names no step: {start!r}")
        if steps and not self.issues:
            self.graph(steps, str(start))
        if self.issues or trigger is None or entry is None or holdout is None or steps is None:
            return None
        return Definition(trigger, entry, holdout, goal, str(start), steps, raw)

    # -- trigger, entry, goal -----------------------------------------------------------------
    def trigger(self, raw: Any) -> Trigger | None:
        if not isinstance(raw, dict) or raw.get("type") not in TRIGGER_TYPES:
            self.issue(None, "trigger.type", f"must be one of {', '.join(TRIGGER_TYPES)}")
            return None
        kind = raw["type"]
        if kind == "event":
            event_type = self.event_type(raw.get("event_type"), None, "trigger.event_type")
            where = self.filters(raw.get("where", []), None, "trigger.where")
            return Trigger(kind, event_type=event_type, where=where or ()) if event_type else None
        if kind in ("segment_entered", "segment_exited"):
            segment_id = self.ident(raw.get("segment_id"), None, "trigger.segment_id")
            return Trigger(kind, segment_id=segment_id) if segment_id else None
        if kind == "date":
            return self.date_trigger(raw)
        if kind == "replenishment":
            return self.replenishment_trigger(raw)
        return Trigger(kind)

    def date_trigger(self, raw: dict[str, Any]) -> Trigger | None:
        date_field = raw.get("field")
        if date_field not in DATE_FIELDS:
            self.issue(None, "trigger.field", f"must be one of {', '.join(DATE_FIELDS)}")
            return None
        offset = raw.get("offset_days", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > 366:
            self.issue(None, "trigger.offset_days", "must be a whole number of days between -366 and 366")
            return None
        match = raw.get("match", "day")
        if match not in ("day", "month"):
            self.issue(None, "trigger.match", "must be day or month")
            return None
        at = self.time_of_day(raw.get("at", "10:00"), None, "trigger.at")
        return Trigger("date", field=date_field, offset_days=offset, match=match, at=at) if at else None

    def replenishment_trigger(self, raw: dict[str, Any]) -> Trigger | None:
        category, sku = raw.get("category"), raw.get("sku")
        if (category is None) == (sku is None):
            self.issue(None, "trigger", "a replenishment trigger needs exactly one of category or sku")
            return None
        name = category if category is not None else sku
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            self.issue(None, "trigger.category" if category is not None else "trigger.sku", "must be a non-empty name")
            return None
        days_before = raw.get("days_before", 0)
        if isinstance(days_before, bool) or not isinstance(days_before, int) or not 0 <= days_before <= 365:
            self.issue(None, "trigger.days_before", "must be a whole number of days from 0 to 365")
            return None
        at = self.time_of_day(raw.get("at", "10:00"), None, "trigger.at")
        if at is None:
            return None
        return Trigger("replenishment", category=category.strip("/") if category is not None else None, sku=sku,
                       days_before=days_before, at=at)

    def entry(self, raw: Any) -> Entry | None:
        if not isinstance(raw, dict) or raw.get("mode") not in ENTRY_MODES:
            self.issue(None, "entry.mode", f"must be one of {', '.join(ENTRY_MODES)}")
            return None
        period = raw.get("period_days")
        if raw["mode"] == "once_per_period":
            if isinstance(period, bool) or not isinstance(period, int) or not 1 <= period <= 3660:
                self.issue(None, "entry.period_days", "must be a whole number of days from 1 to 3660")
                return None
            return Entry("once_per_period", period)
        return Entry(raw["mode"])

    def holdout(self, raw: Any) -> float | None:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw < 100:
            self.issue(None, "holdout_percent", "must be a percentage from 0 to below 100")
            return None
        return float(raw)

    def goal(self, raw: Any) -> Goal | None:
        if not isinstance(raw, dict):
            self.issue(None, "goal", "must be an object with event_type and within_days")
            return None
        event_type = self.event_type(raw.get("event_type"), None, "goal.event_type")
        days = raw.get("within_days")
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3660:
            self.issue(None, "goal.within_days", "must be a number of days above 0")
            return None
        where = self.filters(raw.get("where", []), None, "goal.where")
        leave = raw.get("exit", True)
        if not isinstance(leave, bool):
            self.issue(None, "goal.exit", "must be true or false")
            return None
        if event_type is None or where is None:
            return None
        return Goal(event_type, timedelta(days=float(days)), where, leave)

    # -- steps --------------------------------------------------------------------------------
    def steps(self, raw: Any) -> dict[str, Step] | None:
        if not isinstance(raw, list) or not raw:
            self.issue(None, "steps", "must be a non-empty list of steps")
            return None
        if len(raw) > MAX_STEPS:
            self.issue(None, "steps", f"a journey has at most {MAX_STEPS} steps")
            return None
        steps: dict[str, Step] = {}
        for index, item in enumerate(raw):
            step_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(step_id, str) or not STEP_ID.match(step_id):
                self.issue(None, f"steps[{index}].id", "every step needs an id of letters, digits, _ or -")
                continue
            if step_id in steps:
                self.issue(step_id, "id", "is used by two steps")
                continue
            step = self.step(step_id, item)
            if step is not None:
                steps[step_id] = step
        return steps

    def step(self, step_id: str, raw: dict[str, Any]) -> Step | None:
        kind = raw.get("type")
        if kind not in STEP_TYPES:
            self.issue(step_id, "type", f"must be one of {', '.join(STEP_TYPES)}")
            return None
        name = raw.get("name", "")
        if not isinstance(name, str) or len(name) > 200:
            self.issue(step_id, "name", "must be text of at most 200 characters")
            return None
        before = len(self.issues)
        params = _STEP_PARSERS[kind](self, step_id, raw)
        edges = self.edges(step_id, kind, raw)
        if len(self.issues) > before or params is None or edges is None:
            return None
        return Step(step_id, kind, params, edges, name)

    def edges(self, step_id: str, kind: str, raw: dict[str, Any]) -> dict[str, str | None] | None:
        labels = _EDGE_LABELS[kind]
        edges: dict[str, str | None] = {}
        for label in labels:
            if label not in raw:
                continue
            target = raw[label]
            if target is not None and not isinstance(target, str):
                self.issue(step_id, label, "must be a step id or null")
                return None
            edges[label] = target
        if kind == "split":
            for i, branch in enumerate(raw.get("branches") or []):
                if isinstance(branch, dict):
                    edges[f"branch:{branch.get('key')}"] = branch.get("next") if isinstance(branch.get("next"), str) \
                        else None
                    if branch.get("next") is not None and not isinstance(branch.get("next"), str):
                        self.issue(step_id, f"branches[{i}].next", "must be a step id or null")
        return edges

    # -- the graph ---------------------------------------------------------------------------
    def graph(self, steps: dict[str, Step], start: str) -> None:
        for step in steps.values():
            for label, target in step.edges.items():
                if target is not None and target not in steps:
                    where = label if not label.startswith("branch:") else f"branches.{label[7:]}.next"
                    self.issue(step.id, where, f"points to a step that does not exist: {target!r}")
        if self.issues:
            return
        reached = _reachable(steps, start)
        for step_id in steps:
            if step_id not in reached:
                self.issue(step_id, "id", "is not reachable from the start step")
        for cycle in _cycles_without_pause(steps):
            self.issue(cycle[0], "next", "is in a cycle that passes no wait or staff task: "
                                         + " → ".join([*cycle, cycle[0]]))

    # -- values -------------------------------------------------------------------------------
    def event_type(self, raw: Any, step_id: str | None, where: str) -> str | None:
        if not isinstance(raw, str) or not EVENT_TYPE.match(raw):
            self.issue(step_id, where, "must be an event type such as order_paid")
            return None
        return raw

    def ident(self, raw: Any, step_id: str | None, where: str) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
            self.issue(step_id, where, "must be an id (a positive whole number)")
            return None
        return raw

    def text(self, raw: Any, step_id: str | None, where: str, *, required: bool, max_length: int) -> str | None:
        if raw is None and not required:
            return ""
        if not isinstance(raw, str) or (required and not raw.strip()) or len(raw) > max_length:
            self.issue(step_id, where, f"must be {'non-empty ' if required else ''}text of at most {max_length} "
                                       "characters")
            return None
        return raw

    def time_of_day(self, raw: Any, step_id: str | None, where: str) -> time | None:
        match = TIME_OF_DAY.match(raw) if isinstance(raw, str) else None
        if match is None:
            self.issue(step_id, where, "must be a time of day HH:MM (24 h)")
            return None
        return time(int(match.group(1)), int(match.group(2)))

    def duration(self, raw: Any, step_id: str, where: str, *, positive: bool) -> timedelta | None:
        value = duration_of(raw)
        if value is None:
            self.issue(step_id, where, "must be an object of days, hours, minutes and seconds, e.g. {\"days\": 1}")
            return None
        if any(v < 0 for v in raw.values()):
            self.issue(step_id, where, "must not be negative")
            return None
        if positive and value <= timedelta(0):
            self.issue(step_id, where, "must be longer than zero")
            return None
        if value > MAX_WAIT:
            self.issue(step_id, where, "must be at most 3660 days")
            return None
        return value

    def filters(self, raw: Any, step_id: str | None, where: str) -> tuple[Filter, ...] | None:
        if not isinstance(raw, list) or len(raw) > 10:
            self.issue(step_id, where, "must be a list of at most 10 property tests")
            return None
        found = []
        for i, item in enumerate(raw):
            path = f"{where}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
                self.issue(step_id, path, "must be {key, op, value}")
                return None
            op = item.get("op", "eq")
            if op not in FILTER_OPS:
                self.issue(step_id, f"{path}.op", f"must be one of {', '.join(FILTER_OPS)}")
                return None
            value = item.get("value")
            if op in ("in", "not_in") and (not isinstance(value, list) or not value):
                self.issue(step_id, f"{path}.value", "must be a non-empty list")
                return None
            if op in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, int | float)):
                self.issue(step_id, f"{path}.value", "must be a number")
                return None
            if op in ("contains", "starts_with") and not isinstance(value, str):
                self.issue(step_id, f"{path}.value", "must be text")
                return None
            if op not in ("exists",) and value is None:
                self.issue(step_id, f"{path}.value", "is required")
                return None
            found.append(Filter(item["key"], op, tuple(value) if isinstance(value, list) else value))
        return tuple(found)


# -- one parser per step type ------------------------------------------------------------------

def _wait(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    if "until_event" in raw:
        event = raw["until_event"]
        if not isinstance(event, dict):
            p.issue(step_id, "until_event", "must be {event_type, where}")
            return None
        event_type = p.event_type(event.get("event_type"), step_id, "until_event.event_type")
        where = p.filters(event.get("where", []), step_id, "until_event.where")
        if "timeout" not in raw:
            p.issue(step_id, "timeout", "a wait for an event needs a timeout")
            return None
        timeout = p.duration(raw["timeout"], step_id, "timeout", positive=True)
        if "duration" in raw or "until_time" in raw:
            p.issue(step_id, "until_event", "cannot be combined with duration or until_time")
            return None
        if event_type is None or where is None or timeout is None:
            return None
        return {"event_type": event_type, "where": where, "timeout_seconds": timeout.total_seconds()}
    if "duration" not in raw and "until_time" not in raw:
        p.issue(step_id, "duration", "a wait needs a duration, an until_time or an until_event")
        return None
    duration = p.duration(raw["duration"], step_id, "duration", positive="until_time" not in raw) \
        if "duration" in raw else timedelta(0)
    until = p.time_of_day(raw["until_time"], step_id, "until_time") if "until_time" in raw else None
    if duration is None or ("until_time" in raw and until is None):
        return None
    return {"duration_seconds": duration.total_seconds(), "until_time": until.strftime("%H:%M") if until else None}


def _condition(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    from siyu.journeys.actions import parse_condition_rule

    if "rule" not in raw:
        p.issue(step_id, "rule", "is required: a rule of the segment rule language")
        return None
    canonical, problems = parse_condition_rule(raw["rule"])
    for path, message in problems:
        p.issue(step_id, f"rule.{path}" if path else "rule", message)
    return {"rule": canonical} if canonical is not None else None


def _split(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    branches = raw.get("branches")
    if not isinstance(branches, list) or len(branches) < 2 or len(branches) > 10:
        p.issue(step_id, "branches", "a split needs 2 to 10 branches")
        return None
    keys: list[str] = []
    percents: list[float] = []
    for i, branch in enumerate(branches):
        key = branch.get("key") if isinstance(branch, dict) else None
        if not isinstance(key, str) or not STEP_ID.match(key) or key in keys:
            p.issue(step_id, f"branches[{i}].key", "every branch needs its own key (letters, digits, _ or -)")
            return None
        percent = branch.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int | float) or percent <= 0:
            p.issue(step_id, f"branches[{i}].percent", "must be a percentage above 0")
            return None
        keys.append(key)
        percents.append(float(percent))
    if abs(sum(percents) - 100) > 1e-6:
        p.issue(step_id, "branches", f"percentages must sum to 100, they sum to {sum(percents):g}")
        return None
    return {"branches": list(zip(keys, percents, strict=True))}


def _message(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    template_id = p.ident(raw.get("template_id"), step_id, "template_id")
    channel = raw.get("channel")
    if channel is not None and (not isinstance(channel, str) or not channel):
        p.issue(step_id, "channel", "must be a channel name")
        return None
    return {"template_id": template_id, "channel": channel} if template_id else None


def _coupon(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    template_id = p.ident(raw.get("template_id"), step_id, "template_id")
    return {"template_id": template_id} if template_id else None


def _points(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    points = raw.get("points")
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= 1_000_000:
        p.issue(step_id, "points", "must be a whole number of points from 1 to 1,000,000")
        return None
    reason = p.text(raw.get("reason", "journey"), step_id, "reason", required=True, max_length=200)
    return {"points": points, "reason": reason} if reason else None


def _tag(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    tag_id = p.ident(raw.get("tag_id"), step_id, "tag_id")
    return {"tag_id": tag_id} if tag_id else None


def _attribute(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    key = raw.get("key")
    if not isinstance(key, str) or not ATTRIBUTE_KEY.match(key):
        p.issue(step_id, "key", "must be an attribute key of letters, digits, _ or -")
        return None
    value = raw.get("value")
    if value is not None and not isinstance(value, str | int | float | bool):
        p.issue(step_id, "value", "must be text, a number, true/false or null")
        return None
    return {"key": key, "value": value}


def _webhook(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    url = raw.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url) or len(url) > 2000:
        p.issue(step_id, "url", "must be an http(s) URL")
        return None
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        p.issue(step_id, "payload", "must be an object of extra fields")
        return None
    return {"url": url, "payload": payload}


def _staff_task(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    title = p.text(raw.get("title"), step_id, "title", required=True, max_length=200)
    instructions = p.text(raw.get("instructions"), step_id, "instructions", required=False, max_length=4000)
    script = p.text(raw.get("script"), step_id, "script", required=False, max_length=4000)
    priority = raw.get("priority", "normal")
    if priority not in PRIORITIES:
        p.issue(step_id, "priority", f"must be one of {', '.join(PRIORITIES)}")
        return None
    sla = p.duration(raw.get("sla", {"hours": 24}), step_id, "sla", positive=True)
    remind = p.duration(raw["remind_before"], step_id, "remind_before", positive=True) \
        if "remind_before" in raw else None
    if sla is not None and remind is not None and remind >= sla:
        p.issue(step_id, "remind_before", "must be shorter than the sla")
        return None
    assign = _assignment(p, step_id, raw.get("assign", {"to": "owner"}))
    if title is None or instructions is None or script is None or sla is None or assign is None:
        return None
    return {"title": title, "instructions": instructions, "script": script, "priority": priority,
            "sla_seconds": sla.total_seconds(), "remind_before_seconds": remind.total_seconds() if remind else None,
            "assign": assign}


def _assignment(p: _Parser, step_id: str, raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or raw.get("to") not in ASSIGN_TO:
        p.issue(step_id, "assign.to", f"must be one of {', '.join(ASSIGN_TO)}")
        return None
    pool = raw.get("pool", [])
    if not isinstance(pool, list) or len(pool) > 200 or any(isinstance(u, bool) or not isinstance(u, int)
                                                            for u in pool):
        p.issue(step_id, "assign.pool", "must be a list of user ids")
        return None
    if raw["to"] == "pool" and not pool:
        p.issue(step_id, "assign.pool", "a pool needs at least one user id")
        return None
    if raw["to"] == "user":
        user_id = p.ident(raw.get("user_id"), step_id, "assign.user_id")
        return {"to": "user", "user_id": user_id, "pool": pool} if user_id else None
    return {"to": raw["to"], "pool": pool}


def _exit(p: _Parser, step_id: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    reason = raw.get("reason", "exit_step")
    if not isinstance(reason, str) or not STEP_ID.match(reason) or len(reason) > 30:
        p.issue(step_id, "reason", "must be a short code (letters, digits, _ or -, at most 30)")
        return None
    return {"reason": reason}


_STEP_PARSERS = {
    "wait": _wait, "condition": _condition, "split": _split, "send_message": _message, "issue_coupon": _coupon,
    "award_points": _points, "add_tag": _tag, "remove_tag": _tag, "update_attribute": _attribute,
    "webhook": _webhook, "staff_task": _staff_task, "exit": _exit,
}
_EDGE_LABELS: dict[str, tuple[str, ...]] = {
    **{kind: ("next",) for kind in ACTION_TYPES},
    "wait": ("next", "timeout_next"), "condition": ("then", "else"), "split": (),
    "staff_task": ("next", "done_next", "skipped_next", "overdue_next"), "exit": (),
}


# -- graph walks --------------------------------------------------------------------------------

def _reachable(steps: Mapping[str, Step], start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for target in steps[todo.pop()].edges.values():
            if target is not None and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _cycles_without_pause(steps: Mapping[str, Step]) -> list[list[str]]:
    """Strongly connected components of the graph without the edges leaving a wait or a staff
    task: each one with more than one step, or a step pointing to itself, could loop forever."""
    graph = {sid: ([t for t in s.edges.values() if t is not None] if s.type not in PAUSING_TYPES else [])
             for sid, s in steps.items()}
    order = list(steps)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        # Iterative Tarjan would be longer; graphs hold at most MAX_STEPS steps.
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component, key=order.index))

    for node in order:
        if node not in index:
            visit(node)
    return found


REFERENCE_KINDS = ("segment", "tag", "coupon_template", "message_template", "user")


def step_references(step: Step) -> dict[str, set[int]]:
    """Ids of other domains' things one step names, by kind."""
    from siyu.journeys.actions import rule_segment_and_tag_ids

    refs: dict[str, set[int]] = {kind: set() for kind in REFERENCE_KINDS}
    params = step.params
    match step.type:
        case "condition":
            refs["segment"], refs["tag"] = rule_segment_and_tag_ids(params["rule"])
        case "send_message":
            refs["message_template"].add(params["template_id"])
        case "issue_coupon":
            refs["coupon_template"].add(params["template_id"])
        case "add_tag" | "remove_tag":
            refs["tag"].add(params["tag_id"])
        case "staff_task":
            refs["user"] = set(params["assign"]["pool"])
            if params["assign"].get("user_id"):
                refs["user"].add(params["assign"]["user_id"])
    return refs


def references(definition: Definition) -> list[tuple[str | None, str, str, int]]:
    """(step id or None for the trigger, field, kind, id) of every reference to another domain."""
    found: list[tuple[str | None, str, str, int]] = []
    if definition.trigger.segment_id is not None:
        found.append((None, "trigger.segment_id", "segment", definition.trigger.segment_id))
    fields = {"segment": "rule", "tag": "tag_id", "coupon_template": "template_id",
              "message_template": "template_id", "user": "assign"}
    for step in definition.steps.values():
        for kind, ids in step_references(step).items():
            where = "rule" if step.type == "condition" else fields[kind]
            found.extend((step.id, where, kind, ref_id) for ref_id in sorted(ids))
    return found
