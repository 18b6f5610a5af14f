"""The compiled SQL and the plain-Python reference agree on random rules over random data — for the
whole workspace and scoped to some customers (the incremental path)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.coupons.models import Coupon, CouponTemplate
from siyu.customers.models import Customer
from siyu.db.session import session_factory
from siyu.events.service import ingest_events
from siyu.kit import clock
from siyu.loyalty.models import Member, Tier
from siyu.rules.compiler import SCOPE, compile_rule, evaluation_select
from siyu.rules.tree import parse_rule, to_json
from siyu.segments.lifecycle import update_lifecycle
from siyu.segments.rfm import score_rfm
from siyu.segments.service import create_segment
from siyu.tags.service import create_tag, tag_customers
from siyu.workspaces.service import WorkspaceContext
from tests.segments.reference import evaluate, load_world

CITIES = ["上海", "杭州", "上海市", "Shanghai", "shanghai"]
KEYS = ["level", "baby_age"]
CATEGORIES = ["母婴/奶粉", "母婴", "母婴奶", "美妆/面膜"]
SKUS = ["A", "B"]
json_values = st.one_of(st.none(), st.just(""), st.sampled_from(["gold", "3", "silver"]), st.integers(-2, 12),
                        st.sampled_from([2.5, 0.5]), st.booleans())
days_ago = st.integers(0, 400)


@st.composite
def customer_data(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "city": draw(st.sampled_from([*CITIES, None])),
        "birthday": draw(st.sampled_from([None, "1990-11-20", "1988-11-25", "1992-02-29", "1985-12-31",
                                          "1995-03-01"])),
        "attributes": draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=2)),
        "wecom": draw(st.booleans()),
        "events": draw(st.lists(st.tuples(st.sampled_from(["viewed", "check_in"]), days_ago,
                                          st.dictionaries(st.sampled_from(["amount", "tier"]), json_values,
                                                          max_size=2)), max_size=4)),
        "member": draw(st.one_of(st.none(), st.tuples(st.sampled_from(["silver", "gold"]), st.integers(-50, 900),
                                                      st.sampled_from(["active", "active", "left"])))),
        "coupons": draw(st.lists(st.tuples(st.sampled_from(["issued", "redeemed", "expired", "voided"]), days_ago,
                                           st.integers(-30, 60)), max_size=3)),
        "orders": draw(st.lists(st.tuples(days_ago, st.lists(st.tuples(st.sampled_from(SKUS),
                                                                       st.sampled_from(CATEGORIES),
                                                                       st.integers(1, 3), st.integers(0, 40000)),
                                                             min_size=1, max_size=2),
                                          st.sampled_from(["none", "partial", "full"])), max_size=3)),
    }


def _iso(days: int, seconds: int = 0) -> str:
    return (clock.now() - timedelta(days=days, seconds=seconds)).isoformat()


def build(session: Session, ctx: WorkspaceContext, people: list[dict[str, Any]]) -> None:
    raw: list[dict[str, Any]] = []
    for i, person in enumerate(people):
        who = [{"type": "wechat_unionid", "value": f"u-{i}"}]
        if person["wecom"]:
            who.append({"type": "wecom_external_userid", "value": f"wm-{i}"})
        traits = {"city": person["city"], "birthday": person["birthday"], "attributes": person["attributes"]}
        raw.append({"id": f"id-{i}", "type": "identify", "occurred_at": _iso(500), "identities": who,
                    "traits": traits})
        for j, (kind, ago, props) in enumerate(person["events"]):
            raw.append({"id": f"ev-{i}-{j}", "type": kind, "occurred_at": _iso(ago, 7 * j + i),
                        "identities": who[:1], "properties": props})
        for j, (ago, items, refund) in enumerate(person["orders"]):
            lines = [{"sku": sku, "name": sku, "category": category, "quantity": qty, "unit_price_fen": price}
                     for sku, category, qty, price in items]
            total = sum(line["quantity"] * line["unit_price_fen"] for line in lines)
            order_id = f"O-{i}-{j}"
            raw.append({"id": f"or-{i}-{j}", "type": "order_paid", "occurred_at": _iso(ago, 11 * j + i),
                        "identities": who[:1], "properties": {"order_id": order_id, "total_fen": total,
                                                              "items": lines}})
            amount = total if refund == "full" else total // 2
            if refund != "none" and amount > 0:
                raw.append({"id": f"rf-{i}-{j}", "type": "order_refunded", "occurred_at": _iso(0, 1),
                            "identities": who[:1], "properties": {"order_id": order_id, "amount_fen": amount}})
    results = ingest_events(session, ctx, raw, max_batch=None)
    assert all(r.status == "accepted" for r in results), [r.as_dict() for r in results if r.status != "accepted"]
    customer_of = {f"u-{i}": r.customer_id for i, r in enumerate(x for x in results if x.id and x.id.startswith("id-"))}
    loyalty_and_coupons(session, ctx, people, customer_of)


def loyalty_and_coupons(session: Session, ctx: WorkspaceContext, people: list[dict[str, Any]],
                        customer_of: dict[str, int | None]) -> None:
    """Members and coupons written directly: the rules read them, the loyalty and coupon rules are
    those domains' business."""
    now = clock.now()
    tiers = {code: Tier(workspace_id=ctx.id, code=code, name=code, rank=rank, threshold=rank * 1000, created_at=now,
                        updated_at=now) for rank, code in enumerate(["silver", "gold"])}
    template = CouponTemplate(workspace_id=ctx.id, name="满100减10", kind="amount_off", amount_off_fen=1000,
                              created_at=now, updated_at=now)
    session.add_all([*tiers.values(), template])
    session.flush()
    for i, person in enumerate(people):
        customer_id = customer_of[f"u-{i}"]
        assert customer_id is not None
        if person["member"] is not None:
            code, points, status = person["member"]
            session.add(Member(workspace_id=ctx.id, customer_id=customer_id, member_number=f"M{i}", status=status,
                               tier_id=tiers[code].id, tier_reached_at=now, points_balance=points, consent_at=now,
                               consent_channel="test", consent_text_version="1", enrolled_at=now, updated_at=now))
        for j, (state, ago, valid_days) in enumerate(person["coupons"]):
            issued = now - timedelta(days=ago, seconds=j)
            session.add(Coupon(workspace_id=ctx.id, template_id=template.id, customer_id=customer_id,
                               code=f"C{i}X{j}", state=state, cause_key=f"test:{i}:{j}", issued_at=issued,
                               valid_from=issued, valid_until=now + timedelta(days=valid_days, seconds=j)))
    session.flush()


