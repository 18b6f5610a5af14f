"""Parsing rules: bad input is refused with the path of the failing node and the reason."""

from __future__ import annotations

from typing import Any

import pytest

from siyu.rules.tree import (
    AllOf,
    Compare,
    NotOf,
    OrderCondition,
    RuleInvalid,
    TagCondition,
    Window,
    parse_rule,
    to_json,
)


def issues(raw: Any) -> list[str]:
    with pytest.raises(RuleInvalid) as caught:
        parse_rule(raw)
    return [str(i) for i in caught.value.issues]


def test_a_window_of_zero_days_is_refused_with_its_path() -> None:
    rule = {"all": [{"kind": "tag", "op": "has_any", "tags": [1]},
                    {"kind": "order", "measure": "count", "window": 90, "op": "gte", "value": 2},
                    {"kind": "event", "event_type": "page_view", "aggregate": "count", "window": 0,
                     "op": "gte", "value": 1}]}
    assert issues(rule) == ["all[2].window: must be positive"]


def test_negative_and_nested_windows_name_their_field() -> None:
    assert issues({"any": [{"not": {"kind": "order", "measure": "count", "window": {"last_days": -3},
                                    "op": "gte", "value": 1}}]}) == ["any[0].not.window.last_days: must be positive"]
    assert issues({"kind": "bought", "category": "母婴", "window": {"from": "2026-03-01", "to": "2026-01-01"}}) == [
        "window: must not end before it starts"]


def test_unknown_fields_are_refused() -> None:
    assert issues({"all": [{"kind": "profile", "field": "city", "op": "eq", "value": "上海", "colour": "red"}]}) == [
        "all[0].colour: unknown field"]
    assert issues({"all": [{"kind": "tag", "op": "has_any", "tags": [1]}], "limit": 3}) == [
        "limit: unknown field next to 'all'"]
    assert issues({"kind": "sql", "query": "select 1"})[0].startswith("kind: unknown kind 'sql'")
    assert issues({"kind": "profile", "field": "password", "op": "eq", "value": "x"})[0].startswith(
        "field: 'password' is not allowed")


def test_an_operator_of_another_type_is_refused() -> None:
    assert issues({"kind": "profile", "field": "birthday", "op": "contains", "value": "11"}) == [
        "op: 'contains' is not allowed for a date field; one of within_next_days, between, is_set, is_not_set"]
    assert issues({"kind": "profile", "field": "city", "op": "gt", "value": "上海"})[0].startswith(
        "op: 'gt' is not allowed for a text field")
    assert issues({"kind": "event", "event_type": "check_in", "aggregate": "last", "op": "eq", "value": 3})[0] \
        .startswith("op: 'eq' is not allowed for days since the last event")
    assert issues({"kind": "order", "measure": "days_since_last_order", "window": 30, "op": "gte", "value": 3}) == [
        "window: does not apply to days_since_last_order"]


def test_values_are_checked_against_their_operator() -> None:
    assert issues({"kind": "attribute", "key": "level", "op": "between", "value": {"min": 5, "max": 1}}) == [
        "value: max must not be below min"]
    assert issues({"kind": "attribute", "key": "level", "op": "is_set", "value": 3}) == ["value: is_set takes no value"]
    assert issues({"kind": "event", "event_type": "page_view", "aggregate": "sum", "op": "gte", "value": 1}) == [
        "property: sum needs the numeric property to aggregate"]
    assert issues({"kind": "order", "measure": "count", "op": "gte", "value": "2"}) == ["value: must be a number"]
    assert issues({"kind": "profile", "field": "phone", "op": "eq", "value": "12345"}) == [
        "value: not a valid phone number: '12345'"]


def test_groups_must_hold_conditions() -> None:
    assert issues({"all": []}) == ["all: must be a non-empty list of conditions"]
    assert issues({"any": [3]}) == ["any[0]: must be an object: a group (all / any / not) or a condition with a kind"]
    assert issues({}) == ["must be a group (all / any / not) or have a kind"]
    deep: dict[str, Any] = {"kind": "tag", "op": "has_any", "tags": [1]}
    for _ in range(8):
        deep = {"not": deep}
    assert issues(deep) == ["not.not.not.not.not.not.not.not: rules nest at most 8 levels deep"]


def test_every_failing_node_is_reported() -> None:
    found = issues({"all": [{"kind": "order", "measure": "count", "op": "gte", "value": -1, "window": 0},
                            {"kind": "tag", "op": "has_some", "tags": []}]})
    assert found == ["all[0].value: must be at least 0", "all[0].window: must be positive",
                     "all[1].op: 'has_some' is not allowed for tags; one of has_any, has_all, has_none",
                     "all[1].tags: must be a list of 1 to 50 ids"]


def test_a_window_may_be_written_short_and_is_stored_long() -> None:
    rule = parse_rule({"all": [{"kind": "tag", "op": "has_all", "tags": [4, 4, 2]},
                               {"not": {"kind": "order", "measure": "count", "window": 90, "op": "gte", "value": 2}}]})
    assert rule == AllOf((TagCondition("has_all", (4, 2)),
                          NotOf(OrderCondition("count", Compare("gte", 2), Window(last_days=90)))))
    assert to_json(rule) == {"all": [{"kind": "tag", "op": "has_all", "tags": [4, 2]},
                                     {"not": {"kind": "order", "measure": "count", "op": "gte", "value": 2,
                                              "window": {"last_days": 90}}}]}
    assert parse_rule(to_json(rule)) == rule


def test_phones_in_rules_are_normalised_like_stored_phones() -> None:
    rule = parse_rule({"kind": "profile", "field": "phone", "op": "in", "value": ["138 0013 8000", "+8613800138000"]})
    assert to_json(rule)["value"] == ["+8613800138000"]
