"""Durable execution: claim due runs, execute their steps, schedule what comes next.

One unit of work (see docs/adr/0005-journey-execution.md):

1. claim up to `batch` active runs whose `due_at` has come, oldest first — `FOR UPDATE SKIP LOCKED`
   on PostgreSQL, so any number of workers share the table; on SQLite the transaction holds the
   database lock;
2. execute the step each run is at, grouped by (version, step) so a group's side effects go to the
   other domain in one call; a run moves on through steps that need no waiting in the same
   transaction, and stops at a wait, a staff task, an exit or the end;
3. write the runs back and append one step-log row per executed step; commit.

Every side effect gets the key `journey:<run>:<seq>:<step>`, where `seq` counts the steps the run
has executed: a replay after a crash (the whole transaction rolled back) executes the same step
with the same key, and the other domain returns its first result. `(run_id, seq)` is unique in the
step log, so no step is ever recorded twice. A failing group is retried run by run inside
savepoints; a run that keeps failing backs off and, after `MAX_ATTEMPTS`, ends as failed.
"""

from __future__ import annotations

import hashlib
import logging
import random
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from siyu.db.bulk import Bulk
from siyu.db.session import transaction
from siyu.journeys import actions, staff_tasks
from siyu.journeys.definitions import Definition, Step
from siyu.journeys.models import (
    RUN_ACTIVE,
    RUN_COMPLETED,
    RUN_EXITED,
    RUN_FAILED,
    JourneyVersion,
)
from siyu.journeys.timing import next_time_of_day
from siyu.kit import clock
from siyu.workspaces.service import WorkspaceContext

log = logging.getLogger("siyu.journeys")

BATCH = 1000
MAX_HOPS = 50  # steps one claim may chain before the run yields to others
MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)


@dataclass(slots=True)
class Run:
    """A claimed run, changed in memory and written back at the end of the unit of work."""

    id: int
    workspace_id: int
    journey_id: int
    version_id: int
    customer_id: int
    step_id: str | None
    due_at: datetime
    seq: int
    state: dict[str, Any]
    waiting_event: str | None
    holdout: bool
    started_at: datetime
    attempts: int
    status: str = RUN_ACTIVE
    exited_at: datetime | None = None
    exit_reason: str | None = None
    last_error: str | None = None
    claimed_due: datetime | None = None

    def key(self, step: Step) -> str:
        """The idempotency key of this run's next execution of `step`."""
        return f"journey:{self.id}:{self.seq}:{step.id}"

    def at(self, step: Step) -> dict[str, Any] | None:
        """What the run recorded when it started waiting at `step`, if it is resuming there."""
        at = self.state.get("at")
        if isinstance(at, dict) and at.get("step") == step.id and at.get("seq") == self.seq:
            return at
        return None


@dataclass(slots=True)
class Result:
    """What executing a step did to one run. `outcome` set: a step-log row (and seq + 1)."""

    outcome: str | None = None
    detail: dict[str, Any] | None = None
    target: str | None = None  # where the run goes next (None: it completes) unless parked/finished
    park_until: datetime | None = None
    at: dict[str, Any] = field(default_factory=dict)
    waiting_event: str | None = None
    finish: tuple[str, str] | None = None  # (status, reason)


def advance(target: str | None, outcome: str, detail: dict[str, Any] | None = None) -> Result:
    return Result(outcome, detail, target)


def park(until: datetime, at: dict[str, Any], *, outcome: str | None = None, detail: dict[str, Any] | None = None,
         waiting_event: str | None = None) -> Result:
    return Result(outcome, detail, park_until=until, at=at, waiting_event=waiting_event)


def finish(status: str, reason: str, outcome: str | None = None, detail: dict[str, Any] | None = None) -> Result:
    return Result(outcome, detail, finish=(status, reason))


