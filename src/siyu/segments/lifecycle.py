"""Lifecycle stage of every customer: 潜客 prospect, 新客 new, 活跃 active, 沉睡 sleeping, 流失 lost,
回流 returned.

A customer's expected cycle is the average gap between their orders ((last − first) / (orders − 1)),
or the workspace's default cycle with fewer than two orders, held between min and max cycle days.
At `now`, in this order:

- no (unrefunded) order                           → prospect
- idle (days since last order) ≥ cycle × lost_factor     → lost
- idle ≥ cycle × sleeping_factor                  → sleeping
- was sleeping or lost, and ordered again         → returned (and stays returned for returned_days)
- first order within new_days                     → new
- otherwise                                       → active

The stage is computed in SQL for every customer (the periodic tick) or for a few (after their
events). The first classification of a customer is silent; every later change is a
`lifecycle_changed` event (`lifecycle:<customer>:<version>`) and a domain event of that name.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import ColumnElement, Float, and_, bindparam, case, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from siyu.db.base import UTCDateTime, table_of
from siyu.events.models import CustomerRollup
from siyu.events.service import SystemEvent, record_system_events
from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.rules.compiler import customers
from siyu.rules.sql import epoch_seconds
from siyu.segments.errors import InvalidLayeringSettings
from siyu.segments.models import CustomerLifecycle
from siyu.workspaces.service import WorkspaceContext, get_workspace, update_workspace_settings

STAGE_LABELS = {"prospect": "潜客", "new": "新客", "active": "活跃", "sleeping": "沉睡", "lost": "流失",
                "returned": "回流"}
DAY = 86400.0
PUBLISH_CHUNK = 1000
rollups = table_of(CustomerRollup)
lifecycle = table_of(CustomerLifecycle)


class LifecycleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_days: int = Field(30, ge=1, le=365)
    default_cycle_days: int = Field(60, ge=1, le=730)
    min_cycle_days: int = Field(7, ge=1, le=365)
    max_cycle_days: int = Field(180, ge=1, le=1095)
    sleeping_factor: float = Field(2.0, gt=0, le=20)
    lost_factor: float = Field(4.0, gt=0, le=40)
    returned_days: int = Field(30, ge=1, le=365)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleSettings:
        if self.lost_factor <= self.sleeping_factor:
            raise ValueError("lost_factor must be larger than sleeping_factor")
        if self.min_cycle_days > self.max_cycle_days:
            raise ValueError("min_cycle_days must not exceed max_cycle_days")
        return self


def lifecycle_settings(ctx: WorkspaceContext) -> LifecycleSettings:
    return LifecycleSettings(**(ctx.settings.get("lifecycle") or {}))


def save_lifecycle_settings(session: Session, ctx: WorkspaceContext, values: dict[str, Any]) -> LifecycleSettings:
    try:
        settings = LifecycleSettings(**{**(ctx.settings.get("lifecycle") or {}), **values})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidLayeringSettings(str(first["msg"]).removeprefix("Value error, "), field=field) from exc
    update_workspace_settings(session, get_workspace(session, ctx.id), {"lifecycle": settings.model_dump()})
    return settings


def stage_expression(settings: LifecycleSettings, dialect: str) -> ColumnElement[str]:
    """The stage of a row of customers ⟕ rollups ⟕ customer_lifecycle, at the bound `lc_now*` times."""
    count = func.coalesce(rollups.c.orders_count, 0)
    last_s = epoch_seconds(dialect, rollups.c.last_order_at)
    first_s = epoch_seconds(dialect, rollups.c.first_order_at)
    average_gap = case((count >= 2, (last_s - first_s) / (count - 1)), else_=settings.default_cycle_days * DAY)
    low, high = settings.min_cycle_days * DAY, settings.max_cycle_days * DAY
    cycle = case((average_gap < low, low), (average_gap > high, high), else_=average_gap)
    idle = bindparam("lc_now_s", type_=Float()) - last_s
    returned_since = bindparam("lc_returned_since", type_=UTCDateTime())
    return case(
        (count == 0, "prospect"),
        (idle >= cycle * settings.lost_factor, "lost"),
        (idle >= cycle * settings.sleeping_factor, "sleeping"),
        (lifecycle.c.stage.in_(("sleeping", "lost")), "returned"),
        (and_(lifecycle.c.stage == "returned", lifecycle.c.since >= returned_since), "returned"),
        (rollups.c.first_order_at >= bindparam("lc_new_since", type_=UTCDateTime()), "new"),
        else_="active",
    )


_statements: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def _stage_statements(settings: LifecycleSettings, dialect: str, workspace_id: int, scoped: bool) -> tuple[Any, Any]:
    """(insert the first stage of unstaged customers, select the customers whose stage changed) — built
    once per settings; times and customers are bound at execution. Scoped to a few customers, the
    select also returns the unstaged ones (with no old stage) and there is nothing to insert first:
    one statement per re-evaluation."""
    key = (dialect, workspace_id, scoped, tuple(sorted(settings.model_dump().items())))
    cached = _statements.get(key)
    if cached is not None:
        return cached
    stage = stage_expression(settings, dialect)
    joined = (customers.outerjoin(rollups, rollups.c.customer_id == customers.c.id)
              .outerjoin(lifecycle, lifecycle.c.customer_id == customers.c.id))
    scope = [customers.c.workspace_id == workspace_id, customers.c.merged_into_id.is_(None)]
    changed = select(customers.c.id, lifecycle.c.stage, stage, lifecycle.c.version).select_from(joined)
    if scoped:
        scope.append(customers.c.id.in_(bindparam("lc_scope", expanding=True)))
        statements: tuple[Any, Any] = (None, changed.where(
            *scope, or_(lifecycle.c.customer_id.is_(None), lifecycle.c.stage != stage)).order_by(customers.c.id))
    else:
        first_seen = (select(customers.c.id, literal(workspace_id), stage, bindparam("lc_now", type_=UTCDateTime()),
                             literal(1))
                      .select_from(joined).where(*scope, lifecycle.c.customer_id.is_(None)))
        statements = (insert(lifecycle).from_select(["customer_id", "workspace_id", "stage", "since", "version"],
                                                    first_seen),
                      changed.where(*scope, lifecycle.c.customer_id.is_not(None), lifecycle.c.stage != stage)
                      .order_by(customers.c.id))
    if len(_statements) > 256:
        _statements.clear()
    _statements[key] = statements
    return statements


def update_lifecycle(session: Session, ctx: WorkspaceContext, now: datetime | None = None,
                     customer_ids: list[int] | None = None) -> dict[str, int]:
    """Recompute stages (of everyone, or of `customer_ids`); returns how many moved to each stage."""
    now = now or clock.now()
    settings = lifecycle_settings(ctx)
    insert_first, select_changed = _stage_statements(settings, session.get_bind().dialect.name, ctx.id,
                                                     customer_ids is not None)
    params: dict[str, Any] = {"lc_now": now, "lc_now_s": now.timestamp(),
                              "lc_returned_since": now - timedelta(days=settings.returned_days),
                              "lc_new_since": now - timedelta(days=settings.new_days)}
    if customer_ids is not None:
        params["lc_scope"] = customer_ids
    if insert_first is not None:
        session.execute(insert_first, params)
    rows = session.execute(select_changed, params).all()
    first = [(cid, new) for cid, old, new, _ in rows if old is None]
    if first:
        session.execute(insert(lifecycle), [{"customer_id": cid, "workspace_id": ctx.id, "stage": new, "since": now,
                                             "version": 1} for cid, new in first])
    changed = [row for row in rows if row[1] is not None]
    moved: dict[str, int] = {}
    if not changed:
        return moved
    session.execute(update(lifecycle).where(lifecycle.c.customer_id == bindparam("cid")).values(
        stage=bindparam("new_stage"), previous_stage=bindparam("old_stage"), since=now,
        version=bindparam("new_version")),
        [{"cid": cid, "new_stage": new, "old_stage": old, "new_version": version + 1}
         for cid, old, new, version in changed])
    for start in range(0, len(changed), PUBLISH_CHUNK):
        chunk = changed[start:start + PUBLISH_CHUNK]
        event_ids = record_system_events(session, ctx, [
            SystemEvent(f"lifecycle:{cid}:{version + 1}", "lifecycle_changed", cid, now, {"from": old, "to": new})
            for cid, old, new, version in chunk])
        publish(session, "lifecycle_changed", {"workspace_id": ctx.id, "event_ids": event_ids,
                                               "customer_ids": [row[0] for row in chunk],
                                               "changes": [[cid, old, new] for cid, old, new, _ in chunk]},
                workspace_id=ctx.id)
    for _, _, new, _ in changed:
        moved[new] = moved.get(new, 0) + 1
    return moved


def stage_counts(session: Session, workspace_id: int) -> dict[str, int]:
    rows = session.execute(select(lifecycle.c.stage, func.count()).where(lifecycle.c.workspace_id == workspace_id)
                           .group_by(lifecycle.c.stage))
    counts = dict.fromkeys(STAGE_LABELS, 0)
    counts.update({stage: int(n) for stage, n in rows})
    return counts


def stage_of(session: Session, workspace_id: int, customer_id: int) -> CustomerLifecycle | None:
    return session.scalar(select(CustomerLifecycle).where(CustomerLifecycle.workspace_id == workspace_id,
                                                          CustomerLifecycle.customer_id == customer_id))
