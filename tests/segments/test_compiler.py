"""What compiled rules mean, condition by condition, on the store itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.events.models import Event
from siyu.kit.clock import FrozenClock
from siyu.rules.compiler import UnscopedRule, check_workspace_scoped, compile_rule, customers
from siyu.rules.tree import parse_rule
from siyu.workspaces.service import WorkspaceContext
from tests.factories import event, order, refund
from tests.segments.helpers import ids_by_unionid, ingest, person, who


def test_text_tests_are_case_sensitive_and_skip_blank_values(db: Session, workspace: WorkspaceContext) -> None:
    ingest(db, workspace, person("a", traits={"city": "Shanghai"}), person("b", traits={"city": "shanghai"}),
           person("c"))
    assert who(db, workspace, {"kind": "profile", "field": "city", "op": "contains", "value": "Shang"}) == {"a"}
    assert who(db, workspace, {"kind": "profile", "field": "city", "op": "ne", "value": "Shanghai"}) == {"b"}
    assert who(db, workspace, {"not": {"kind": "profile", "field": "city", "op": "eq", "value": "Shanghai"}}) == {
        "b", "c"}
    assert who(db, workspace, {"kind": "profile", "field": "city", "op": "is_not_set"}) == {"c"}


def test_custom_attributes_compare_within_their_json_type(db: Session, workspace: WorkspaceContext) -> None:
    ingest(db, workspace, person("num", traits={"attributes": {"level": 3}}),
           person("text", traits={"attributes": {"level": "3"}}),
           person("flag", traits={"attributes": {"level": True}}),
           person("blank", traits={"attributes": {"level": ""}}), person("none"))
    assert who(db, workspace, {"kind": "attribute", "key": "level", "op": "eq", "value": 3}) == {"num"}
    assert who(db, workspace, {"kind": "attribute", "key": "level", "op": "eq", "value": "3"}) == {"text"}
    assert who(db, workspace, {"kind": "attribute", "key": "level", "op": "eq", "value": True}) == {"flag"}
    assert who(db, workspace, {"kind": "attribute", "key": "level", "op": "gte", "value": 1}) == {"num"}
    assert who(db, workspace, {"kind": "attribute", "key": "level", "op": "ne", "value": 3}) == {"text", "flag"}
    assert who(db, workspace, {"kind": "attribute", "key": "level", "op": "is_not_set"}) == {"blank", "none"}


def test_counts_over_nothing_are_zero(db: Session, workspace: WorkspaceContext) -> None:
    ingest(db, workspace, order("O-1", unionid="buyer"), person("browser"))
    fewer_than_one = {"kind": "order", "measure": "count", "op": "lt", "value": 1}
    assert who(db, workspace, fewer_than_one) == {"browser"}
    assert who(db, workspace, {"not": fewer_than_one}) == {"buyer"}
    assert who(db, workspace, {"kind": "order", "measure": "count", "window": 30, "op": "eq", "value": 0}) == {
        "browser"}
    assert who(db, workspace, {"kind": "order", "measure": "days_since_last_order", "op": "gte", "value": 0}) == {
        "buyer"}


def test_refunds_count_against_spend_and_a_full_refund_cancels_the_order(db: Session,
                                                                          workspace: WorkspaceContext) -> None:
    ingest(db, workspace, order("O-1", unionid="partial", total_fen=50000,
                                items=[{"sku": "M", "category": "母婴/奶粉", "quantity": 1, "unit_price_fen": 50000}]),
           order("O-2", unionid="full", total_fen=50000,
                 items=[{"sku": "M", "category": "母婴/奶粉", "quantity": 1, "unit_price_fen": 50000}]),
           refund("O-1", 20000, unionid="partial"), refund("O-2", 50000, unionid="full"))
    assert who(db, workspace, {"kind": "order", "measure": "total_spend_fen", "op": "eq", "value": 30000}) == {
        "partial"}
    assert who(db, workspace, {"kind": "order", "measure": "count", "window": 90, "op": "gte", "value": 1}) == {
        "partial"}
    assert who(db, workspace, {"kind": "bought", "category": "母婴"}) == {"partial"}


def test_average_order_is_compared_exactly(db: Session, workspace: WorkspaceContext) -> None:
    ingest(db, workspace, order("O-1", unionid="a", total_fen=50000), order("O-2", unionid="a", total_fen=49999),
           order("O-3", unionid="b", total_fen=50000))
    assert who(db, workspace, {"kind": "order", "measure": "average_order_fen", "op": "gte", "value": 50000}) == {"b"}
    assert who(db, workspace, {"kind": "order", "measure": "average_order_fen", "op": "eq", "value": 49999.5}) == {
        "a"}


def test_a_category_covers_its_subcategories_only(db: Session, workspace: WorkspaceContext) -> None:
    ingest(db, workspace, order("O-1", unionid="milk"),
           order("O-2", unionid="lookalike",
                 items=[{"sku": "X", "category": "母婴用品", "quantity": 1, "unit_price_fen": 100}]))
    assert who(db, workspace, {"kind": "bought", "category": "母婴"}) == {"milk"}
    assert who(db, workspace, {"kind": "bought", "sku": "X", "window": 30}) == {"lookalike"}


def test_birthday_within_next_days_is_calendar_days_in_the_workspace_zone(
        db: Session, workspace: WorkspaceContext, clock: FrozenClock) -> None:
    ingest(db, workspace, person("today", traits={"birthday": "1990-11-20"}),
           person("in_a_week", traits={"birthday": "1985-11-26"}),
           person("too_far", traits={"birthday": "1985-11-27"}))
    rule = {"kind": "profile", "field": "birthday", "op": "within_next_days", "value": 7}
    assert who(db, workspace, rule) == {"today", "in_a_week"}
    clock.set(clock.now().replace(hour=16, minute=30))  # 00:30 on 21 November in Shanghai
    assert who(db, workspace, rule) == {"in_a_week", "too_far"}


def test_people_born_on_29_february_celebrate_on_the_28th_in_other_years(
        db: Session, workspace: WorkspaceContext, clock: FrozenClock) -> None:
    ingest(db, workspace, person("leap", traits={"birthday": "1992-02-29"}))
    clock.set(clock.now().replace(year=2027, month=2, day=28))
    assert who(db, workspace, {"kind": "profile", "field": "birthday", "op": "within_next_days", "value": 1}) == {
        "leap"}


def test_event_aggregates_filter_on_properties_within_a_window(db: Session, workspace: WorkspaceContext,
                                                               clock: FrozenClock) -> None:
    recent = (clock.now() - timedelta(days=3)).isoformat()
    old = (clock.now() - timedelta(days=40)).isoformat()
    ingest(db, workspace,
           *(event("page_view", id=f"v{i}", at=recent, properties={"page": "/promo/618"},
                   identities=[{"type": "wechat_unionid", "value": "fan"}]) for i in range(3)),
           event("page_view", id="old", at=old, properties={"page": "/promo/618"},
                 identities=[{"type": "wechat_unionid", "value": "lapsed"}]),
           event("page_view", id="home", at=recent, properties={"page": "/"},
                 identities=[{"type": "wechat_unionid", "value": "lapsed"}]))
    promo = [{"key": "page", "op": "starts_with", "value": "/promo"}]
    assert who(db, workspace, {"kind": "event", "event_type": "page_view", "aggregate": "count", "where": promo,
                               "window": 30, "op": "gte", "value": 2}) == {"fan"}
    assert who(db, workspace, {"kind": "event", "event_type": "page_view", "aggregate": "last", "where": promo,
                               "op": "gt", "value": 30}) == {"lapsed"}


def test_conditions_that_move_with_time_move_without_new_events(db: Session, workspace: WorkspaceContext,
                                                                clock: FrozenClock) -> None:
    ingest(db, workspace, order("O-1", unionid="a", at=clock.now() - timedelta(days=80)))
    no_order_in_90_days = {"kind": "order", "measure": "days_since_last_order", "op": "gte", "value": 90}
    assert who(db, workspace, no_order_in_90_days) == set()
    clock.advance(timedelta(days=10))
    assert who(db, workspace, no_order_in_90_days) == {"a"}


def test_a_compiled_rule_is_rebound_to_a_later_now(db: Session, workspace: WorkspaceContext,
                                                   clock: FrozenClock) -> None:
    ingest(db, workspace, order("O-1", unionid="a", at=clock.now() - timedelta(days=80)))
    compiled = compile_rule(parse_rule({"kind": "order", "measure": "count", "window": 90, "op": "gte", "value": 1}),
                            workspace_id=workspace.id, timezone=workspace.timezone,
                            dialect=db.get_bind().dialect.name, now=clock.now())
    assert len(db.scalars(compiled.select()).all()) == 1
    assert db.scalars(compiled.select(), compiled.params(clock.now() + timedelta(days=11))).all() == []


def test_rules_never_see_another_workspace(db: Session, workspace: WorkspaceContext,
                                           other_workspace: WorkspaceContext) -> None:
    ingest(db, workspace, order("O-1", unionid="ours"))
    ingest(db, other_workspace, order("O-1", unionid="theirs"))
    rule = {"kind": "order", "measure": "count", "op": "gte", "value": 1}
    assert who(db, workspace, rule) == {"ours"}
    assert who(db, other_workspace, {"kind": "order", "measure": "count", "op": "lt", "value": 1}) == set()


def test_a_query_reading_a_table_without_the_workspace_filter_is_refused(workspace: WorkspaceContext) -> None:
    unscoped = select(customers.c.id).where(customers.c.workspace_id == workspace.id,
                                            customers.c.id.in_(select(Event.customer_id)))
    with pytest.raises(UnscopedRule, match="events without a workspace filter"):
        check_workspace_scoped(unscoped, workspace.id)
    with pytest.raises(UnscopedRule):
        check_workspace_scoped(select(customers.c.id).where(customers.c.workspace_id == workspace.id + 1),
                               workspace.id)


def test_tier_points_and_coupon_state(db: Session, workspace: WorkspaceContext) -> None:
    from tests.segments.test_compiler_property import loyalty_and_coupons

    ingest(db, workspace, person("gold"), person("left"), person("none"))
    ids = ids_by_unionid(db, workspace)
    people = [{"member": ("gold", 600, "active"), "coupons": [("issued", 3, 10), ("issued", 40, -5)]},
              {"member": ("gold", 900, "left"), "coupons": [("redeemed", 2, 10)]},
              {"member": None, "coupons": []}]
    loyalty_and_coupons(db, workspace, people, {"u-0": ids["gold"], "u-1": ids["left"], "u-2": ids["none"]})
    db.commit()
    assert who(db, workspace, {"kind": "tier", "tiers": ["gold"]}) == {"gold"}
    assert who(db, workspace, {"kind": "points", "op": "gte", "value": 500}) == {"gold"}
    assert who(db, workspace, {"kind": "coupon", "state": "usable"}) == {"gold"}
    assert who(db, workspace, {"kind": "coupon", "state": "expired", "window": 30}) == set()
    assert who(db, workspace, {"kind": "coupon", "state": "expired"}) == {"gold"}
    assert who(db, workspace, {"kind": "coupon", "state": "redeemed", "op": "eq", "value": 0}) == {"gold", "none"}


def test_unknown_tiers_and_coupon_templates_are_named(db: Session, workspace: WorkspaceContext) -> None:
    from siyu.rules.references import check_rule
    from siyu.rules.tree import RuleInvalid

    with pytest.raises(RuleInvalid) as caught:
        check_rule(db, workspace.id, {"any": [{"kind": "tier", "tiers": ["platinum"]},
                                              {"kind": "coupon", "state": "usable", "template_id": 9}]}, owner=None)
    assert [str(i) for i in caught.value.issues] == ["any[0].tiers[0]: no tier 'platinum' in this workspace",
                                                     "any[1].template_id: no coupon template 9 in this workspace"]
