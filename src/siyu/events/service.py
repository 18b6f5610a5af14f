"""Event ingestion: validate, de-duplicate, resolve identities, store events and orders, keep rollups.

`ingest_events` serves the API (one or a batch) and anything else holding raw events; the importer,
which validates in a second process, hands its batches to `ingest_validated`. Each item gets its own
result — accepted, duplicate or rejected with field and reason — and the accepted ones are written
together: nothing accepted is lost, nothing rejected is half-written.

Writes are set-wise: rows go to the driver in one call (COPY on PostgreSQL), and rollups and
first/last seen are computed by the database from the rows the batch just wrote (events.rollups).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, NamedTuple

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.customers.resolution import BatchResolver, KnownOwners
from siyu.db.base import table_of
from siyu.db.binary_copy import copy_rows
from siyu.db.bulk import Bulk
from siyu.events.errors import BatchTooLarge
from siyu.events.models import CustomEventType, Event, Order, OrderItem, Refund
from siyu.events.rollups import add_records, recompute_rollups, widen_seen
from siyu.events.validation import Rejection, ValidEvent, validate_event
from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.workspaces.service import WorkspaceContext

MAX_BATCH = 1000
CHUNK = 500
# Batches this large check PostgreSQL's statistics of the tables ingestion reads (see Bulk.refresh_statistics).
ANALYZE_BATCH = 1000
INGEST_TABLES = ("events", "identities", "customers", "orders", "order_items", "refunds", "customer_rollups",
                 "customer_category_stats")


@dataclass(slots=True)
class ItemResult:
    index: int
    id: str | None
    status: str  # accepted | duplicate | rejected
    customer_id: int | None = None
    field: str | None = None
    code: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "id": self.id, "status": self.status}
        if self.customer_id is not None:
            data["customer_id"] = self.customer_id
        if self.status == "rejected":
            data["error"] = {"field": self.field, "code": self.code, "message": self.message}
        return data


def _insert_fn(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def custom_event_type_names(session: Session, workspace_id: int) -> frozenset[str]:
    return frozenset(session.scalars(select(CustomEventType.name)
                                     .where(CustomEventType.workspace_id == workspace_id)))


def ingest_events(session: Session, ctx: WorkspaceContext, raw_events: list[Any], *,
                  max_batch: int | None = MAX_BATCH, actor: str = "api") -> list[ItemResult]:
    if max_batch is not None and len(raw_events) > max_batch:
        raise BatchTooLarge(f"a batch holds at most {max_batch} events, got {len(raw_events)}", field="events")
    received_at = clock.now()
    custom_types = custom_event_type_names(session, ctx.id) if ctx.strict_events else frozenset()
    outcomes = [validate_event(index, raw, ctx, custom_types, received_at) for index, raw in enumerate(raw_events)]
    return ingest_validated(session, ctx, outcomes, received_at, actor=actor)


@dataclass
class RollupsDue:
    """Rows an ingesting transaction stored whose customers' rollups are still to be brought up to date.

    An import stores several batches in one transaction and adds their rollups once, at its end
    (`add_due_rollups`): a customer seen in every batch then has their rollups and profile updated
    once, not once per batch (at 100,000 customers, most of them are in every batch)."""

    # Row ids as [first, last] runs: on SQLite a batch's ids are consecutive (the write lock is held), so
    # a transaction's rows are usually one run; sequences on PostgreSQL may leave gaps.
    event_ranges: list[list[int]] = field(default_factory=list)
    order_ranges: list[list[int]] = field(default_factory=list)
    recompute: set[int] = field(default_factory=set)

    def add(self, event_ids: list[int], order_pks: list[int], recompute: set[int]) -> None:
        _add_runs(self.event_ranges, event_ids)
        _add_runs(self.order_ranges, order_pks)
        self.recompute |= recompute


def add_due_rollups(session: Session, workspace_id: int, due: RollupsDue) -> None:
    """Add the stored rows to their customers' rollups and first/last seen, then rebuild those of
    customers a refund or merge touched from their records."""
    bulk = Bulk(session)
    if due.event_ranges:
        rows = bulk.written_ranges("id", due.event_ranges)
        orders = bulk.written_ranges("o.id", due.order_ranges) if due.order_ranges else None
        add_records(bulk, workspace_id, rows, orders)
        widen_seen(bulk, rows)
    if due.recompute:
        recompute_rollups(session, workspace_id, due.recompute)


def _add_runs(runs: list[list[int]], ids: list[int]) -> None:
    """Extend [first, last] runs of consecutive values with ascending ids."""
    for value in ids:
        if runs and runs[-1][1] + 1 == value:
            runs[-1][1] = value
        else:
            runs.append([value, value])


def ingest_validated(session: Session, ctx: WorkspaceContext, outcomes: list[ValidEvent | Rejection],
                     received_at: datetime, *, actor: str, known: KnownOwners | None = None,
                     rollups_due: RollupsDue | None = None) -> list[ItemResult]:
    """Store events validated beforehand (the importer validates in another process): one result per
    outcome, in order. `received_at` is the time they were validated against; `known` carries what
    earlier batches of an import learnt about identities. With `rollups_due` the rollups of what is
    stored are left to the caller, to add before its transaction commits (`add_due_rollups`)."""
    _serialise_ingestion(session, ctx.id)
    if known is not None:
        known.refresh(session)
    results: list[ItemResult | None] = [None] * len(outcomes)
    valid: list[ValidEvent] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Rejection):
            results[index] = ItemResult(outcome.index, outcome.event_id, "rejected", field=outcome.field,
                                        code=outcome.code, message=outcome.message)
        else:
            outcome.index = index
            valid.append(outcome)
    fresh = _drop_duplicates(session, ctx, valid, results)
    if fresh:
        _store(session, ctx, fresh, received_at, actor, known, rollups_due)
        for event in fresh:
            results[event.index] = ItemResult(event.index, event.event_id, "accepted", event.customer_ref)
        if known is not None:
            known.settle(session)
    return [r for r in results if r is not None]


def _serialise_ingestion(session: Session, workspace_id: int) -> None:
    """One ingesting transaction per workspace at a time on PostgreSQL (SQLite has one writer anyway):
    identity resolution and duplicate checks then see every committed batch, so two batches can
    never create the same person twice or count the same event twice."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7411, :ws)"), {"ws": workspace_id})


