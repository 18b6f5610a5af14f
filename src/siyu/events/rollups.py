"""Per-customer rollups: kept by deltas on ingest, recomputed from the records after refunds and merges."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.orm import Session

from siyu.db.bulk import Bulk
from siyu.events.catalog import INTERACTION_TYPES
from siyu.events.models import CustomerCategoryStat, CustomerRollup, Event, Order, OrderItem

CHUNK = 500


@dataclass
class RollupDelta:
    events_count: int = 0
    orders_count: int = 0
    total_spend_fen: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    last_interaction_at: datetime | None = None
    categories: dict[str, list[Any]] = field(default_factory=dict)  # category → [orders, qty, fen, first, last]

    def add_event(self, event_type: str, occurred_at: datetime) -> None:
        self.events_count += 1
        if event_type in INTERACTION_TYPES:
            self.last_interaction_at = _max(self.last_interaction_at, occurred_at)

    def add_order(self, total_fen: int, paid_at: datetime, items: Iterable[tuple[str, int, int]]) -> None:
        self.orders_count += 1
        self.total_spend_fen += total_fen
        self.first_order_at = _min(self.first_order_at, paid_at)
        self.last_order_at = _max(self.last_order_at, paid_at)
        seen: set[str] = set()
        for category, quantity, line_fen in items:
            stat = self.categories.setdefault(category, [0, 0, 0, paid_at, paid_at])
            if category not in seen:
                stat[0] += 1
                seen.add(category)
            stat[1] += quantity
            stat[2] += line_fen
            stat[3] = min(stat[3], paid_at)
            stat[4] = max(stat[4], paid_at)


def _min(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _max(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def apply_deltas(session: Session, workspace_id: int, deltas: dict[int, RollupDelta]) -> None:
    """Upsert the deltas: one driver call for the rollups, one for the category stats."""
    if not deltas:
        return
    bulk = Bulk(session)
    bulk.insert("customer_rollups", ("customer_id", "workspace_id", "events_count", "orders_count",
                                     "total_spend_fen", "refunded_fen", "first_order_at", "last_order_at",
                                     "last_interaction_at"),
                [(cid, workspace_id, d.events_count, d.orders_count, d.total_spend_fen, 0, bulk.ts(d.first_order_at),
                  bulk.ts(d.last_order_at), bulk.ts(d.last_interaction_at)) for cid, d in sorted(deltas.items())],
                conflict="(customer_id) DO UPDATE SET "
                         "events_count = customer_rollups.events_count + excluded.events_count, "
                         "orders_count = customer_rollups.orders_count + excluded.orders_count, "
                         "total_spend_fen = customer_rollups.total_spend_fen + excluded.total_spend_fen, "
                         f"first_order_at = {bulk.least('customer_rollups.first_order_at', 'excluded.first_order_at')}, "
                         f"last_order_at = {bulk.greatest('customer_rollups.last_order_at', 'excluded.last_order_at')}, "
                         "last_interaction_at = " + bulk.greatest("customer_rollups.last_interaction_at",
                                                                  "excluded.last_interaction_at"))
    category_rows = [(cid, category, workspace_id, st[0], st[1], st[2], bulk.ts(st[3]), bulk.ts(st[4]))
                     for cid, d in sorted(deltas.items()) for category, st in sorted(d.categories.items())]
    bulk.insert("customer_category_stats", ("customer_id", "category", "workspace_id", "orders_count", "quantity",
                                            "spend_fen", "first_order_at", "last_order_at"), category_rows,
                conflict="(customer_id, category) DO UPDATE SET "
                         "orders_count = customer_category_stats.orders_count + excluded.orders_count, "
                         "quantity = customer_category_stats.quantity + excluded.quantity, "
                         "spend_fen = customer_category_stats.spend_fen + excluded.spend_fen, "
                         "first_order_at = " + bulk.least("customer_category_stats.first_order_at",
                                                          "excluded.first_order_at") + ", "
                         "last_order_at = " + bulk.greatest("customer_category_stats.last_order_at",
                                                            "excluded.last_order_at"))


def recompute_rollups(session: Session, workspace_id: int, customer_ids: Iterable[int]) -> None:
    """Rebuild rollups of these customers from their events and orders (after refunds and merges)."""
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        session.execute(delete(CustomerRollup).where(CustomerRollup.customer_id.in_(chunk)))
        session.execute(delete(CustomerCategoryStat).where(CustomerCategoryStat.customer_id.in_(chunk)))
        deltas = _deltas_from_records(session, workspace_id, chunk)
        session.execute(insert(CustomerRollup.__table__), [_zero_row(workspace_id, cid) for cid in chunk])
        apply_deltas(session, workspace_id, deltas)
        _apply_refunded_totals(session, workspace_id, chunk)


def _zero_row(workspace_id: int, customer_id: int) -> dict[str, Any]:
    return {"customer_id": customer_id, "workspace_id": workspace_id, "events_count": 0, "orders_count": 0,
            "total_spend_fen": 0, "refunded_fen": 0}


def _deltas_from_records(session: Session, workspace_id: int, chunk: list[int]) -> dict[int, RollupDelta]:
    deltas: dict[int, RollupDelta] = defaultdict(RollupDelta)
    interaction = list(INTERACTION_TYPES)
    rows = session.execute(
        select(Event.customer_id, func.count(), func.max(Event.occurred_at).filter(Event.type.in_(interaction)))
        .where(Event.workspace_id == workspace_id, Event.customer_id.in_(chunk)).group_by(Event.customer_id))
    for customer_id, count, last_interaction in rows:
        delta = deltas[customer_id]
        delta.events_count = count
        delta.last_interaction_at = _as_utc(last_interaction)
    items: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for order_pk, category, quantity, price in session.execute(
            select(OrderItem.order_pk, OrderItem.category, OrderItem.quantity, OrderItem.unit_price_fen)
            .join(Order, Order.id == OrderItem.order_pk)
            .where(Order.workspace_id == workspace_id, Order.customer_id.in_(chunk), Order.status != "refunded")):
        items[order_pk].append((category, quantity, quantity * price))
    for order in session.execute(select(Order.id, Order.customer_id, Order.total_fen, Order.refunded_fen,
                                        Order.paid_at, Order.status)
                                 .where(Order.workspace_id == workspace_id, Order.customer_id.in_(chunk))):
        delta = deltas[order.customer_id]
        if order.status == "refunded":
            continue
        delta.add_order(order.total_fen - order.refunded_fen, order.paid_at, items.get(order.id, []))
    return deltas


def _apply_refunded_totals(session: Session, workspace_id: int, chunk: list[int]) -> None:
    from sqlalchemy import update

    totals = session.execute(select(Order.customer_id, func.sum(Order.refunded_fen))
                             .where(Order.workspace_id == workspace_id, Order.customer_id.in_(chunk),
                                    Order.refunded_fen > 0)
                             .group_by(Order.customer_id)).all()
    for customer_id, refunded in totals:
        session.execute(update(CustomerRollup).where(and_(CustomerRollup.customer_id == customer_id))
                        .values(refunded_fen=int(refunded)))


def _as_utc(value: datetime | None) -> datetime | None:
    from siyu.kit.clock import ensure_utc

    return ensure_utc(value) if value is not None else None


def rollup_of(session: Session, customer_id: int) -> CustomerRollup | None:
    return session.get(CustomerRollup, customer_id)


def category_stats_of(session: Session, customer_id: int) -> list[CustomerCategoryStat]:
    return list(session.scalars(select(CustomerCategoryStat).where(CustomerCategoryStat.customer_id == customer_id)
                                .order_by(CustomerCategoryStat.orders_count.desc())))


def rollups_for(session: Session, workspace_id: int, customer_ids: Iterable[int]) -> dict[int, CustomerRollup]:
    """Rollups of a page of customers in one query (customers without one are absent)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    rows = session.scalars(select(CustomerRollup).where(CustomerRollup.workspace_id == workspace_id,
                                                        CustomerRollup.customer_id.in_(ids)))
    return {rollup.customer_id: rollup for rollup in rows}
