"""Property tests: whatever the events and however they are batched, resolution keeps its promises."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from siyu.customers.models import Customer, Identity
from siyu.db.session import transaction
from siyu.events.models import CustomerRollup, Event, Order
from siyu.events.service import ingest_events
from siyu.workspaces.service import context_of, create_workspace

_slugs = itertools.count()
STRONG = ["wechat_unionid", "member_no", "app_user_id"]
WEAK = ["douyin_openid", "xhs_userid"]

identity = st.one_of(
    st.tuples(st.sampled_from(STRONG), st.integers(0, 5)),
    st.tuples(st.sampled_from(WEAK), st.integers(0, 3)),
)
event_spec = st.tuples(st.lists(identity, min_size=1, max_size=3), st.booleans(), st.integers(0, 400))


def _events(specs: list[tuple[list[tuple[str, int]], bool, int]]) -> list[dict[str, Any]]:
    events = []
    for n, (idents, is_order, day) in enumerate(specs):
        body: dict[str, Any] = {
            "id": f"p-{n}", "occurred_at": f"2025-{1 + day % 12:02d}-{1 + day % 28:02d}T10:00:00+08:00",
            "identities": [{"type": t, "value": f"{t}-{v}"} for t, v in idents], "type": "page_view",
            "properties": {}}
        if is_order:
            body["type"] = "order_paid"
            body["properties"] = {"order_id": f"o-{n}", "total_fen": 1000 + n, "currency": "CNY",
                                  "items": [{"sku": "s", "category": "c", "quantity": 1, "unit_price_fen": 1000 + n}]}
        events.append(body)
    return events


def _ingest(engine: Engine, events: list[dict[str, Any]], batch: int) -> int:
    with transaction(engine) as session:
        workspace = create_workspace(session, f"prop-{next(_slugs)}", "p")
        ctx = context_of(workspace)
    for start in range(0, len(events), batch):
        with transaction(engine) as session:
            ingest_events(session, ctx, events[start:start + batch], max_batch=None)
    return ctx.id


def _owner_of_strong(engine: Engine, ws: int) -> dict[tuple[str, str], int]:
    with transaction(engine) as session:
        rows = session.execute(select(Identity.type, Identity.value, Identity.customer_id)
                               .where(Identity.workspace_id == ws, Identity.type.in_(STRONG)))
        return {(t, v): c for t, v, c in rows}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(event_spec, min_size=1, max_size=25), batch=st.integers(1, 25))
def test_resolution_invariants_hold_for_any_stream_and_batching(clean_engine: Engine, specs: list, batch: int) -> None:
    events = _events(specs)
    ws = _ingest(clean_engine, events, batch)
    owners = _owner_of_strong(clean_engine, ws)
    with transaction(clean_engine) as session:
        live = set(session.scalars(select(Customer.id).where(Customer.workspace_id == ws,
                                                             Customer.merged_into_id.is_(None))))
        event_owner = dict(session.execute(select(Event.event_id, Event.customer_id)
                                           .where(Event.workspace_id == ws)).all())
        orders = session.scalar(select(func.count()).select_from(Order).where(Order.workspace_id == ws))
        rolled = session.scalar(select(func.coalesce(func.sum(CustomerRollup.orders_count), 0))
                                .where(CustomerRollup.workspace_id == ws))
        events_rolled = session.scalar(select(func.coalesce(func.sum(CustomerRollup.events_count), 0))
                                       .where(CustomerRollup.workspace_id == ws))
    # nothing lost, nothing doubled, everything on a live profile
    assert len(event_owner) == len(events)
    assert set(event_owner.values()) <= live
    assert set(owners.values()) <= live
    assert orders == rolled == sum(1 for s in specs if s[1])
    assert events_rolled == len(events)
    # every event's strong identities ended on the event's own customer
    for n, (idents, _, _) in enumerate(specs):
        for type_, value in idents:
            if type_ in STRONG:
                assert owners[(type_, f"{type_}-{value}")] == event_owner[f"p-{n}"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(st.tuples(st.lists(st.tuples(st.sampled_from(STRONG), st.integers(0, 5)), min_size=1,
                                         max_size=3), st.booleans(), st.integers(0, 400)), min_size=1, max_size=20),
       batch=st.integers(1, 20))
def test_strong_only_streams_partition_people_the_same_way_in_any_batching(clean_engine: Engine, specs: list,
                                                                          batch: int) -> None:
    events = _events(specs)
    whole = _owner_of_strong(clean_engine, _ingest(clean_engine, events, len(events)))
    split = _owner_of_strong(clean_engine, _ingest(clean_engine, events, batch))

    def partition(owner: dict[tuple[str, str], int]) -> set[frozenset[tuple[str, str]]]:
        groups: dict[int, set[tuple[str, str]]] = {}
        for key, customer in owner.items():
            groups.setdefault(customer, set()).add(key)
        return {frozenset(g) for g in groups.values()}

    assert partition(whole) == partition(split)