def _drop_duplicates(session: Session, ctx: WorkspaceContext, events: list[ValidEvent],
                     results: list[ItemResult | None]) -> list[ValidEvent]:
    seen_in_batch: set[str] = set()
    stored = _existing(session, "events", "event_id", ctx.id, [e.event_id for e in events])
    order_ids = [e.order.order_id for e in events if e.order is not None]
    stored_orders = _existing(session, "orders", "order_id", ctx.id, order_ids) if order_ids else {}
    seen_orders: set[str] = set()
    fresh = []
    for event in events:
        if event.event_id in seen_in_batch:
            results[event.index] = ItemResult(event.index, event.event_id, "rejected", field="id",
                                              code="duplicate_in_batch",
                                              message="this id appears earlier in the same batch")
            continue
        seen_in_batch.add(event.event_id)
        if event.event_id in stored:
            results[event.index] = ItemResult(event.index, event.event_id, "duplicate",
                                              customer_id=stored[event.event_id])
            continue
        if event.order is not None:
            if event.order.order_id in stored_orders or event.order.order_id in seen_orders:
                results[event.index] = ItemResult(event.index, event.event_id, "rejected",
                                                  field="properties.order_id", code="duplicate_order",
                                                  message="this order was already recorded by another event")
                continue
            seen_orders.add(event.order.order_id)
        fresh.append(event)
    return fresh


