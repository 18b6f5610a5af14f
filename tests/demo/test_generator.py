"""The demo brand generator: deterministic, well-formed, realistic, mergeable, streaming."""

from __future__ import annotations

import itertools
import statistics
import tracemalloc
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from siyu.demo.catalog import (
    CATEGORY_CYCLE_DAYS,
    CONSUMPTION_CYCLE_DAYS,
    FACE_MASK,
    MILK_POWDER,
    PRODUCTS,
    PRODUCTS_BY_SKU,
)
from siyu.demo.generator import (
    DemoSpec,
    expected_merge_count,
    generate_demo_events,
    is_merge_case,
    merge_case_indices,
)

END = datetime(2026, 3, 1, 4, 30, tzinfo=UTC)
SPEC = DemoSpec(customers=1500, seed=7, end=END)
START = datetime(2025, 3, 1, 4, 30, tzinfo=UTC)

ENVELOPE_KEYS = {"id", "type", "occurred_at", "identities", "traits", "properties"}
IDENTITY_TYPES = {"wecom_external_userid", "wechat_unionid", "wechat_openid", "phone", "email",
                  "douyin_openid", "xhs_userid", "app_user_id", "member_no"}
# The engine's default strong identity types (a phone only when verified).
STRONG_TYPES = {"wecom_external_userid", "wechat_unionid", "member_no", "app_user_id", "phone"}
PROPERTY_KEYS = {
    "contact_added": {"staff_id", "channel", "live_code"},
    "contact_deleted": {"staff_id"},
    "page_view": {"page", "title"},
    "message_received": {"staff_id", "text"},
    "group_joined": {"group_id", "group_name"},
    "group_left": {"group_id", "group_name"},
    "lead_submitted": {"form_id", "source"},
    "form_submitted": {"form_id", "source"},
    "check_in": {"group_id"},
    "share": {"content_id", "channel"},
    "order_paid": {"order_id", "channel", "currency", "total_fen", "discount_fen", "items", "coupon_code"},
    "order_refunded": {"order_id", "amount_fen", "refund_id", "reason"},
}
CONTACT_CHANNELS = {"douyin", "xiaohongshu", "shipinhao", "tmall", "ads", "store", "referral"}
ORDER_CHANNELS = {"tmall", "jd", "douyin", "mini_program", "store"}
STAFF = {f"staff_{n:02d}" for n in range(1, 13)}


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate_demo_events(SPEC))