@dataclass
class Unit:
    """One group's context: the store, the workspace, the definition and the moment."""

    session: Session
    ctx: WorkspaceContext
    definition: Definition
    journey_id: int
    now: datetime


Handler = Callable[[Unit, Step, list[Run]], dict[int, Result]]


# -- definitions (immutable per version, so cached) ----------------------------------------------

_definitions: dict[int, tuple[bytes, Definition]] = {}


def definition_of(session: Session, version_id: int) -> Definition:
    """The parsed definition of a version. Parsing is what is cached; the row is read every time, so
    a cache can never outlive the row it was made from (ids of a wiped store may come back)."""
    from siyu.journeys.definitions import validate_definition

    raw = session.scalar(select(JourneyVersion.definition).where(JourneyVersion.id == version_id))
    fingerprint = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    cached = _definitions.get(version_id)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    found = validate_definition(raw)
    if len(_definitions) > 2000:
        _definitions.clear()
    _definitions[version_id] = (fingerprint, found)
    return found


# -- the loop ------------------------------------------------------------------------------------

def run_due_steps(engine: Engine, *, batch: int = BATCH, max_batches: int | None = None) -> int:
    """Execute due steps until none are due (or `max_batches` units ran); returns how many steps ran."""
    executed = 0
    rounds = 0
    while max_batches is None or rounds < max_batches:
        rounds += 1
        with transaction(engine) as session:
            claimed, steps = execute_due(session, batch)
        executed += steps
        if claimed < batch:
            break
    return executed


def execute_due(session: Session, limit: int = BATCH) -> tuple[int, int]:
    """One unit of work in the caller's transaction: (runs claimed, steps executed)."""
    now = clock.now()
    runs = claim_due_runs(session, now, limit)
    if not runs:
        return 0, 0
    contexts = {ws: actions.workspace_context(session, ws) for ws in sorted({r.workspace_id for r in runs})}
    logs: list[tuple[Any, ...]] = []
    pending = _start(session, contexts, runs, now, logs)
    for _ in range(MAX_HOPS):
        if not pending:
            break
        groups: dict[tuple[int, str], list[Run]] = defaultdict(list)
        for run in pending:
            assert run.step_id is not None
            groups[(run.version_id, run.step_id)].append(run)
        pending = []
        for (version_id, step_id), group in sorted(groups.items()):
            pending.extend(_execute_group(session, contexts, version_id, step_id, group, now, logs))
    for run in pending:  # a long chain yields; it continues in the next unit of work
        run.due_at = now
    _write_back(session, runs, logs, now)
    return len(runs), len(logs)


# The claim walks the due index (partial, active runs) in due order and stops after `limit` rows:
# the runs of journeys that are not active (paused) are filtered by a hashed list, never joined.
# On PostgreSQL the planner, misled by statistics a bulk enrolment made stale ("a few due rows"),
# would rather fetch every due run and sort them on each claim — a million rows per claim — so the
# claim forbids sorts and bitmap scans for itself; it orders by the indexed due_at alone (ties in
# index order, which is insertion order). SQLite's index holds the rowid: (due_at, id) is its order.
_CLAIM = ("SELECT r.id, r.workspace_id, r.journey_id, r.version_id, r.customer_id, r.step_id, r.due_at, r.seq, "
          "{state}, r.waiting_event, r.holdout, r.started_at, r.attempts FROM journey_runs r "
          "WHERE r.status = 'active' AND r.due_at <= ? "
          "AND r.journey_id NOT IN (SELECT j.id FROM journeys j WHERE j.status <> 'active') "
          "ORDER BY {order} LIMIT ?{lock}")