def _existing(session: Session, table: str, column: str, workspace_id: int, keys: list[str]) -> dict[str, Any]:
    """Which of these keys (event ids, order ids) the workspace already holds, and for which customer."""
    rows = Bulk(session).select_in(f"SELECT {column}, customer_id FROM {table} WHERE workspace_id = ? AND {column} "
                                   "{keys}", (workspace_id,), sorted(set(keys)))
    return {key: customer_id for key, customer_id in rows}


def _store(session: Session, ctx: WorkspaceContext, events: list[ValidEvent], received_at: Any, actor: str,
           known: KnownOwners | None, rollups_due: RollupsDue | None) -> None:
    if len(events) >= ANALYZE_BATCH:
        Bulk(session).refresh_statistics(INGEST_TABLES)
    resolver = BatchResolver(session, ctx, actor=f"ingest:{actor}", known=known)
    identity_lists = [e.identities for e in events]
    resolver.preload(identity_lists)
    refs = resolver.resolve_all(identity_lists, [e.occurred_at for e in events])
    for event, ref in zip(events, refs, strict=True):
        event.customer_ref = ref
        if event.traits:
            resolver.add_traits(ref, [(event.occurred_at, event.traits)])
    real = resolver.flush()
    final_id = resolver.final_id
    for event in events:
        if event.customer_ref < 0 or resolver.alias:  # a stored profile nobody merged stays as it is
            event.customer_ref = final_id(event.customer_ref, real)
    # Rows in index order (each customer's events by time; stable, so ties keep their order): the
    # inserts then walk the customer indexes of events, orders and items instead of jumping around.
    events = sorted(events, key=_by_customer_and_time)
    bulk = Bulk(session)
    # Each time converted once, for every row it lands in (or already by the importer's reading process).
    ts = bulk.ts
    stamps = ([ts(e.occurred_at) for e in events] if bulk.postgres
              else [e.sqlite_occurred_at or ts(e.occurred_at) for e in events])
    row_ids = _insert_events(bulk, ctx, events, stamps, received_at)
    order_pks = _insert_orders(bulk, ctx, events, stamps)
    needs_recompute = _apply_waiting_refunds(session, ctx, [e.order.order_id for e in events if e.order])
    needs_recompute |= _store_refunds(session, ctx, events)
    needs_recompute |= {survivor for survivor, _ in resolver.merges}  # a refund or merge touched what they had
    due = rollups_due if rollups_due is not None else RollupsDue()
    due.add(row_ids, order_pks, needs_recompute)
    if rollups_due is None:
        add_due_rollups(session, ctx.id, due)
    _publish_ingested(session, ctx, events, row_ids)


_by_customer_and_time = attrgetter("customer_ref", "occurred_at")


def _publish_ingested(session: Session, ctx: WorkspaceContext, events: list[ValidEvent], row_ids: list[int]) -> None:
    """One `events_ingested` for the batch, and one domain event per event type in it (`order_paid`,
    `check_in`, …) carrying only that type's rows: a subscriber handles a batch, never one job per event."""
    refs = list(map(_customer_ref, events))
    types = list(map(_event_type, events))
    event_types = sorted(set(types))
    publish(session, "events_ingested", {
        "workspace_id": ctx.id, "event_ids": row_ids, "customer_ids": sorted(set(refs)), "types": event_types},
        workspace_id=ctx.id)
    for event_type in event_types:  # a handful of types: one pass over the batch each
        of_type = [index for index, type_ in enumerate(types) if type_ == event_type]
        ids = [row_ids[index] for index in of_type]
        publish(session, event_type, {"workspace_id": ctx.id, "event_ids": ids,
                                      "customer_ids": sorted({refs[index] for index in of_type})},
                workspace_id=ctx.id, key=f"{ctx.id}:{ids[0]}")


_customer_ref = attrgetter("customer_ref")
_event_type = attrgetter("type")