def comparison(prop: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda op, v: {"op": op, "value": v}, st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), prop),
        st.builds(lambda a, b: {"op": "between", "value": {"min": min(a, b), "max": max(a, b)}}, prop, prop))


def elapsed() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda op, v: {"op": op, "value": v}, st.sampled_from(["gt", "gte", "lt", "lte"]),
                  st.integers(0, 200)),
        st.builds(lambda a, b: {"op": "between", "value": {"min": min(a, b), "max": max(a, b)}},
                  st.integers(0, 200), st.integers(0, 200)))


windows = st.one_of(st.integers(1, 400), st.just({"from": "2026-06-01", "to": "2026-11-20"}),
                    st.just({"from": "2026-11-19"}), st.just({"to": "2026-01-31"}))


def value_test(key_field: str) -> st.SearchStrategy[dict[str, Any]]:
    key = st.sampled_from([*KEYS, "amount", "tier"])
    scalar = st.one_of(st.sampled_from(["gold", "3", "silver"]), st.integers(-2, 12), st.just(2.5), st.booleans())
    return st.one_of(
        st.builds(lambda k, op, v: {key_field: k, "op": op, "value": v}, key, st.sampled_from(["eq", "ne"]), scalar),
        st.builds(lambda k, op, v: {key_field: k, "op": op, "value": v}, key, st.sampled_from(["in", "not_in"]),
                  st.lists(st.one_of(st.sampled_from(["gold", "3"]), st.integers(-2, 12)), min_size=1, max_size=3)),
        st.builds(lambda k, op, v: {key_field: k, "op": op, "value": v}, key,
                  st.sampled_from(["contains", "starts_with"]), st.sampled_from(["gol", "3", "il"])),
        st.builds(lambda k, op, v: {key_field: k, "op": op, "value": v}, key,
                  st.sampled_from(["gt", "gte", "lt", "lte"]), st.integers(-2, 12)),
        st.builds(lambda k, op: {key_field: k, "op": op}, key, st.sampled_from(["is_set", "is_not_set"])))