def claim_due_runs(session: Session, now: datetime, limit: int) -> list[Run]:
    """The `limit` most overdue active runs of active journeys, locked for this transaction (rows
    as plain tuples, the state decoded by orjson: the claim is on every step's path)."""
    bulk = Bulk(session)
    if bulk.postgres:
        bulk.execute("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off")
        try:
            rows = bulk.execute(_CLAIM.format(state="r.state::text", order="r.due_at",
                                              lock=" FOR UPDATE OF r SKIP LOCKED"), (bulk.ts(now), limit))
        finally:
            bulk.execute("SET LOCAL enable_sort TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT")
    else:
        rows = bulk.execute(_CLAIM.format(state="r.state", order="r.due_at, r.id", lock=""), (bulk.ts(now), limit))
    runs = []
    for row in rows:
        (run_id, workspace_id, journey_id, version_id, customer_id, step_id, due_at, seq, state, waiting_event,
         holdout, started_at, attempts) = row
        due = _utc(due_at)
        state = dict(orjson.loads(state) or {}) if state else {}
        runs.append(Run(run_id, workspace_id, journey_id, version_id, customer_id, step_id, due, seq, state,
                        waiting_event, bool(holdout), _utc(started_at), attempts, claimed_due=due))
    return runs


def _utc(value: datetime | str) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite keeps naive UTC text)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC) if value.tzinfo is not UTC else value


def _start(session: Session, contexts: dict[int, WorkspaceContext], runs: list[Run], now: datetime,
           logs: list[tuple[Any, ...]]) -> list[Run]:
    """Runs executing for the first time: holdout runs end here (tracked, never treated), and a
    replenishment reminder whose customer has bought again meanwhile is dropped."""
    from siyu.journeys.cycles import rebought

    ready: list[Run] = []
    fresh = [r for r in runs if r.seq == 0 and not r.state.get("started")]
    fresh_ids = {r.id for r in fresh}
    gone = rebought(session, [r for r in fresh if "replenish" in r.state and not r.holdout])
    for run in runs:
        if run.id not in fresh_ids:
            ready.append(run)
        elif run.holdout:
            _apply(run, finish(RUN_EXITED, "holdout"), None, now, logs)
        elif run.id in gone:
            _apply(run, finish(RUN_EXITED, "rebought"), None, now, logs)
        else:
            run.state["started"] = True
            ready.append(run)
    return ready


def _execute_group(session: Session, contexts: dict[int, WorkspaceContext], version_id: int, step_id: str,
                   group: list[Run], now: datetime, logs: list[tuple[Any, ...]]) -> list[Run]:
    """Execute one step for a group of runs; returns the runs that move on to another step now."""
    try:
        definition = definition_of(session, version_id)
        step = definition.step(step_id)
    except Exception as exc:  # a version that no longer parses, or a step a migration removed
        for run in group:
            _fail(run, exc, now, final=True)
        return []
    by_workspace: dict[int, list[Run]] = defaultdict(list)
    for run in group:
        by_workspace[run.workspace_id].append(run)
    moving: list[Run] = []
    for workspace_id, runs in sorted(by_workspace.items()):
        unit = Unit(session, contexts[workspace_id], definition, runs[0].journey_id, now)
        results = _isolated(unit, step, runs)
        for run in runs:
            result = results.get(run.id)
            if isinstance(result, Result) and _apply(run, result, step, now, logs):
                moving.append(run)
    return moving


def _isolated(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result | None]:
    """Run the handler for the whole group in a savepoint; if it fails, once per run, so one bad
    customer fails alone. A failed run keeps its place and backs off."""
    handler = HANDLERS[step.type]
    try:
        with unit.session.begin_nested():
            return dict(handler(unit, step, runs))
    except Exception as exc:
        if len(runs) == 1:
            _fail(runs[0], exc, unit.now)
            return {}
    results: dict[int, Result | None] = {}
    for run in runs:
        try:
            with unit.session.begin_nested():
                results[run.id] = handler(unit, step, [run])[run.id]
        except Exception as exc:
            _fail(run, exc, unit.now)
    return results