def _insert_events(bulk: Bulk, ctx: WorkspaceContext, events: list[ValidEvent], stamps: list[Any],
                   received_at: Any) -> list[int]:
    ids = bulk.allocate_ids("events", len(events))
    received = bulk.ts(received_at)
    as_json = bulk.json_of_text
    copy_rows(bulk.session, "events", ("id", "workspace_id", "event_id", "type", "customer_id", "occurred_at",
                                       "received_at", "properties"),
              [(row_id, ctx.id, e.event_id, e.type, e.customer_ref, at, received, as_json(e.properties_json))
               for row_id, e, at in zip(ids, events, stamps, strict=True)])
    return ids


ORDER_COLUMNS = ("id", "workspace_id", "order_id", "customer_id", "channel", "currency", "total_fen", "discount_fen",
                 "refunded_fen", "status", "coupon_code", "paid_at", "event_id")
ITEM_COLUMNS = ("order_pk", "workspace_id", "customer_id", "sku", "name", "category", "quantity", "unit_price_fen",
                "paid_at")


def _insert_orders(bulk: Bulk, ctx: WorkspaceContext, events: list[ValidEvent], stamps: list[Any]) -> list[int]:
    """The orders of `order_paid` events and their items; returns the orders' primary keys."""
    orders = [(e, e.order, at) for e, at in zip(events, stamps, strict=True) if e.order is not None]
    if not orders:
        return []
    order_pks = bulk.allocate_ids("orders", len(orders))
    copy_rows(bulk.session, "orders", ORDER_COLUMNS,
              [(pk, ctx.id, o.order_id, e.customer_ref, o.channel, o.currency, o.total_fen, o.discount_fen, 0,
                "paid", o.coupon_code, at, e.event_id) for pk, (e, o, at) in zip(order_pks, orders, strict=True)])
    copy_rows(bulk.session, "order_items", ITEM_COLUMNS,
              [(pk, ctx.id, e.customer_ref, item.sku, item.name, item.category, item.quantity, item.unit_price_fen, at)
               for pk, (e, o, at) in zip(order_pks, orders, strict=True) for item in o.items])
    return order_pks


def _store_refunds(session: Session, ctx: WorkspaceContext, events: list[ValidEvent]) -> set[int]:
    refunds = [(e, e.refund) for e in events if e.refund is not None]
    if not refunds:
        return set()
    rows = [{"workspace_id": ctx.id, "refund_id": r.refund_id, "order_id": r.order_id, "amount_fen": r.amount_fen,
             "refunded_at": e.occurred_at, "applied": False} for e, r in refunds]
    session.execute(_insert_fn(session)(table_of(Refund)).on_conflict_do_nothing(), rows)
    return _apply_waiting_refunds(session, ctx, [r.order_id for _, r in refunds])


def _apply_waiting_refunds(session: Session, ctx: WorkspaceContext, order_ids: list[str]) -> set[int]:
    """Apply refunds whose order is known; a refund that arrived first waits for its order."""
    bulk = Bulk(session)
    waiting_ids = [row[0] for row in bulk.select_in("SELECT id FROM refunds WHERE workspace_id = ? AND applied = ? "
                                                    "AND order_id {keys}", (ctx.id, bulk.flag(False)),
                                                    sorted(set(order_ids)))]
    if not waiting_ids:
        return set()
    waiting = list(session.scalars(select(Refund).where(Refund.id.in_(waiting_ids)).order_by(Refund.id)))
    touched: set[int] = set()
    for refund in waiting:
        order = session.scalar(select(Order).where(Order.workspace_id == ctx.id, Order.order_id == refund.order_id))
        if order is None:
            continue
        order.refunded_fen = min(order.total_fen, order.refunded_fen + refund.amount_fen)
        order.status = "refunded" if order.refunded_fen >= order.total_fen else "partially_refunded"
        refund.applied = True
        touched.add(order.customer_id)
    session.flush()
    return touched