@pytest.fixture(scope="module")
def by_customer(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        grouped[_customer(event)].append(event)
    return grouped


def _customer(event: dict[str, Any]) -> int:
    return int(event["id"].split("-")[2])


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def _strong_keys(event: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (identity["type"], identity.get("namespace", ""), identity["value"])
        for identity in event["identities"]
        if identity["type"] in STRONG_TYPES and (identity["type"] != "phone" or identity["verified"])
    }


def _resolve(events: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """A minimal strong-identity resolver: (profiles created, merges performed)."""
    owner: dict[tuple[str, str, str], int] = {}
    parent: list[int] = []

    def root(profile: int) -> int:
        while parent[profile] != profile:
            profile = parent[profile]
        return profile

    merges = 0
    for event in events:
        keys = _strong_keys(event)
        owners = {root(owner[key]) for key in keys if key in owner}
        if owners:
            survivor = min(owners)
            for other in owners - {survivor}:
                parent[other] = survivor
                merges += 1
        else:
            survivor = len(parent)
            parent.append(survivor)
        for key in keys:
            owner.setdefault(key, survivor)
    return len(parent), merges


# -- determinism ----------------------------------------------------------------------------------

def test_same_spec_gives_identical_stream(events: list[dict[str, Any]]) -> None:
    assert list(generate_demo_events(DemoSpec(customers=1500, seed=7, end=END))) == events


def test_different_seed_gives_a_different_stream() -> None:
    first = list(generate_demo_events(DemoSpec(customers=50, seed=1, end=END)))
    second = list(generate_demo_events(DemoSpec(customers=50, seed=2, end=END)))
    assert first != second
    assert {e["id"] for e in first}.isdisjoint(e["id"] for e in second)


def test_a_customer_does_not_depend_on_how_many_follow() -> None:
    small = list(generate_demo_events(DemoSpec(customers=30, seed=7, end=END)))
    large = list(itertools.islice(generate_demo_events(DemoSpec(customers=10_000, seed=7, end=END)),
                                  len(small)))
    assert small == large


# -- shape ----------------------------------------------------------------------------------------

def test_every_event_has_the_documented_shape(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert set(event) == ENVELOPE_KEYS
        assert set(event["properties"]) == PROPERTY_KEYS[event["type"]], event
        assert isinstance(event["traits"], dict)
        assert 1 <= len(event["identities"]) <= 6
        for identity in event["identities"]:
            assert identity["type"] in IDENTITY_TYPES
            assert isinstance(identity["value"], str) and identity["value"]
            if identity["type"] == "phone":
                assert set(identity) == {"type", "value", "verified"}
                assert identity["value"].startswith("+861") and len(identity["value"]) == 14
            elif identity["type"] == "wechat_openid":
                assert set(identity) == {"type", "value", "namespace"}
            else:
                assert set(identity) == {"type", "value"}


def test_properties_use_the_documented_vocabularies(events: list[dict[str, Any]]) -> None:
    for event in events:
        properties = event["properties"]
        if "staff_id" in properties:
            assert properties["staff_id"] in STAFF
        if event["type"] == "contact_added":
            assert properties["channel"] in CONTACT_CHANNELS
            assert properties["live_code"] == f"lc_{properties['channel']}"
        elif event["type"] == "page_view":
            assert properties["page"] == "/" or properties["page"].removeprefix("/products/") in PRODUCTS_BY_SKU
        elif event["type"] == "order_paid":
            assert properties["channel"] in ORDER_CHANNELS
            assert properties["currency"] == "CNY"
        elif event["type"] == "share":
            assert properties["channel"] == "wechat_moments"


def test_event_ids_are_unique_and_name_seed_and_customer(events: list[dict[str, Any]]) -> None:
    ids = [event["id"] for event in events]
    assert len(set(ids)) == len(ids)
    assert all(event_id.startswith("demo-7-") for event_id in ids)
    order_ids = [e["properties"]["order_id"] for e in events if e["type"] == "order_paid"]
    assert len(set(order_ids)) == len(order_ids)
    assert all(order_id.startswith("DEMO-7-") for order_id in order_ids)


def test_order_money_is_integer_fen_and_totals_add_up(events: list[dict[str, Any]]) -> None:
    orders = [e["properties"] for e in events if e["type"] == "order_paid"]
    assert len(orders) > 3000
    for order in orders:
        items = order["items"]
        assert items
        for item in items:
            assert type(item["quantity"]) is int and item["quantity"] >= 1
            assert item["unit_price_fen"] == PRODUCTS_BY_SKU[item["sku"]].unit_price_fen
            assert item["category"] == PRODUCTS_BY_SKU[item["sku"]].category
        subtotal = sum(item["quantity"] * item["unit_price_fen"] for item in items)
        assert type(order["total_fen"]) is int and type(order["discount_fen"]) is int
        assert 0 <= order["discount_fen"] < subtotal
        assert order["total_fen"] == subtotal - order["discount_fen"]
        assert (order["coupon_code"] is None) == (order["discount_fen"] == 0)
    assert 0.7 < sum(order["coupon_code"] is None for order in orders) / len(orders) < 0.95


def test_refunds_reverse_an_earlier_order_of_the_same_customer(
        by_customer: dict[int, list[dict[str, Any]]]) -> None:
    refunds = orders = 0
    for customer_events in by_customer.values():
        placed = {e["properties"]["order_id"]: e for e in customer_events if e["type"] == "order_paid"}
        orders += len(placed)
        for event in customer_events:
            if event["type"] != "order_refunded":
                continue
            refunds += 1
            order = placed[event["properties"]["order_id"]]
            assert _at(order) < _at(event)
            assert type(event["properties"]["amount_fen"]) is int
            assert 0 < event["properties"]["amount_fen"] <= order["properties"]["total_fen"]
    assert 0.015 < refunds / orders < 0.045


def test_timestamps_are_utc_and_inside_the_window(events: list[dict[str, Any]]) -> None:
    for event in events:
        moment = _at(event)
        assert moment.utcoffset() == timedelta(0)
        assert event["occurred_at"].endswith("+00:00")
        assert START <= moment < END


def test_history_ends_just_before_a_non_utc_end() -> None:
    end = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=8)))
    stream = list(generate_demo_events(DemoSpec(customers=200, months=3, end=end)))
    assert max(_at(e) for e in stream) < end
    assert min(_at(e) for e in stream) >= datetime(2025, 12, 1, 4, 0, tzinfo=UTC)