def _apply(run: Run, result: Result, step: Step | None, now: datetime, logs: list[tuple[Any, ...]]) -> bool:
    """Record the result on the run; True when the run moves on to another step now."""
    if result.outcome is not None and step is not None:
        logs.append((run.workspace_id, run.journey_id, run.id, run.seq, step.id, result.outcome[:40], result.detail,
                     run.claimed_due or now, now))
        run.seq += 1
    run.attempts, run.last_error = 0, None
    if result.finish is not None:
        _end(run, result.finish[0], result.finish[1], now)
        return False
    if result.park_until is not None:
        assert step is not None
        run.state["at"] = {**result.at, "step": step.id, "seq": run.seq}
        run.due_at = result.park_until
        run.waiting_event = result.waiting_event
        return False
    run.state.pop("at", None)
    run.waiting_event = None
    if result.target is None:
        _end(run, RUN_COMPLETED, "completed", now)
        return False
    run.step_id = result.target
    run.due_at = now
    return True


def _end(run: Run, status: str, reason: str, now: datetime) -> None:
    run.status, run.exit_reason, run.exited_at = status, reason, now
    run.state.pop("at", None)
    run.waiting_event = None


def _fail(run: Run, exc: BaseException, now: datetime, *, final: bool = False) -> None:
    log.warning("journey run %s failed at step %s: %s", run.id, run.step_id, exc)
    run.attempts += 1
    run.last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
    if final or run.attempts >= MAX_ATTEMPTS:
        _end(run, RUN_FAILED, "error", now)
        return
    backoff = min(timedelta(seconds=2 ** run.attempts), MAX_BACKOFF)
    run.due_at = now + backoff * (0.5 + random.random() / 2)


def _write_back(session: Session, runs: list[Run], logs: list[tuple[Any, ...]], now: datetime) -> None:
    """The claimed runs as they are now, and the step log, in one statement each on PostgreSQL (an
    executemany there is a statement the server plans and runs per row)."""
    bulk = Bulk(session)
    if bulk.postgres:
        _write_back_postgres(bulk, runs)
    else:
        bulk.run("UPDATE journey_runs SET status = ?, step_id = ?, due_at = ?, seq = ?, state = ?, waiting_event = ?, "
                 "exited_at = ?, exit_reason = ?, attempts = ?, last_error = ? WHERE id = ?",
                 [(r.status, r.step_id, bulk.ts(r.due_at if r.status == RUN_ACTIVE else None), r.seq,
                   bulk.json(r.state), r.waiting_event, bulk.ts(r.exited_at), r.exit_reason, r.attempts, r.last_error,
                   r.id) for r in runs])
    bulk.copy("journey_step_log", ("workspace_id", "journey_id", "run_id", "seq", "step_id", "outcome", "detail",
                                   "due_at", "executed_at"),
              [(ws, jid, rid, seq, sid, outcome, bulk.json(detail) if detail is not None else None, bulk.ts(due),
                bulk.ts(at)) for ws, jid, rid, seq, sid, outcome, detail, due, at in logs])


_RUN_UPDATE = ", ".join(f"{name} = v.{name}" for name in ("status", "step_id", "due_at", "seq", "state",
                                                          "waiting_event", "exited_at", "exit_reason", "attempts",
                                                          "last_error"))


def _write_back_postgres(bulk: Bulk, runs: list[Run]) -> None:
    """One UPDATE joined with the new values, sent as one JSON document (serialised in one C call)."""
    document = orjson.dumps([
        {"id": r.id, "status": r.status, "step_id": r.step_id,
         "due_at": r.due_at if r.status == RUN_ACTIVE else None, "seq": r.seq, "state": r.state,
         "waiting_event": r.waiting_event, "exited_at": r.exited_at, "exit_reason": r.exit_reason,
         "attempts": r.attempts, "last_error": r.last_error} for r in runs]).decode()
    bulk.execute(f"UPDATE journey_runs r SET {_RUN_UPDATE} FROM jsonb_to_recordset(?::jsonb) AS v("
                 "id bigint, status text, step_id text, due_at timestamptz, seq integer, state jsonb, "
                 "waiting_event text, exited_at timestamptz, exit_reason text, attempts integer, last_error text) "
                 "WHERE r.id = v.id", (document,))