# -- records of one customer --------------------------------------------------------------------

def reassign_customer_records(session: Session, workspace_id: int, from_id: int, to_id: int) -> None:
    """Move events, orders and order items of an absorbed profile to its survivor; rebuild rollups."""
    for model in (Event, Order, OrderItem):
        session.execute(update(model).where(model.workspace_id == workspace_id, model.customer_id == from_id)
                        .values(customer_id=to_id))
    recompute_rollups(session, workspace_id, [from_id, to_id])
    from siyu.events.models import CustomerCategoryStat, CustomerRollup

    session.execute(table_of(CustomerRollup).delete().where(CustomerRollup.customer_id == from_id))
    session.execute(table_of(CustomerCategoryStat).delete().where(CustomerCategoryStat.customer_id == from_id))


def timeline(session: Session, workspace_id: int, customer_id: int, *, limit: int = 50,
             before_id: int | None = None) -> list[Event]:
    stmt = (select(Event).where(Event.workspace_id == workspace_id, Event.customer_id == customer_id)
            .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit))
    if before_id is not None:
        anchor = session.get(Event, before_id)
        if anchor is not None:
            stmt = stmt.where((Event.occurred_at < anchor.occurred_at)
                              | ((Event.occurred_at == anchor.occurred_at) & (Event.id < anchor.id)))
    return list(session.scalars(stmt))


def orders_of(session: Session, workspace_id: int, customer_id: int, limit: int = 50) -> list[Order]:
    return list(session.scalars(select(Order).where(Order.workspace_id == workspace_id,
                                                    Order.customer_id == customer_id)
                                .order_by(Order.paid_at.desc()).limit(limit)))


def count_events(session: Session, workspace_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Event).where(Event.workspace_id == workspace_id)) or 0)


@dataclass(frozen=True)
class OrderTotals:
    count: int
    revenue_fen: int  # paid minus refunded


def order_totals(session: Session, workspace_id: int) -> OrderTotals:
    revenue = func.coalesce(func.sum(Order.total_fen - Order.refunded_fen), 0)
    count, total = session.execute(select(func.count(), revenue).where(Order.workspace_id == workspace_id)).one()
    return OrderTotals(int(count), int(total))


def register_event_type(session: Session, workspace_id: int, name: str, description: str = "",
                        required_properties: list[str] | None = None) -> CustomEventType:
    import re

    from siyu.events.catalog import STANDARD_TYPES
    from siyu.kit.errors import Conflict, ValidationFailed

    if not re.match(r"^[a-z][a-z0-9_]{1,99}$", name):
        raise ValidationFailed("event type names are lowercase letters, digits and underscores", field="name")
    if name in STANDARD_TYPES:
        raise Conflict(f"{name} is a standard event type", field="name")
    if name in custom_event_type_names(session, workspace_id):
        raise Conflict(f"event type {name} already exists", field="name")
    item = CustomEventType(workspace_id=workspace_id, name=name, description=description,
                           required_properties=required_properties or [], created_at=clock.now())
    session.add(item)
    session.flush()
    return item


# -- reads and system events for the domains that react to events (loyalty, coupons) ------------

def event_ids_after(session: Session, workspace_id: int, types: frozenset[str], after_id: int, limit: int) -> list[int]:
    """Row ids of the workspace's stored events of these types after `after_id`, in id order, at most
    `limit` (a replay walks them page by page).

    Read along the primary key: `workspace_id + 0` keeps both databases off the (workspace, type,
    time) index, which would make every page read and sort all the workspace's events of the types."""
    rows = session.execute(select(Event.id).where((Event.workspace_id + 0) == workspace_id,
                                                  Event.type.in_(sorted(types)), Event.id > after_id)
                           .order_by(Event.id).limit(limit))
    return [row_id for (row_id,) in rows]