def test_spec_refuses_a_naive_end() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DemoSpec(end=datetime(2026, 3, 1))


def test_profile_traits_come_with_the_first_event(by_customer: dict[int, list[dict[str, Any]]]) -> None:
    for customer_events in by_customer.values():
        traits = customer_events[0]["traits"]
        assert {"name", "gender", "city", "province", "acquisition_channel"} <= set(traits)
        assert traits["gender"] in {"female", "male"}
        assert 2 <= len(traits["name"]) <= 4
    updates = [e for events in by_customer.values() for e in events[1:] if e["traits"]]
    assert updates, "some customers tell their birthday later"
    assert all(set(e["traits"]) <= {"birthday", "name", "gender", "city", "province", "acquisition_channel"}
               for e in updates)


# -- realism --------------------------------------------------------------------------------------

def _median_gap_days(by_customer: dict[int, list[dict[str, Any]]], category: str) -> float:
    gaps: list[float] = []
    for customer_events in by_customer.values():
        moments = sorted(_at(e) for e in customer_events if e["type"] == "order_paid"
                         and any(item["category"] == category for item in e["properties"]["items"]))
        gaps += [(later - earlier) / timedelta(days=1) for earlier, later in itertools.pairwise(moments)]
    assert len(gaps) > 200
    return statistics.median(gaps)


def test_milk_powder_buyers_replenish_about_monthly(by_customer: dict[int, list[dict[str, Any]]]) -> None:
    assert 25 <= _median_gap_days(by_customer, MILK_POWDER) <= 40


def test_face_mask_buyers_replenish_about_fortnightly(by_customer: dict[int, list[dict[str, Any]]]) -> None:
    assert 11 <= _median_gap_days(by_customer, FACE_MASK) <= 22


def test_customers_come_from_many_channels(by_customer: dict[int, list[dict[str, Any]]]) -> None:
    channels = [events[0]["traits"]["acquisition_channel"] for events in by_customer.values()]
    assert set(channels) == CONTACT_CHANNELS
    assert all(0.04 < channels.count(channel) / len(channels) < 0.35 for channel in CONTACT_CHANNELS)


def test_buyers_leads_sleepers_and_returners_all_appear(by_customer: dict[int, list[dict[str, Any]]]) -> None:
    assert len(by_customer) == SPEC.customers
    never, once, sleeping, returned = 0, 0, 0, 0
    for customer_events in by_customer.values():
        moments = sorted(_at(e) for e in customer_events if e["type"] == "order_paid")
        never += not moments
        once += len(moments) == 1
        sleeping += bool(moments) and END - moments[-1] > timedelta(days=90)
        returned += any(b - a > timedelta(days=75) for a, b in itertools.pairwise(moments))
    total = SPEC.customers
    assert 0.1 < never / total < 0.3
    assert 0.1 < once / total < 0.4
    assert sleeping / total > 0.1
    assert returned / total > 0.02


def test_engagement_is_sprinkled_around_orders(events: list[dict[str, Any]]) -> None:
    kinds = {event["type"] for event in events}
    assert kinds == set(PROPERTY_KEYS)
    per_customer = len(events) / SPEC.customers
    assert 10 < per_customer < 40


def test_some_events_arrive_out_of_order(by_customer: dict[int, list[dict[str, Any]]]) -> None:
    pairs = swapped = 0
    for customer_events in by_customer.values():
        for earlier, later in itertools.pairwise(customer_events):
            pairs += 1
            swapped += _at(later) < _at(earlier)
    assert 0.01 < swapped / pairs < 0.12


# -- identities and merges ------------------------------------------------------------------------

def test_every_event_carries_a_strong_identity(events: list[dict[str, Any]]) -> None:
    assert all(_strong_keys(event) for event in events)


