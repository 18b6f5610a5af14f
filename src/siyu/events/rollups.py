"""Per-customer rollups: added to from the rows each batch writes, rebuilt from the records after refunds and merges."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.db.bulk import Bulk
from siyu.events.catalog import INTERACTION_TYPES
from siyu.events.models import CustomerCategoryStat, CustomerRollup

CHUNK = 500


# -- set-wise, from the stored records ----------------------------------------------------------
# Rollups are aggregates of a customer's events and orders, so the database computes them from the
# rows themselves: on ingest over the rows the batch just wrote (added to what is there), on a refund
# or merge over all of a customer's rows (rebuilt). One definition serves both, so the two can never
# disagree; a fully refunded order counts for nothing but its refunded amount.

_INTERACTIONS = ", ".join(f"'{name}'" for name in sorted(INTERACTION_TYPES))  # constants, not input
_KEPT = "o.status <> 'refunded'"


def add_records(bulk: Bulk, workspace_id: int, events: tuple[str, tuple[Any, ...]],
                orders: tuple[str, tuple[Any, ...]] | None) -> None:
    """Add the events and orders matched by these WHERE conditions (over `events` and `orders o`)
    to their customers' rollups and per-category stats."""
    events_where, events_params = events
    orders_where, orders_params = orders if orders is not None else ("false", ())
    bulk.execute(
        "INSERT INTO customer_rollups (customer_id, workspace_id, events_count, orders_count, total_spend_fen, "
        "refunded_fen, first_order_at, last_order_at, last_interaction_at) "
        "SELECT e.customer_id, ?, e.n, coalesce(t.n, 0), coalesce(t.spend, 0), coalesce(t.refunded, 0), "
        "t.first_at, t.last_at, e.last_interaction_at "
        "FROM (SELECT customer_id, count(*) AS n, "
        f"max(CASE WHEN type IN ({_INTERACTIONS}) THEN occurred_at END) AS last_interaction_at "
        f"FROM events WHERE {events_where} GROUP BY customer_id) AS e "
        f"LEFT JOIN (SELECT o.customer_id, count(CASE WHEN {_KEPT} THEN 1 END) AS n, "
        f"sum(CASE WHEN {_KEPT} THEN o.total_fen - o.refunded_fen ELSE 0 END) AS spend, "
        f"sum(o.refunded_fen) AS refunded, min(CASE WHEN {_KEPT} THEN o.paid_at END) AS first_at, "
        f"max(CASE WHEN {_KEPT} THEN o.paid_at END) AS last_at "
        f"FROM orders o WHERE {orders_where} GROUP BY o.customer_id) AS t ON t.customer_id = e.customer_id "
        "WHERE true "  # SQLite needs a WHERE to tell the upsert's ON CONFLICT from a join's ON
        "ON CONFLICT (customer_id) DO UPDATE SET "
        "events_count = customer_rollups.events_count + excluded.events_count, "
        "orders_count = customer_rollups.orders_count + excluded.orders_count, "
        "total_spend_fen = customer_rollups.total_spend_fen + excluded.total_spend_fen, "
        "refunded_fen = customer_rollups.refunded_fen + excluded.refunded_fen, "
        f"first_order_at = {bulk.least('customer_rollups.first_order_at', 'excluded.first_order_at')}, "
        f"last_order_at = {bulk.greatest('customer_rollups.last_order_at', 'excluded.last_order_at')}, "
        "last_interaction_at = "
        + bulk.greatest("customer_rollups.last_interaction_at", "excluded.last_interaction_at"),
        (workspace_id, *events_params, *orders_params))
    if orders is None:
        return
    bulk.execute(
        "INSERT INTO customer_category_stats (customer_id, category, workspace_id, orders_count, quantity, "
        "spend_fen, first_order_at, last_order_at) "
        "SELECT o.customer_id, i.category, ?, count(DISTINCT o.id), sum(i.quantity), "
        "sum(i.quantity * i.unit_price_fen), min(o.paid_at), max(o.paid_at) "
        f"FROM orders o JOIN order_items i ON i.order_pk = o.id WHERE {orders_where} AND {_KEPT} "
        "GROUP BY o.customer_id, i.category "
        "ON CONFLICT (customer_id, category) DO UPDATE SET "
        "orders_count = customer_category_stats.orders_count + excluded.orders_count, "
        "quantity = customer_category_stats.quantity + excluded.quantity, "
        "spend_fen = customer_category_stats.spend_fen + excluded.spend_fen, "
        "first_order_at = " + bulk.least("customer_category_stats.first_order_at", "excluded.first_order_at")
        + ", last_order_at = " + bulk.greatest("customer_category_stats.last_order_at", "excluded.last_order_at"),
        (workspace_id, *orders_params))


def widen_seen(bulk: Bulk, events: tuple[str, tuple[Any, ...]]) -> None:
    """Move customers' first_seen_at earlier and last_seen_at later to cover these events (a rollup
    kept on the profile). Only profiles whose span grows are written. Needs SQLite ≥ 3.33 (UPDATE FROM)."""
    events_where, params = events
    bulk.execute(
        f"UPDATE customers SET first_seen_at = {bulk.least('customers.first_seen_at', 's.first_at')}, "
        f"last_seen_at = {bulk.greatest('customers.last_seen_at', 's.last_at')} "
        "FROM (SELECT customer_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at "
        f"FROM events WHERE {events_where} GROUP BY customer_id) AS s "
        "WHERE customers.id = s.customer_id AND (customers.first_seen_at IS NULL OR customers.last_seen_at IS NULL "
        "OR customers.first_seen_at > s.first_at OR customers.last_seen_at < s.last_at)", params)


def recompute_rollups(session: Session, workspace_id: int, customer_ids: Iterable[int]) -> None:
    """Rebuild rollups of these customers from their events and orders (after refunds and merges)."""
    ids = sorted(set(customer_ids))
    bulk = Bulk(session)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        session.execute(delete(CustomerRollup).where(CustomerRollup.customer_id.in_(chunk)))
        session.execute(delete(CustomerCategoryStat).where(CustomerCategoryStat.customer_id.in_(chunk)))
        session.execute(insert(table_of(CustomerRollup)), [_zero_row(workspace_id, cid) for cid in chunk])
        events_where, params = bulk.any_of("customer_id", chunk)
        orders_where, _ = bulk.any_of("o.customer_id", chunk)
        add_records(bulk, workspace_id, (f"workspace_id = ? AND {events_where}", (workspace_id, *params)),
                    (f"o.workspace_id = ? AND {orders_where}", (workspace_id, *params)))


def _zero_row(workspace_id: int, customer_id: int) -> dict[str, Any]:
    return {"customer_id": customer_id, "workspace_id": workspace_id, "events_count": 0, "orders_count": 0,
            "total_spend_fen": 0, "refunded_fen": 0}


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