def events_by_ids(session: Session, workspace_id: int, ids: list[int]) -> list[Event]:
    """Stored events by row id (as published in `events_ingested`), oldest first."""
    found: list[Event] = []
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK * 2):
        found.extend(session.scalars(select(Event).where(Event.workspace_id == workspace_id,
                                                         Event.id.in_(unique[start:start + CHUNK * 2]))))
    return sorted(found, key=lambda e: (e.occurred_at, e.id))


def orders_by_order_ids(session: Session, workspace_id: int, order_ids: list[str]) -> dict[str, Order]:
    """Orders by the shop's order id, with their refunded amount and status as of now."""
    found: dict[str, Order] = {}
    unique = sorted(set(order_ids))
    for start in range(0, len(unique), CHUNK * 2):
        found.update({o.order_id: o for o in session.scalars(
            select(Order).where(Order.workspace_id == workspace_id,
                                Order.order_id.in_(unique[start:start + CHUNK * 2])))})
    return found


def get_order(session: Session, workspace_id: int, order_id: str) -> Order | None:
    return session.scalar(select(Order).where(Order.workspace_id == workspace_id, Order.order_id == order_id))


@dataclass(frozen=True)
class SystemEvent:
    """An event siyu itself emits (tier_changed, ...). `event_id` is stable, derived from its cause."""

    event_id: str
    type: str
    customer_id: int
    occurred_at: Any
    properties: dict[str, Any]


def record_system_events(session: Session, ctx: WorkspaceContext, events: list[SystemEvent]) -> list[int]:
    """Store system events on the customers' timelines; recording the same id again is a no-op.

    Rollups count them like any event. They are not re-published as `events_ingested` (no reaction
    loops): the caller publishes its own domain event. Returns the row ids of the new events.
    """
    if not events:
        return []
    received_at = clock.now()
    bulk = Bulk(session)
    if bulk.postgres:
        ids = sorted(_insert_system_events_unnested(bulk, ctx, events, received_at))
    else:
        stmt = (_insert_fn(session)(Event).on_conflict_do_nothing(index_elements=["workspace_id", "event_id"])
                .returning(Event.id))
        ids = sorted(session.scalars(stmt, [
            {"workspace_id": ctx.id, "event_id": e.event_id, "type": e.type, "customer_id": e.customer_id,
             "occurred_at": e.occurred_at, "received_at": received_at, "properties": e.properties}
            for e in events]))
    for start in range(0, len(ids), CHUNK):
        add_records(bulk, ctx.id, bulk.any_of("id", ids[start:start + CHUNK]), None)
    return ids


def _insert_system_events_unnested(bulk: Bulk, ctx: WorkspaceContext, events: list[SystemEvent],
                                   received_at: datetime) -> list[int]:
    """One statement over arrays bound in binary (SQLAlchemy's many-row insert renders a statement
    as long as the batch, which the server parses anew every time)."""
    rows = bulk.execute(
        "INSERT INTO events (workspace_id, event_id, type, customer_id, occurred_at, received_at, properties) "
        "SELECT ?, u.event_id, u.type, u.customer_id, u.occurred_at, ?, u.properties::jsonb "
        "FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::timestamptz[], %b::text[]) "
        "AS u(event_id, type, customer_id, occurred_at, properties) "
        "ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING id",
        (ctx.id, received_at, [e.event_id for e in events], [e.type for e in events],
         [e.customer_id for e in events], [bulk.ts(e.occurred_at) for e in events],
         [orjson.dumps(e.properties).decode() for e in events]))
    return [row[0] for row in rows]


# -- reads for journeys (wait-until-event steps, replenishment predictions) ------------------------

def customer_events_since(session: Session, workspace_id: int, customer_ids: list[int], types: list[str],
                          since: Any) -> list[Event]:
    """Events of these types of these customers that occurred at or after `since`, oldest first."""
    found: list[Event] = []
    unique = sorted(set(customer_ids))
    for start in range(0, len(unique), CHUNK * 2):
        found.extend(session.scalars(select(Event).where(
            Event.workspace_id == workspace_id, Event.customer_id.in_(unique[start:start + CHUNK * 2]),
            Event.type.in_(types), Event.occurred_at >= since)))
    return sorted(found, key=lambda e: (e.occurred_at, e.id))


