"""Consumption cycles (复购周期) and replenishment predictions.

A SKU or a category carries how many days one unit lasts (奶粉 30 days a can, 面膜 14 days a box);
the most specific one wins: SKU, then the category, then each parent category (母婴/奶粉 → 母婴).

A customer's run-out date:
- from the catalogue: walking their orders oldest first, each order's units × days per unit extend
  the stock, starting from the later of the purchase and the previous run-out (stockpiling counts);
- learned, once they have three or more orders: their own days per unit — the time between first
  and last order over the units bought before the last order — times the units of the last order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.journeys import actions
from siyu.journeys.errors import CycleNotFound
from siyu.journeys.models import ConsumptionCycle
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed

LEARN_AFTER_ORDERS = 3
MAX_CYCLE_DAYS = 3650


@dataclass(frozen=True)
class CycleBook:
    by_sku: dict[str, int]
    by_category: dict[str, int]

    def days_per_unit(self, sku: str, category: str) -> int | None:
        if sku in self.by_sku:
            return self.by_sku[sku]
        parts = category.strip("/").split("/")
        for depth in range(len(parts), 0, -1):
            found = self.by_category.get("/".join(parts[:depth]))
            if found is not None:
                return found
        return None


def load_cycles(session: Session, workspace_id: int) -> CycleBook:
    rows = list(session.execute(select(ConsumptionCycle.scope, ConsumptionCycle.key, ConsumptionCycle.cycle_days)
                                .where(ConsumptionCycle.workspace_id == workspace_id)))
    return CycleBook({k: d for s, k, d in rows if s == "sku"}, {k: d for s, k, d in rows if s == "category"})


def list_cycles(session: Session, workspace_id: int) -> list[ConsumptionCycle]:
    return list(session.scalars(select(ConsumptionCycle).where(ConsumptionCycle.workspace_id == workspace_id)
                                .order_by(ConsumptionCycle.scope, ConsumptionCycle.key)))


def set_cycle(session: Session, workspace_id: int, *, cycle_days: int, sku: str | None = None,
              category: str | None = None) -> ConsumptionCycle:
    """Set the days one unit of a SKU (or of anything in a category) lasts."""
    if (sku is None) == (category is None):
        raise ValidationFailed("a cycle is for exactly one of sku or category", field="sku")
    key = (sku if sku is not None else str(category).strip("/")).strip()
    if not key or len(key) > 100:
        raise ValidationFailed("the sku or category must be 1-100 characters", field="sku" if sku else "category")
    if isinstance(cycle_days, bool) or not 1 <= cycle_days <= MAX_CYCLE_DAYS:
        raise ValidationFailed(f"cycle_days must be 1 to {MAX_CYCLE_DAYS}", field="cycle_days")
    scope = "sku" if sku is not None else "category"
    cycle = session.scalar(select(ConsumptionCycle).where(ConsumptionCycle.workspace_id == workspace_id,
                                                          ConsumptionCycle.scope == scope, ConsumptionCycle.key == key))
    if cycle is None:
        cycle = ConsumptionCycle(workspace_id=workspace_id, scope=scope, key=key, cycle_days=cycle_days,
                                 updated_at=clock.now())
        session.add(cycle)
    else:
        cycle.cycle_days, cycle.updated_at = cycle_days, clock.now()
    session.flush()
    return cycle


def delete_cycle(session: Session, workspace_id: int, cycle_id: int) -> None:
    result = session.execute(delete(ConsumptionCycle).where(ConsumptionCycle.workspace_id == workspace_id,
                                                            ConsumptionCycle.id == cycle_id))
    if not getattr(result, "rowcount", 0):
        raise CycleNotFound(f"no consumption cycle {cycle_id}", field="cycle_id")


def seed_demo_cycles(session: Session, workspace_id: int) -> int:
    """The demo catalogue's cycles: one per category (SKUs inherit them). Returns how many were set."""
    from siyu.demo.catalog import CATEGORY_CYCLE_DAYS

    for category, days in CATEGORY_CYCLE_DAYS.items():
        set_cycle(session, workspace_id, category=category, cycle_days=days)
    return len(CATEGORY_CYCLE_DAYS)


# -- predictions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    customer_id: int
    orders: int
    last_purchase_at: datetime
    last_quantity: int
    days_per_unit: float
    source: str  # learned | catalogue
    run_out_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "orders": self.orders,
                "last_purchase_at": self.last_purchase_at.isoformat(), "last_quantity": self.last_quantity,
                "days_per_unit": round(self.days_per_unit, 2), "source": self.source,
                "run_out_at": self.run_out_at.isoformat()}


def predict(session: Session, workspace_id: int, customer_ids: Sequence[int], *, category: str | None = None,
            sku: str | None = None, book: CycleBook | None = None) -> dict[int, Prediction]:
    """When each customer runs out of what they bought in a category (or of a SKU)."""
    book = book or load_cycles(session, workspace_id)
    orders: dict[int, dict[datetime, list[actions.Purchase]]] = defaultdict(lambda: defaultdict(list))
    for item in actions.purchases(session, workspace_id, customer_ids, category=category, sku=sku):
        orders[item.customer_id][item.paid_at].append(item)
    found = {}
    for customer_id, by_time in orders.items():
        prediction = predict_one(customer_id, sorted(by_time.items()), book)
        if prediction is not None:
            found[customer_id] = prediction
    return found


def predict_one(customer_id: int, orders: list[tuple[datetime, list[actions.Purchase]]], book: CycleBook
                ) -> Prediction | None:
    last_at, last_items = orders[-1]
    last_units = sum(i.quantity for i in last_items)
    if len(orders) >= LEARN_AFTER_ORDERS:
        units_before = sum(i.quantity for _, items in orders[:-1] for i in items)
        span = (last_at - orders[0][0]).total_seconds() / 86400
        if span > 0 and units_before > 0:
            per_unit = span / units_before
            return Prediction(customer_id, len(orders), last_at, last_units, per_unit, "learned",
                              last_at + timedelta(days=per_unit * last_units))
    run_out: datetime | None = None
    for paid_at, items in orders:
        days = sum(i.quantity * d for i in items if (d := book.days_per_unit(i.sku, i.category)) is not None)
        if days:
            run_out = max(run_out, paid_at) + timedelta(days=days) if run_out else paid_at + timedelta(days=days)
    if run_out is None:
        return None
    cycle = book.days_per_unit(last_items[0].sku, last_items[0].category) or 0
    return Prediction(customer_id, len(orders), last_at, last_units, float(cycle), "catalogue", run_out)


def rebought(session: Session, runs: Sequence[Any]) -> set[int]:
    """Ids of replenishment runs whose customer bought again after the purchase they were based on."""
    gone: set[int] = set()
    by_target: dict[tuple[int, str | None, str | None], list[Any]] = defaultdict(list)
    for run in runs:
        basis = run.state["replenish"]
        by_target[(run.workspace_id, basis.get("category"), basis.get("sku"))].append(run)
    for (workspace_id, category, sku), group in by_target.items():
        latest: dict[int, datetime] = {}
        for item in actions.purchases(session, workspace_id, [r.customer_id for r in group], category=category,
                                      sku=sku):
            latest[item.customer_id] = max(latest.get(item.customer_id, item.paid_at), item.paid_at)
        for run in group:
            bought = latest.get(run.customer_id)
            if bought is not None and bought > datetime.fromisoformat(run.state["replenish"]["basis_at"]):
                gone.add(run.id)
    return gone
