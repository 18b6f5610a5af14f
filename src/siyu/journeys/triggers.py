"""What makes customers enter journeys, and what events do to runs already in them.

- `on_events_ingested` (every ingested batch): event triggers enter customers; goal events mark runs
  converted (and end them when the goal says so); runs waiting for an event are woken; an
  `order_paid` reschedules replenishment reminders.
- `on_segment_changed` (`segment_entered` / `segment_exited`): segment triggers.
- `fire_date_triggers` (hourly): birthdays and other dates, today's and tomorrow's, each entered
  once per occurrence.
- `schedule_replenishment`: a reminder run due `days_before` the predicted run-out; a new purchase
  moves a reminder that has not started yet, and one that starts after a re-purchase is dropped.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.journeys import actions, cycles, enrolment
from siyu.journeys.definitions import Definition
from siyu.journeys.models import ACTIVE, RUN_ACTIVE, RUN_EXITED, Journey, JourneyRun
from siyu.journeys.timing import local_day, local_moment
from siyu.kit import clock
from siyu.workspaces.service import WorkspaceContext

STALE_AFTER = timedelta(days=1)  # a reminder whose moment passed longer ago than this is not sent


@dataclass(frozen=True)
class LiveJourney:
    id: int
    workspace_id: int
    version_id: int
    definition: Definition


def live_journeys(session: Session, workspace_id: int | None = None) -> list[LiveJourney]:
    """Active journeys with their published definitions."""
    from siyu.journeys.engine import definition_of

    stmt = select(Journey.id, Journey.workspace_id, Journey.published_version_id).where(
        Journey.status == ACTIVE, Journey.published_version_id.is_not(None))
    if workspace_id is not None:
        stmt = stmt.where(Journey.workspace_id == workspace_id)
    return [LiveJourney(jid, ws, vid, definition_of(session, vid)) for jid, ws, vid in session.execute(stmt)
            if vid is not None]


# -- events --------------------------------------------------------------------------------------

def on_events_ingested(session: Session, payload: dict[str, Any]) -> None:
    workspace_id = int(payload["workspace_id"])
    types = set(payload.get("types") or [])
    customer_ids = [int(c) for c in payload.get("customer_ids") or []]
    journeys = live_journeys(session, workspace_id)
    goal_types = set(session.scalars(select(JourneyRun.goal_event).distinct().where(
        JourneyRun.workspace_id == workspace_id, JourneyRun.customer_id.in_(customer_ids),
        JourneyRun.converted_at.is_(None), JourneyRun.goal_event.in_(types)))) if customer_ids and types else set()
    wait_types = set(session.scalars(select(JourneyRun.waiting_event).distinct().where(
        JourneyRun.workspace_id == workspace_id, JourneyRun.customer_id.in_(customer_ids),
        JourneyRun.status == RUN_ACTIVE, JourneyRun.waiting_event.in_(types)))) if customer_ids and types else set()
    entering = [j for j in journeys
                if j.definition.trigger.type == "event" and j.definition.trigger.event_type in types]
    if not (entering or goal_types or wait_types):
        _replenishment_after_orders(session, workspace_id, journeys, types, customer_ids)
        return
    events = actions.events_by_ids(session, workspace_id, [int(i) for i in payload.get("event_ids") or []])
    for journey in entering:
        trigger = journey.definition.trigger
        matching = [e for e in events if e.type == trigger.event_type and all(f.matches(e.properties)
                                                                             for f in trigger.where)]
        if matching:
            enrolment.enrol(session, workspace_id, journey.id, journey.version_id, journey.definition,
                            [enrolment.Entrant(e.customer_id, f"event:{e.id}") for e in matching])
    if goal_types:
        record_goals(session, workspace_id, [e for e in events if e.type in goal_types])
    if wait_types:
        wake_waiting(session, workspace_id, [e for e in events if e.type in wait_types])
    _replenishment_after_orders(session, workspace_id, journeys, types, customer_ids)


def record_goals(session: Session, workspace_id: int, events: Sequence[actions.EventView]) -> int:
    """Runs whose goal event happened inside their window are converted; the goal may end them."""
    from siyu.journeys.engine import definition_of

    if not events:
        return 0
    by_customer: dict[int, list[actions.EventView]] = defaultdict(list)
    for event in events:
        by_customer[event.customer_id].append(event)
    runs = list(session.execute(select(JourneyRun.id, JourneyRun.customer_id, JourneyRun.version_id,
                                       JourneyRun.goal_event, JourneyRun.started_at, JourneyRun.goal_until,
                                       JourneyRun.status)
                                .where(JourneyRun.workspace_id == workspace_id,
                                       JourneyRun.customer_id.in_(sorted(by_customer)),
                                       JourneyRun.converted_at.is_(None), JourneyRun.goal_event.is_not(None))))
    converted = 0
    goals = {vid: definition_of(session, vid).goal for vid in {run.version_id for run in runs}}
    for run in runs:
        goal = goals[run.version_id]
        if goal is None:
            continue
        hit = next((e for e in by_customer[run.customer_id] if e.type == run.goal_event
                    and run.started_at <= e.occurred_at <= run.goal_until
                    and all(f.matches(e.properties) for f in goal.where)), None)
        if hit is None:
            continue
        values: dict[str, Any] = {"converted_at": hit.occurred_at}
        if goal.exit and run.status == RUN_ACTIVE:
            values.update(status=RUN_EXITED, exit_reason="goal", exited_at=clock.now(), due_at=None,
                          waiting_event=None)
        session.execute(update(JourneyRun).where(JourneyRun.id == run.id, JourneyRun.converted_at.is_(None),
                                                 JourneyRun.status == run.status).values(**values))
        converted += 1
    return converted


def wake_waiting(session: Session, workspace_id: int, events: Sequence[actions.EventView]) -> int:
    """Runs waiting for one of these events are made due now; the wait step decides if it matches."""
    if not events:
        return 0
    now = clock.now()
    woken = 0
    by_type: dict[str, set[int]] = defaultdict(set)
    for event in events:
        by_type[event.type].add(event.customer_id)
    for event_type, customers in by_type.items():
        result = session.execute(update(JourneyRun).where(
            JourneyRun.workspace_id == workspace_id, JourneyRun.status == RUN_ACTIVE,
            JourneyRun.waiting_event == event_type, JourneyRun.customer_id.in_(sorted(customers)),
            JourneyRun.due_at > now).values(due_at=now))
        woken += int(getattr(result, "rowcount", 0) or 0)
    return woken


def on_segment_changed(session: Session, payload: dict[str, Any]) -> None:
    workspace_id, segment_id = int(payload["workspace_id"]), int(payload["segment_id"])
    kind = str(payload["event"])
    wanted = [j for j in live_journeys(session, workspace_id)
              if j.definition.trigger.type == kind and j.definition.trigger.segment_id == segment_id]
    if not wanted:
        return
    events = actions.events_by_ids(session, workspace_id, [int(i) for i in payload.get("event_ids") or []])
    entrants = [enrolment.Entrant(e.customer_id, f"{kind}:{e.id}") for e in events]
    if not entrants:  # a publisher without event rows: the batch is the cause
        entrants = [enrolment.Entrant(int(c), f"{kind}:{segment_id}:{payload.get('key', '')}")
                    for c in payload.get("customer_ids") or []]
    for journey in wanted:
        enrolment.enrol(session, workspace_id, journey.id, journey.version_id, journey.definition, entrants)


# -- dates ------------------------------------------------------------------------------------------

def fire_date_triggers(session: Session, now: datetime | None = None) -> int:
    """Enter the customers whose date comes today or tomorrow (local), each due at the trigger's
    time; an occurrence is entered once, however often this runs."""
    now = now or clock.now()
    entered = 0
    contexts: dict[int, WorkspaceContext] = {}
    for journey in live_journeys(session):
        trigger = journey.definition.trigger
        if trigger.type != "date":
            continue
        ctx = contexts.setdefault(journey.workspace_id, actions.workspace_context(session, journey.workspace_id))
        today = local_day(now, ctx.timezone)
        for day in (today, today + timedelta(days=1)):
            occurrence = day - timedelta(days=trigger.offset_days)
            if trigger.match == "month" and occurrence.day != 1:
                continue
            days = calendar.monthrange(occurrence.year, occurrence.month)[1] if trigger.match == "month" else 1
            rule = {"kind": "profile", "field": trigger.field, "op": "within_next_days", "value": days}
            moment = local_moment(occurrence, trigger.at, ctx.timezone)
            customer_ids = actions.all_customers_matching(session, ctx, rule, moment)
            start_at = local_moment(day, trigger.at, ctx.timezone)
            cause = f"date:{trigger.field}:{occurrence.isoformat() if days == 1 else occurrence.strftime('%Y-%m')}"
            result = enrolment.enrol(session, journey.workspace_id, journey.id, journey.version_id,
                                     journey.definition, [enrolment.Entrant(c, cause, start_at) for c in customer_ids],
                                     now)
            entered += result.entered
    return entered


# -- replenishment -----------------------------------------------------------------------------------

def _replenishment_after_orders(session: Session, workspace_id: int, journeys: list[LiveJourney], types: set[str],
                                customer_ids: list[int]) -> None:
    if "order_paid" not in types:
        return
    for journey in journeys:
        if journey.definition.trigger.type == "replenishment":
            schedule_replenishment(session, workspace_id, journey, customer_ids)


def schedule_replenishment(session: Session, workspace_id: int, journey: LiveJourney, customer_ids: Sequence[int],
                           now: datetime | None = None) -> int:
    """Plan a reminder `days_before` each customer's predicted run-out (at the trigger's local time).
    A reminder not yet started moves to the new date; a running one is left alone."""
    now = now or clock.now()
    trigger = journey.definition.trigger
    ctx = actions.workspace_context(session, workspace_id)
    predictions = cycles.predict(session, workspace_id, customer_ids, category=trigger.category, sku=trigger.sku)
    if not predictions:
        return 0
    pending = {run.customer_id: run for run in session.scalars(select(JourneyRun).where(
        JourneyRun.journey_id == journey.id, JourneyRun.status == RUN_ACTIVE,
        JourneyRun.customer_id.in_(sorted(predictions))))}
    entrants = []
    planned = 0
    for customer_id, prediction in sorted(predictions.items()):
        remind_day = local_day(prediction.run_out_at - timedelta(days=trigger.days_before), ctx.timezone)
        fire_at = local_moment(remind_day, trigger.at, ctx.timezone)
        if fire_at < now - STALE_AFTER:
            continue
        basis = {"basis_at": prediction.last_purchase_at.isoformat(), "category": trigger.category,
                 "sku": trigger.sku, "run_out_at": prediction.run_out_at.isoformat(), "source": prediction.source}
        run = pending.get(customer_id)
        if run is not None:
            if run.seq == 0 and not (run.state or {}).get("started") and "replenish" in (run.state or {}):
                run.state = {**run.state, "replenish": basis}
                run.due_at = run.started_at = max(fire_at, now)
                planned += 1
            continue
        entrants.append(enrolment.Entrant(customer_id, f"replenish:{prediction.last_purchase_at.isoformat()}",
                                          fire_at, {"replenish": basis}))
    if entrants:
        planned += enrolment.enrol(session, workspace_id, journey.id, journey.version_id, journey.definition,
                                   entrants, now).entered
    session.flush()
    return planned


def backfill_replenishment(session: Session, workspace_id: int, journey_id: int) -> int:
    """After publishing: plan reminders for everyone who bought what the trigger names."""
    journey = next((j for j in live_journeys(session, workspace_id) if j.id == journey_id), None)
    if journey is None or journey.definition.trigger.type != "replenishment":
        return 0
    trigger = journey.definition.trigger
    ctx = actions.workspace_context(session, workspace_id)
    rule = ({"kind": "bought", "category": trigger.category} if trigger.category is not None
            else {"kind": "bought", "sku": trigger.sku})
    buyers = actions.all_customers_matching(session, ctx, rule, clock.now())
    planned = 0
    for start in range(0, len(buyers), 2000):
        planned += schedule_replenishment(session, workspace_id, journey, buyers[start:start + 2000])
    return planned


# -- merges ----------------------------------------------------------------------------------------------

def on_customer_merged(session: Session, payload: dict[str, Any]) -> None:
    """The absorbed profile's active runs move to the survivor, unless the survivor is already in that
    journey (then they exit as `merged`); its staff tasks move too."""
    from siyu.journeys.staff_tasks import move_tasks_on_merge

    workspace_id = int(payload["workspace_id"])
    survivor, absorbed = int(payload["survivor_id"]), int(payload["absorbed_id"])
    busy = set(session.scalars(select(JourneyRun.journey_id).where(
        JourneyRun.workspace_id == workspace_id, JourneyRun.customer_id == survivor, JourneyRun.status == RUN_ACTIVE)))
    for run in session.scalars(select(JourneyRun).where(JourneyRun.workspace_id == workspace_id,
                                                        JourneyRun.customer_id == absorbed,
                                                        JourneyRun.status == RUN_ACTIVE)):
        if run.journey_id in busy:
            run.status, run.exit_reason, run.exited_at, run.due_at = RUN_EXITED, "merged", clock.now(), None
        else:
            run.customer_id = survivor
            run.entry_key = f"{run.entry_key}|merged:{absorbed}"[:200]  # the survivor may hold the same key
            busy.add(run.journey_id)
    session.flush()
    move_tasks_on_merge(session, workspace_id, survivor, absorbed)