def purchased_items(session: Session, workspace_id: int, customer_ids: list[int], *, category: str | None = None,
                    sku: str | None = None) -> list[tuple[int, str, str, int, Any]]:
    """(customer_id, sku, category, quantity, paid_at) of the items these customers bought — in a
    category (or any category under it) or of a SKU — leaving out orders refunded in full; oldest first."""
    found: list[tuple[int, str, str, int, Any]] = []
    unique = sorted(set(customer_ids))
    for start in range(0, len(unique), CHUNK * 2):
        stmt = (select(OrderItem.customer_id, OrderItem.sku, OrderItem.category, OrderItem.quantity,
                       OrderItem.paid_at)
                .join(Order, Order.id == OrderItem.order_pk)
                .where(OrderItem.workspace_id == workspace_id,
                       OrderItem.customer_id.in_(unique[start:start + CHUNK * 2]), Order.status != "refunded"))
        if category is not None:
            stmt = stmt.where((OrderItem.category == category) | OrderItem.category.startswith(f"{category}/"))
        if sku is not None:
            stmt = stmt.where(OrderItem.sku == sku)
        found.extend((int(c), s, cat, int(q), p) for c, s, cat, q, p in session.execute(stmt))
    return sorted(found, key=lambda row: (row[4], row[0]))


KEY_CHUNK = 5000  # keys per query of the batch reads below (SQLite allows 32,766 parameters)


class EventRecord(NamedTuple):
    """An event as a plain row: for batch paths that read thousands per job (no ORM objects)."""

    id: int
    event_id: str
    type: str
    customer_id: int
    occurred_at: datetime
    properties: dict[str, Any]


def event_records(session: Session, workspace_id: int, ids: list[int], types: frozenset[str]) -> list[EventRecord]:
    """Stored events of these types by row id (as published), oldest first, as plain rows.

    Read at the driver (a replay reads thousands per job; SQLAlchemy's per-row processing and json
    cost more than the lookup). The rows are found by primary key alone, then kept when they belong
    to the workspace and types: with the workspace and type in the query, SQLite prefers the
    (workspace, type, time) index and reads every event of that type for each chunk of ids."""
    bulk = Bulk(session)
    rows = bulk.select_in(f"SELECT id, event_id, type, customer_id, occurred_at, {bulk.json_text('properties')}, "
                          "workspace_id FROM events WHERE id {keys}", (), sorted(set(ids)))
    read_ts, loads = bulk.read_ts, orjson.loads
    found = [EventRecord(row_id, event_id, event_type, customer_id, read_ts(at), loads(props) if props else {})
             for row_id, event_id, event_type, customer_id, at, props, ws in rows
             if ws == workspace_id and event_type in types]
    return sorted(found, key=_by_time_and_id)


_by_time_and_id = attrgetter("occurred_at", "id")


class OrderRecord(NamedTuple):
    order_id: str
    customer_id: int
    total_fen: int
    refunded_fen: int
    status: str
    paid_at: datetime


def order_records(session: Session, workspace_id: int, order_ids: list[str]) -> dict[str, OrderRecord]:
    """Orders by the shop's order id as plain rows, with their refunded amount and status as of now."""
    bulk = Bulk(session)
    rows = bulk.select_in("SELECT order_id, customer_id, total_fen, refunded_fen, status, paid_at FROM orders "
                          "WHERE workspace_id = ? AND order_id {keys}", (workspace_id,), sorted(set(order_ids)))
    read_ts = bulk.read_ts
    return {row[0]: OrderRecord(row[0], row[1], row[2], row[3], row[4], read_ts(row[5])) for row in rows}