def leaves(tag_ids: list[int], segment_id: int) -> st.SearchStrategy[dict[str, Any]]:
    text_ops = st.one_of(
        st.builds(lambda op, v: {"op": op, "value": v}, st.sampled_from(["eq", "ne", "contains", "starts_with"]),
                  st.sampled_from(["上海", "shanghai", "杭"])),
        st.builds(lambda op, v: {"op": op, "value": v}, st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(CITIES), min_size=1, max_size=3)),
        st.builds(lambda op: {"op": op}, st.sampled_from(["is_set", "is_not_set"])))
    return st.one_of(
        st.builds(lambda t: {"kind": "profile", "field": "city", **t}, text_ops),
        st.builds(lambda n: {"kind": "profile", "field": "birthday", "op": "within_next_days", "value": n},
                  st.integers(1, 120)),
        st.builds(lambda d: {"kind": "profile", "field": "birthday", "op": "between", "value": d},
                  st.sampled_from([{"from": "1988-01-01", "to": "1991-12-31"}, {"from": "1992-01-01"}])),
        st.builds(lambda op, n: {"kind": "profile", "field": "last_seen_at", "op": op, "value": n},
                  st.sampled_from(["within_last_days", "more_than_days_ago"]), st.integers(1, 300)),
        st.builds(lambda t: {"kind": "attribute", **t}, value_test("key")),
        st.builds(lambda t, op: {"kind": "identity", "identity_type": t, "op": op},
                  st.sampled_from(["wecom_external_userid", "phone"]), st.sampled_from(["present", "absent"])),
        st.builds(lambda op, ids: {"kind": "tag", "op": op, "tags": ids},
                  st.sampled_from(["has_any", "has_all", "has_none"]),
                  st.lists(st.sampled_from(tag_ids), min_size=1, max_size=2, unique=True)),
        st.builds(lambda t, c, where, w: {"kind": "event", "event_type": t, "aggregate": "count", **c,
                                          "where": where, **({"window": w} if w else {})},
                  st.sampled_from(["viewed", "check_in"]), comparison(st.integers(0, 3)),
                  st.lists(value_test("key"), max_size=1), st.one_of(st.none(), windows)),
        st.builds(lambda agg, c, w: {"kind": "event", "event_type": "viewed", "aggregate": agg,
                                     "property": "amount", **c, **({"window": w} if w else {})},
                  st.sampled_from(["sum", "min", "max"]), comparison(st.integers(-3, 15)),
                  st.one_of(st.none(), windows)),
        st.builds(lambda agg, c: {"kind": "event", "event_type": "check_in", "aggregate": agg, **c},
                  st.sampled_from(["first", "last"]), elapsed()),
        st.builds(lambda m, c, w: {"kind": "order", "measure": m, **c, **({"window": w} if w else {})},
                  st.sampled_from(["count", "total_spend_fen", "average_order_fen"]),
                  st.one_of(comparison(st.integers(0, 3)), comparison(st.sampled_from([0, 20000, 29800, 60000]))),
                  st.one_of(st.none(), windows)),
        st.builds(lambda m, c: {"kind": "order", "measure": m, **c},
                  st.sampled_from(["days_since_last_order", "days_since_first_order"]), elapsed()),
        st.builds(lambda what, c, w: {"kind": "bought", **what, **c, **({"window": w} if w else {})},
                  st.one_of(st.builds(lambda c: {"category": c}, st.sampled_from(["母婴", "母婴/奶粉", "美妆"])),
                            st.builds(lambda s: {"sku": s}, st.sampled_from(SKUS))),
                  comparison(st.integers(0, 2)), st.one_of(st.none(), windows)),
        st.builds(lambda op: {"kind": "segment", "op": op, "segment_id": segment_id},
                  st.sampled_from(["in", "not_in"])),
        st.builds(lambda s: {"kind": "lifecycle", "stages": s},
                  st.lists(st.sampled_from(["prospect", "new", "active", "sleeping", "lost"]), min_size=1, max_size=2,
                           unique=True)),
        st.builds(lambda c: {"kind": "rfm", "class": c},
                  st.sampled_from(["important_value", "general_retain", "important_develop"])),
        st.builds(lambda s, c: {"kind": "rfm", "score": s, **c}, st.sampled_from(["r", "f", "m"]),
                  comparison(st.integers(1, 5))),
        st.builds(lambda t: {"kind": "tier", "tiers": t},
                  st.lists(st.sampled_from(["silver", "gold"]), min_size=1, max_size=2, unique=True)),
        st.builds(lambda c: {"kind": "points", **c}, comparison(st.sampled_from([-10, 0, 100, 500]))),
        st.builds(lambda s, c, w: {"kind": "coupon", "state": s, **c, **({"window": w} if w else {})},
                  st.sampled_from(["usable", "redeemed", "expired", "voided"]), comparison(st.integers(0, 2)),
                  st.one_of(st.none(), windows)),
    )


