"""The segment builder's form ↔ the rule tree, so operators edit rules with forms, never JSON.

The form holds a root group (match all / any) of items; an item is a condition row or a group
(all / any) of condition rows; rows and groups can be negated. Field names are `<item id>.<field>`
(`r3.kind`, `g1r0.window`), and the order of items is carried in `order` / `<group>.rows`.
A rule deeper than that (groups in groups) is not editable here: the console shows its JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from siyu.rules.tree import RuleInvalid, RuleIssue, child_path, parse_rule

KINDS = ("order", "bought", "event", "tag", "profile", "attribute", "identity", "segment", "lifecycle", "rfm", "tier",
         "points", "coupon")
LIST_FIELDS = ("tags", "stages")
DEFAULTS: dict[str, dict[str, str]] = {
    "order": {"measure": "count", "op": "gte", "value": "1"},
    "bought": {"what": "category", "op": "gte", "value": "1"},
    "event": {"event_type": "page_view", "aggregate": "count", "op": "gte", "value": "1", "window": "30"},
    "tag": {"op": "has_any"},
    "profile": {"field": "city", "op": "eq"},
    "attribute": {"op": "eq"},
    "identity": {"identity_type": "wecom_external_userid", "op": "present"},
    "segment": {"op": "in"},
    "lifecycle": {},
    "rfm": {"mode": "class", "class": "important_value", "score": "r", "op": "gte", "value": "4"},
    "tier": {},
    "points": {"op": "gte", "value": "100"},
    "coupon": {"state": "usable", "op": "gte", "value": "1"},
}


@dataclass
class Row:
    id: str
    kind: str = "order"
    negate: bool = False
    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def get(self, name: str) -> str:
        return self.values.get(name, DEFAULTS.get(self.kind, {}).get(name, ""))

    def chosen(self, name: str) -> list[str]:
        return self.lists.get(name, [])


@dataclass
class Group:
    id: str
    match: str = "all"
    negate: bool = False
    rows: list[Row] = field(default_factory=list)
    error: str | None = None


@dataclass
class Builder:
    match: str = "all"
    items: list[Row | Group] = field(default_factory=list)
    error: str | None = None

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        for item in self.items:
            ids.append(item.id)
            if isinstance(item, Group):
                ids.extend(row.id for row in item.rows)
        return ids

    def next_id(self, prefix: str) -> str:
        used = set(self.all_ids())
        return next(f"{prefix}{n}" for n in itertools.count() if f"{prefix}{n}" not in used)


class NotEditable(Exception):
    """The rule nests deeper than the builder shows."""


# -- reading the form ------------------------------------------------------------------------------

def from_form(form: Mapping[str, list[str]]) -> Builder:
    """The builder as the operator left it, then the action of the button they pressed applied."""
    def one(name: str, default: str = "") -> str:
        values = form.get(name) or [default]
        return values[-1].strip()

    builder = Builder(match="any" if one("match") == "any" else "all")
    for item_id in filter(None, one("order").split(",")):
        if item_id.startswith("g"):
            group = Group(item_id, "any" if one(f"{item_id}.match") == "any" else "all",
                          one(f"{item_id}.not") == "on")
            group.rows = [_row(form, one, row_id) for row_id in filter(None, one(f"{item_id}.rows").split(","))]
            builder.items.append(group)
        else:
            builder.items.append(_row(form, one, item_id))
    _apply(builder, one("action"))
    return builder


def _row(form: Mapping[str, list[str]], one: Any, row_id: str) -> Row:
    kind = one(f"{row_id}.kind", "order")
    kind = kind if kind in KINDS else "order"
    prefix = f"{row_id}."
    values = {name[len(prefix):]: one(name) for name in form
              if name.startswith(prefix) and name[len(prefix):] not in ("kind", "not", *LIST_FIELDS)}
    lists = {name: [v for v in form.get(f"{prefix}{name}", []) if v] for name in LIST_FIELDS}
    return Row(row_id, kind, one(f"{row_id}.not") == "on", values, lists)


def _apply(builder: Builder, action: str) -> None:
    verb, _, target = action.partition(":")
    if verb == "add_row":
        group = next((i for i in builder.items if isinstance(i, Group) and i.id == target), None)
        if group is not None:
            group.rows.append(Row(builder.next_id(f"{group.id}r")))
        else:
            builder.items.append(Row(builder.next_id("r")))
    elif verb == "add_group":
        group = Group(builder.next_id("g"))
        group.rows.append(Row(builder.next_id(f"{group.id}r")))
        builder.items.append(group)
    elif verb == "remove":
        builder.items = [i for i in builder.items if i.id != target]
        for item in builder.items:
            if isinstance(item, Group):
                item.rows = [r for r in item.rows if r.id != target]
    if not builder.items:
        builder.items.append(Row("r0"))


# -- the rule it means -------------------------------------------------------------------------------

def to_rule(builder: Builder) -> tuple[dict[str, Any], dict[str, str]]:
    """The rule JSON of the builder, and the rule path of each row and group (to place errors)."""
    paths: dict[str, str] = {}
    children = []
    for index, item in enumerate(builder.items):
        path = child_path(builder.match, index)
        if isinstance(item, Group):
            paths[item.id] = path
            inner_path = child_path(path, "not") if item.negate else path
            rows = []
            for row_index, row in enumerate(item.rows):
                row_path = child_path(child_path(inner_path, item.match), row_index)
                paths[row.id] = row_path
                rows.append(_negated(row.negate, _condition(row)))
            children.append(_negated(item.negate, {item.match: rows}))
        else:
            paths[item.id] = path
            children.append(_negated(item.negate, _condition(item)))
    return {builder.match: children}, paths


def check(builder: Builder, issues: list[RuleIssue], paths: dict[str, str]) -> None:
    """Put each issue on the row (or group) it is about; the rest on the builder."""
    by_depth = sorted(paths.items(), key=lambda item: -len(item[1]))
    rows: dict[str, Row | Group] = {}
    for item in builder.items:
        rows[item.id] = item
        if isinstance(item, Group):
            rows.update((row.id, row) for row in item.rows)
    for issue in issues:
        owner = next((item_id for item_id, path in by_depth
                      if issue.path == path or issue.path.startswith((f"{path}.", f"{path}["))), None)
        if owner is None:
            builder.error = str(issue)
            continue
        rest = issue.path[len(paths[owner]):].lstrip(".").removeprefix("not").lstrip(".")
        message = f"{rest}: {issue.message}" if rest else issue.message
        target = rows[owner]
        target.error = f"{target.error}; {message}" if target.error else message


def parse(builder: Builder) -> tuple[dict[str, Any], bool]:
    """The rule, and whether it parses (issues are put on the builder's rows)."""
    raw, paths = to_rule(builder)
    try:
        parse_rule(raw)
    except RuleInvalid as exc:
        check(builder, exc.issues, paths)
        return raw, False
    return raw, True


def _negated(negate: bool, node: dict[str, Any]) -> dict[str, Any]:
    return {"not": node} if negate else node


def _number(text: str) -> Any:
    """A number typed in a form: int when whole, float otherwise; as typed when not a number (the
    rule check then says what is wrong with it)."""
    try:
        value = float(text)
    except ValueError:
        return text if text else None
    return int(value) if value.is_integer() else value


def _json_value(text: str) -> Any:
    """A custom value typed in a form: true / false, a number, or text."""
    if text in ("true", "false"):
        return text == "true"
    number = _number(text)
    return number if isinstance(number, int | float) else text


def _compare(row: Row, doc: dict[str, Any], typed: bool = False) -> dict[str, Any]:
    convert = _json_value if typed else _number
    doc["op"] = row.get("op")
    if doc["op"] == "between":
        doc["value"] = {"min": convert(row.get("min")), "max": convert(row.get("max"))}
    elif doc["op"] in ("in", "not_in"):
        doc["value"] = [convert(v.strip()) for v in row.get("value").split(",") if v.strip()]
    elif doc["op"] not in ("is_set", "is_not_set"):
        doc["value"] = convert(row.get("value"))
    return doc


def _window(row: Row, doc: dict[str, Any]) -> dict[str, Any]:
    if row.get("window"):
        doc["window"] = _number(row.get("window"))
    return doc


def _condition(row: Row) -> dict[str, Any]:
    kind = row.kind
    if kind == "order":
        doc = _compare(row, {"kind": "order", "measure": row.get("measure")})
        return doc if row.get("measure").startswith("days_since") else _window(row, doc)
    if kind == "bought":
        what = "sku" if row.get("what") == "sku" else "category"
        return _window(row, _compare(row, {"kind": "bought", what: row.get("name")}))
    if kind == "event":
        doc = {"kind": "event", "event_type": row.get("event_type"), "aggregate": row.get("aggregate")}
        if row.get("aggregate") in ("sum", "min", "max"):
            doc["property"] = row.get("property")
        if row.get("where_key"):
            doc["where"] = [_compare(Row(row.id, values={"op": row.get("where_op") or "eq",
                                                          "value": row.get("where_value")}),
                                     {"key": row.get("where_key")}, typed=True)]
        return _window(row, _compare(row, doc))
    if kind == "tag":
        return {"kind": "tag", "op": row.get("op"), "tags": [_number(t) for t in row.chosen("tags")]}
    if kind == "profile":
        doc = {"kind": "profile", "field": row.get("field"), "op": row.get("op")}
        op = row.get("op")
        if op in ("within_next_days", "within_last_days", "more_than_days_ago"):
            doc["value"] = _number(row.get("days"))
        elif op == "between":
            doc["value"] = {k: row.get(k) for k in ("from", "to") if row.get(k)}
        elif op in ("in", "not_in"):
            doc["value"] = [v.strip() for v in row.get("value").split(",") if v.strip()]
        elif op not in ("is_set", "is_not_set"):
            doc["value"] = row.get("value")
        return doc
    if kind == "attribute":
        return _compare(row, {"kind": "attribute", "key": row.get("key")}, typed=True)
    if kind == "identity":
        return {"kind": "identity", "identity_type": row.get("identity_type"), "op": row.get("op")}
    if kind == "segment":
        return {"kind": "segment", "op": row.get("op"), "segment_id": _number(row.get("segment"))}
    if kind == "lifecycle":
        return {"kind": "lifecycle", "stages": row.chosen("stages")}
    if kind == "tier":
        return {"kind": "tier", "tiers": [t.strip() for t in row.get("tiers").split(",") if t.strip()]}
    if kind == "points":
        return _compare(row, {"kind": "points"})
    if kind == "coupon":
        coupon: dict[str, Any] = {"kind": "coupon", "state": row.get("state")}
        if row.get("template"):
            coupon["template_id"] = _number(row.get("template"))
        return _window(row, _compare(row, coupon))
    if row.get("mode") == "class":
        return {"kind": "rfm", "class": row.get("class")}
    return _compare(row, {"kind": "rfm", "score": row.get("score")})


# -- from a stored rule ------------------------------------------------------------------------------

def from_rule(rule: dict[str, Any]) -> Builder:
    """The builder showing a stored (canonical) rule; `NotEditable` when it nests too deep."""
    match = next((k for k in ("all", "any") if k in rule), None)
    builder = Builder(match=match or "all")
    items = rule[match] if match else [rule]
    for index, item in enumerate(items):
        negate, inner = (True, item["not"]) if "not" in item else (False, item)
        group_match = next((k for k in ("all", "any") if k in inner), None)
        if group_match is None:
            builder.items.append(_row_of(f"r{index}", inner, negate))
            continue
        group = Group(f"g{index}", group_match, negate)
        for row_index, child in enumerate(inner[group_match]):
            child_negate, condition = (True, child["not"]) if "not" in child else (False, child)
            if "kind" not in condition:
                raise NotEditable("groups inside groups")
            group.rows.append(_row_of(f"g{index}r{row_index}", condition, child_negate))
        builder.items.append(group)
    return builder


def _row_of(row_id: str, condition: dict[str, Any], negate: bool) -> Row:
    if "kind" not in condition:
        raise NotEditable("groups inside groups")
    kind = condition["kind"]
    values: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for key, value in condition.items():
        if key in ("kind", "value", "where", "window", "tags", "stages", "tiers"):
            continue
        values[{"segment_id": "segment", "template_id": "template"}.get(key, key)] = str(value)
    _values_of(kind, condition, values, lists)
    return Row(row_id, kind, negate, values, lists)


def _values_of(kind: str, condition: dict[str, Any], values: dict[str, str], lists: dict[str, list[str]]) -> None:
    value = condition.get("value")
    if isinstance(value, dict) and ("min" in value or "max" in value):
        values.update(min=_text(value.get("min")), max=_text(value.get("max")))
    elif isinstance(value, dict):
        values.update({k: str(v) for k, v in value.items()})
    elif isinstance(value, list):
        values["value"] = ", ".join(_text(v) for v in value)
    elif value is not None:
        key = "days" if kind == "profile" and condition.get("op") in (
            "within_next_days", "within_last_days", "more_than_days_ago") else "value"
        values[key] = _text(value)
    window = condition.get("window")
    if isinstance(window, dict) and "last_days" in window:
        values["window"] = str(window["last_days"])
    elif window is not None:
        raise NotEditable("calendar windows")
    if kind == "bought":
        values["what"] = "sku" if "sku" in condition else "category"
        values["name"] = str(condition.get("sku") or condition.get("category") or "")
    if kind == "rfm":
        values["mode"] = "class" if "class" in condition else "score"
    where = condition.get("where") or []
    if len(where) > 1:
        raise NotEditable("more than one property test")
    if where:
        values.update(where_key=where[0]["key"], where_op=where[0]["op"], where_value=_text(where[0].get("value")))
    lists.update(tags=[str(t) for t in condition.get("tags", [])], stages=list(condition.get("stages", [])))
    if kind == "tier":
        values["tiers"] = ", ".join(condition.get("tiers", []))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)