def test_no_identity_is_shared_between_customers(events: list[dict[str, Any]]) -> None:
    owners: dict[tuple[str, str, str], int] = {}
    for event in events:
        for identity in event["identities"]:
            key = (identity["type"], identity.get("namespace", ""), identity["value"])
            assert owners.setdefault(key, _customer(event)) == _customer(event), key


def test_phones_are_valid_mainland_mobiles(events: list[dict[str, Any]]) -> None:
    import phonenumbers
    phones = {i["value"] for e in events[:3000] for i in e["identities"] if i["type"] == "phone"}
    assert phones
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(phone)) for phone in phones)


def test_two_percent_of_customers_are_merge_cases() -> None:
    assert expected_merge_count(SPEC) == 30
    assert list(merge_case_indices(SPEC)) == [i for i in range(SPEC.customers) if is_merge_case(i)]
    assert expected_merge_count(DemoSpec(customers=1_000_000, end=END)) == 20_000


def test_merge_cases_use_two_disjoint_identity_sets_then_a_link(
        by_customer: dict[int, list[dict[str, Any]]]) -> None:
    for index in merge_case_indices(SPEC):
        customer_events = by_customer[index]
        assert [_at(e) for e in customer_events] == sorted(_at(e) for e in customer_events)
        link = next(e for e in customer_events if e["properties"].get("form_id") == "member_signup")
        kinds = [{i["type"] for i in e["identities"]} for e in customer_events]
        position = customer_events.index(link)
        assert kinds[position] == {"wechat_unionid", "phone", "member_no"}
        before = kinds[:position]
        set_a = [k for k in before if "phone" in k]
        set_b = [k for k in before if "wechat_unionid" in k]
        assert set_a and set_b
        assert len(set_a) + len(set_b) == len(before)
        assert all(k == {"phone", "douyin_openid"} for k in set_a)
        first_b = next(e for e in customer_events if "wechat_unionid" in {i["type"] for i in e["identities"]})
        assert first_b["type"] == "contact_added"
        assert customer_events[0]["traits"] and first_b["traits"]


def test_ingesting_the_stream_merges_exactly_the_merge_cases(events: list[dict[str, Any]]) -> None:
    merges = expected_merge_count(SPEC)
    assert _resolve(events) == (SPEC.customers + merges, merges)
    in_time_order = sorted(events, key=_at)
    assert _resolve(in_time_order) == (SPEC.customers + merges, merges)


@pytest.mark.parametrize(("seed", "months"), [(0, 1), (123, 3), (99, 24)])
def test_merges_hold_for_other_seeds_and_history_lengths(seed: int, months: int) -> None:
    spec = DemoSpec(customers=300, seed=seed, months=months, end=END)
    merges = expected_merge_count(spec)
    assert merges == 6
    assert _resolve(generate_demo_events(spec)) == (spec.customers + merges, merges)


def test_events_pass_the_ingestion_contract(events: list[dict[str, Any]]) -> None:
    from siyu.events import catalog, validation
    for event in events[:5000]:
        validation.EventIn.model_validate(event)
        catalog.properties_adapter(event["type"]).validate_python(event["properties"])
        validation.clean_traits(event["traits"])


# -- streaming ------------------------------------------------------------------------------------

def test_streaming_holds_one_customer_at_a_time() -> None:
    tracemalloc.start()
    try:
        stream = generate_demo_events(DemoSpec(customers=1_000_000, end=END))
        for _ in itertools.islice(stream, 10_000):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


# -- catalogue ------------------------------------------------------------------------------------

def test_catalogue_has_about_25_priced_skus_with_consumption_cycles() -> None:
    assert 20 <= len(PRODUCTS) <= 30
    assert len(PRODUCTS_BY_SKU) == len(PRODUCTS)
    for product in PRODUCTS:
        assert type(product.unit_price_fen) is int and product.unit_price_fen > 2000
        assert CONSUMPTION_CYCLE_DAYS[product.sku] == CATEGORY_CYCLE_DAYS[product.category]
    assert CATEGORY_CYCLE_DAYS == {"母婴/奶粉": 30, "母婴/纸尿裤": 20, "母婴/辅食": 15,
                                   "美妆/面膜": 14, "美妆/护肤": 60, "美妆/彩妆": 90}