def rules(tag_ids: list[int], segment_id: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(leaves(tag_ids, segment_id), lambda inner: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, inner)), max_leaves=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(people=st.lists(customer_data(), min_size=1, max_size=7), data=st.data())
def test_compiled_rules_agree_with_the_reference(clean_engine: Engine, workspace: WorkspaceContext,
                                                 people: list[dict[str, Any]], data: st.DataObject) -> None:
    db = session_factory(clean_engine)()  # one real transaction per example, rolled back at its end
    try:
        build(db, workspace, people)
        now = clock.now()
        tags = [create_tag(db, workspace, name=f"t{i}", actor="test").id for i in range(2)]
        customer_ids = sorted(db.scalars(select(Customer.id).where(Customer.workspace_id == workspace.id)))
        for tag_id in tags:
            chosen = data.draw(st.lists(st.sampled_from(customer_ids), unique=True), label="tagged")
            tag_customers(db, workspace, tag_id, actor="test", customer_ids=chosen)
        static = create_segment(db, workspace, name="listed", actor="test", kind="static",
                                customer_ids=data.draw(st.lists(st.sampled_from(customer_ids), unique=True),
                                                       label="listed"))
        update_lifecycle(db, workspace, now)
        score_rfm(db, workspace, now)
        world = load_world(db, workspace.id, now, workspace.timezone)
        dialect = db.get_bind().dialect.name
        drawn = data.draw(st.lists(rules(tags, static.id), min_size=1, max_size=4), label="rules")
        compiled = []
        for i, raw in enumerate(drawn):
            rule = parse_rule(raw)
            assert parse_rule(to_json(rule)) == rule
            whole = compile_rule(rule, workspace_id=workspace.id, timezone=workspace.timezone, dialect=dialect,
                                 now=now)
            assert set(db.scalars(whole.select())) == evaluate(rule, world), raw
            compiled.append((rule, compile_rule(rule, workspace_id=workspace.id, timezone=workspace.timezone,
                                                dialect=dialect, now=now - timedelta(days=3), prefix=f"p{i}",
                                                scoped=True)))
        scope = customer_ids[::2]
        params: dict[str, Any] = {SCOPE: scope}
        for _, scoped in compiled:
            params.update(scoped.params(now))  # compiled three days ago, run now: the cached path
        rows = db.execute(evaluation_select([c for _, c in compiled], workspace.id), params).all()
        for i, (rule, _) in enumerate(compiled):
            assert {r[0] for r in rows if r[i + 1]} == evaluate(rule, world) & set(scope), drawn[i]
    finally:
        db.rollback()
        db.close()