# -- step handlers --------------------------------------------------------------------------------

def _wait(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    params = step.params
    if "event_type" in params:
        return _wait_for_event(unit, step, runs)
    results: dict[int, Result] = {}
    for run in runs:
        at = run.at(step)
        if at is not None:
            until = datetime.fromisoformat(at["until"])
            results[run.id] = (advance(step.edge("next"), "waited", {"since": at["since"], "until": at["until"]})
                               if until <= unit.now else park(until, at))
            continue
        until = unit.now + timedelta(seconds=params["duration_seconds"])
        if params["until_time"]:
            until = next_time_of_day(until, params["until_time"], unit.ctx.timezone,
                                     strictly_after=params["duration_seconds"] == 0)
        results[run.id] = park(until, {"since": unit.now.isoformat(), "until": until.isoformat()})
    return results


def _wait_for_event(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    from siyu.journeys.definitions import Filter

    params = step.params
    where: tuple[Filter, ...] = params["where"]
    resuming = {r.id: at for r in runs if (at := r.at(step)) is not None}
    matched: dict[int, int] = {}
    if resuming:
        since = min(datetime.fromisoformat(at["since"]) for at in resuming.values())
        waiting = {r.customer_id: r for r in runs if r.id in resuming}
        for event in actions.customer_events_since(unit.session, unit.ctx.id, sorted(waiting), [params["event_type"]],
                                                   since):
            run = waiting[event.customer_id]
            started = datetime.fromisoformat(resuming[run.id]["since"])
            if event.occurred_at >= started and run.id not in matched and all(f.matches(event.properties)
                                                                              for f in where):
                matched[run.id] = event.id
    results: dict[int, Result] = {}
    for run in runs:
        at = resuming.get(run.id)
        if at is None:
            until = unit.now + timedelta(seconds=params["timeout_seconds"])
            results[run.id] = park(until, {"since": unit.now.isoformat(), "until": until.isoformat()},
                                   waiting_event=params["event_type"])
        elif run.id in matched:
            results[run.id] = advance(step.edge("next"), "event", {"event_id": matched[run.id]})
        elif datetime.fromisoformat(at["until"]) <= unit.now:
            results[run.id] = advance(step.edge("timeout_next"), "timeout")
        else:
            results[run.id] = park(datetime.fromisoformat(at["until"]), at, waiting_event=params["event_type"])
    return results


def _condition(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    holds = actions.customers_matching(unit.session, unit.ctx, step.params["rule"], [r.customer_id for r in runs],
                                       unit.now)
    return {r.id: advance(step.edge("then"), "then") if r.customer_id in holds else advance(step.edge("else"), "else")
            for r in runs}


def split_bucket(journey_id: int, customer_id: int, step_id: str) -> int:
    """0–9999, the same for a customer at a split whenever and wherever it is computed."""
    digest = hashlib.sha256(f"{journey_id}:{customer_id}:{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def choose_branch(branches: list[tuple[str, float]], bucket: int) -> str:
    edge = 0.0
    for key, percent in branches:
        edge += percent * 100
        if bucket < edge:
            return key
    return branches[-1][0]


def _split(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    results = {}
    for run in runs:
        key = choose_branch(step.params["branches"], split_bucket(run.journey_id, run.customer_id, step.id))
        results[run.id] = advance(step.edge(f"branch:{key}"), key)
    return results


def _side_effect(outcomes: dict[str, actions.Outcome], step: Step, runs: list[Run]) -> dict[int, Result]:
    results = {}
    for run in runs:
        outcome = outcomes[run.key(step)]
        detail = {**(outcome.detail or {}), "key": run.key(step)}
        results[run.id] = advance(step.edge("next"), outcome.code if outcome.ok else f"refused:{outcome.code}",
                                  detail)
    return results


def _send_message(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    outcomes = actions.send_messages(unit.session, unit.ctx, step.params["template_id"], step.params["channel"],
                                     [(r.customer_id, r.key(step)) for r in runs])
    return _side_effect(outcomes, step, runs)


def _issue_coupon(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    outcomes = actions.issue_coupons(unit.session, unit.ctx, step.params["template_id"],
                                     [(r.customer_id, r.key(step)) for r in runs])
    return _side_effect(outcomes, step, runs)


def _award_points(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    outcomes = actions.award_points(unit.session, unit.ctx, step.params["points"], step.params["reason"],
                                    [(r.customer_id, r.key(step)) for r in runs])
    return _side_effect(outcomes, step, runs)


def _tag(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    outcomes = actions.change_tag(unit.session, unit.ctx, step.params["tag_id"], [r.customer_id for r in runs],
                                  add=step.type == "add_tag", actor=f"journey:{unit.journey_id}")
    return _side_effect({r.key(step): outcomes[r.customer_id] for r in runs}, step, runs)


def _update_attribute(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    outcomes = actions.update_attribute(unit.session, unit.ctx, [r.customer_id for r in runs], step.params["key"],
                                        step.params["value"], unit.now)
    return _side_effect({r.key(step): outcomes[r.customer_id] for r in runs}, step, runs)


def _webhook(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    for run in runs:
        body = {**step.params["payload"], "journey_id": run.journey_id, "run_id": run.id,
                "customer_id": run.customer_id, "step_id": step.id, "idempotency_key": run.key(step)}
        actions.call_webhook_later(unit.session, unit.ctx, step.params["url"], body, run.key(step))
    return _side_effect({r.key(step): actions.Outcome(True, "queued") for r in runs}, step, runs)


def _staff_task(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    params = step.params
    results: dict[int, Result] = {}
    resuming = {r.id: at for r in runs if (at := r.at(step)) is not None}
    statuses = staff_tasks.statuses(unit.session, unit.ctx.id, [at["task_id"] for at in resuming.values()])
    arriving = [r for r in runs if r.id not in resuming]
    sla = timedelta(seconds=params["sla_seconds"])
    created = staff_tasks.create_for_runs(unit.session, unit.ctx, step, unit.journey_id,
                                          [(r.id, r.customer_id, r.key(step)) for r in arriving], unit.now)
    for run in arriving:
        task_id, assignee = created[run.key(step)]
        results[run.id] = park(unit.now + sla, {"task_id": task_id, "due": (unit.now + sla).isoformat()},
                               outcome="task_created",
                               detail={"task_id": task_id, "assignee_id": assignee})
    for run in runs:
        at = resuming.get(run.id)
        if at is None:
            continue
        status = statuses.get(at["task_id"], "open")
        if status in ("done", "skipped"):
            results[run.id] = advance(step.edge(f"{status}_next"), status, {"task_id": at["task_id"]})
        elif datetime.fromisoformat(at["due"]) <= unit.now:
            results[run.id] = advance(step.edge("overdue_next"), "overdue", {"task_id": at["task_id"]})
        else:
            results[run.id] = park(datetime.fromisoformat(at["due"]), at)
    return results


def _exit(unit: Unit, step: Step, runs: list[Run]) -> dict[int, Result]:
    return {r.id: finish(RUN_EXITED, step.params["reason"], "exit") for r in runs}


HANDLERS: dict[str, Handler] = {
    "wait": _wait, "condition": _condition, "split": _split, "send_message": _send_message,
    "issue_coupon": _issue_coupon, "award_points": _award_points, "add_tag": _tag, "remove_tag": _tag,
    "update_attribute": _update_attribute, "webhook": _webhook, "staff_task": _staff_task, "exit": _exit,
}
