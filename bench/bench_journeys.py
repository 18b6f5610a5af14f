"""Journey engine benchmarks (issue 7).

N customers enter a 5-step journey — send a message, wait 1 day, condition, issue a coupon, create a
staff task — and the clock is moved a day ahead, on SQLite (the single in-process worker) and on
PostgreSQL (W worker processes sharing the table with FOR UPDATE SKIP LOCKED). Printed:

- step executions per second while entering (message) and after the day has passed (wait →
  condition → coupon → task), with the number of workers;
- p99 lateness of due steps when the engine keeps up: waits that expire spread over a minute at
  about a third of the measured throughput;
- on PostgreSQL, workers are killed (SIGKILL) at random while they work and restarted; then the
  benchmark checks that no side effect was doubled or lost: exactly one outbox message, one coupon
  and one task per run that went that way, and every run's step log without gap or repeat.

    python -m bench.bench_journeys                                # 20,000 customers, both stores
    python -m bench.bench_journeys --customers 1000000 --backend sqlite
    python -m bench.bench_journeys --customers 1000000 --backend postgresql --workers 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from bench.common import figure, scratch_postgres, scratch_sqlite

DAY = 86400.0
CITIES = ["上海", "杭州", "北京", "广州", "成都", "深圳", "南京"]
HOLDS = ["上海", "杭州", "北京", "广州", "深圳"]  # the condition step holds for these cities


class OffsetClock:
    """Real time moved by a shared offset: the driver "advances the clock" for every worker at once."""

    def __init__(self, offset: Any) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset.value)


def install_clock(offset: Any) -> None:
    from siyu.kit.clock import Clock, set_clock

    class _Clock(Clock):
        def now(self) -> datetime:
            return datetime.now(UTC) + timedelta(seconds=offset.value)

    set_clock(_Clock())


@dataclass
class Setup:
    url: str
    workspace_id: int
    journey_id: int
    lateness_journey_id: int
    customer_ids: list[int]


def journey_definition(message_template: int, coupon_template: int, pool: list[int]) -> dict[str, Any]:
    return {
        "trigger": {"type": "manual"}, "entry": {"mode": "every_time"}, "start": "message",
        "steps": [
            {"id": "message", "type": "send_message", "template_id": message_template, "next": "wait"},
            {"id": "wait", "type": "wait", "duration": {"days": 1}, "next": "check"},
            {"id": "check", "type": "condition", "then": "coupon", "else": None,
             "rule": {"kind": "profile", "field": "city", "op": "in", "value": HOLDS}},
            {"id": "coupon", "type": "issue_coupon", "template_id": coupon_template, "next": "task"},
            {"id": "task", "type": "staff_task", "title": "回访", "assign": {"to": "pool", "pool": pool},
             "sla": {"days": 2}},
        ]}


def prepare(url: str, customers: int, offset: Any) -> Setup:
    from siyu.coupons.schemas import TemplateIn
    from siyu.coupons.service import create_template as create_coupon_template
    from siyu.db.migrate import upgrade
    from siyu.db.session import make_engine, transaction
    from siyu.events.service import ingest_events
    from siyu.journeys import service
    from siyu.messaging.settings import update_policy
    from siyu.messaging.template_service import create_template
    from siyu.workspaces.service import context_of, create_user, create_workspace

    install_clock(offset)
    upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        workspace = create_workspace(session, "bench", "Bench 母婴")
        ctx = context_of(workspace)
        pool = [create_user(session, workspace, f"staff{i}@bench.test", f"导购{i}", "bench-password", "staff").id
                for i in range(3)]
        update_policy(session, ctx.id, {"quiet_hours": None, "frequency_caps": [], "fatigue": None})
        message = create_template(session, ctx, name="关怀", channel="sandbox", kind="text",
                                  body="{{ customer.name }}，您好", actor="bench").id
        coupon = create_coupon_template(session, ctx, TemplateIn(name="回购券", kind="amount_off",
                                                                 amount_off_fen=1000, valid_days=30),
                                        actor="bench").id
    started = time.perf_counter()
    for start in range(0, customers, 5000):
        with transaction(engine) as session:
            ingest_events(session, ctx, [
                {"id": f"c-{n}", "type": "identify", "occurred_at": "2026-01-01T10:00:00+08:00",
                 "identities": [{"type": "wechat_unionid", "value": f"bench-{n}"}],
                 "traits": {"name": f"客户{n}", "city": CITIES[n % len(CITIES)]}}
                for n in range(start, min(customers, start + 5000))], max_batch=None)
    print(f"  {customers:,} customers ingested in {time.perf_counter() - started:.1f} s", flush=True)
    with transaction(engine) as session:
        draft = service.create_journey(session, ctx, name="5 步旅程", definition=journey_definition(message, coupon,
                                                                                                   pool),
                                       actor="bench")
        assert not draft.issues, draft.issues
        service.publish_journey(session, ctx, draft.journey.id, actor="bench")
        second = service.create_journey(session, ctx, name="lateness", actor="bench",
                                        definition=journey_definition(message, coupon, pool))
        service.publish_journey(session, ctx, second.journey.id, actor="bench")
        ids = [int(i) for i in session.scalars(text("SELECT id FROM customers WHERE workspace_id = :ws ORDER BY id"),
                                               {"ws": ctx.id})]
    engine.dispose()
    return Setup(url, ctx.id, draft.journey.id, second.journey.id, ids)


def enrol_all(engine: Engine, setup: Setup, ids: Sequence[int], cause: str) -> None:
    from siyu.db.session import transaction
    from siyu.journeys import enrolment, service

    for start in range(0, len(ids), 10_000):
        with transaction(engine) as session:
            journey = service.get_journey(session, setup.workspace_id, setup.journey_id)
            version, definition = service.published_definition(session, journey)
            enrolment.enrol(session, setup.workspace_id, journey.id, version.id, definition,
                            [enrolment.Entrant(c, cause) for c in ids[start:start + 10_000]])


def executed(engine: Engine, journey_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM journey_step_log WHERE journey_id = :j"),
                               {"j": journey_id}) or 0)


def due_count(engine: Engine, offset: Any) -> int:
    from siyu.kit.clock import now

    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM journey_runs WHERE status = 'active' AND due_at <= :now"),
                               {"now": now() if engine.dialect.name == "postgresql"
                                else now().replace(tzinfo=None).isoformat(" ")}) or 0)


# -- workers -------------------------------------------------------------------------------------

def worker_main(url: str, offset: Any, stop: Any) -> None:
    from siyu.db.session import make_engine
    from siyu.journeys.engine import run_due_steps

    install_clock(offset)
    engine = make_engine(url)
    while not stop.value:
        if run_due_steps(engine, max_batches=20) == 0:
            time.sleep(0.05)


class Workers:
    def __init__(self, url: str, count: int, offset: Any) -> None:
        self.url, self.count, self.offset = url, count, offset
        self.ctx = mp.get_context("fork")
        self.stop = self.ctx.Value("b", 0)
        self.procs: list[Any] = []
        self.kills = 0

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.count)]

    def _spawn(self) -> Any:
        proc = self.ctx.Process(target=worker_main, args=(self.url, self.offset, self.stop), daemon=True)
        proc.start()
        return proc

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.procs))
        os.kill(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].join()
        self.procs[index] = self._spawn()
        self.kills += 1

    def close(self) -> None:
        self.stop.value = 1
        for proc in self.procs:
            proc.join(timeout=30)


def unfinished(engine: Engine, journey_id: int, steps: Sequence[str]) -> bool:
    """Whether an active run of the journey is still at one of `steps`: an existence probe on the
    (journey, status, step) index, cheap however many runs there are (counting the step log every
    tenth of a second would cost the server more than a worker's share at a million runs)."""
    marks = ", ".join(f"'{s}'" for s in steps)
    with engine.connect() as conn:
        return conn.scalar(text(f"SELECT 1 FROM journey_runs WHERE journey_id = :j AND status = 'active' "
                                f"AND step_id IN ({marks}) LIMIT 1"), {"j": journey_id}) is not None


def drain(engine: Engine, setup: Setup, offset: Any, steps: Sequence[str], workers: Workers | None,
          kill_every: float = 0.0, since: tuple[int, float] | None = None) -> tuple[int, float]:
    """Run until no run of the journey is at one of `steps` (counted from `since`: steps, perf time;
    default now); returns (steps executed, seconds)."""
    from siyu.journeys.engine import run_due_steps

    rng = random.Random(11)
    before, started = since or (executed(engine, setup.journey_id), time.perf_counter())
    next_kill = started + kill_every if kill_every else float("inf")
    while unfinished(engine, setup.journey_id, steps):
        if workers is None:
            run_due_steps(engine, max_batches=20)
        else:
            time.sleep(0.1)
            if time.perf_counter() >= next_kill:
                workers.kill_one(rng)
                next_kill = time.perf_counter() + kill_every * (0.5 + rng.random())
        if time.perf_counter() - started > 3600:
            raise SystemExit("the engine did not drain within an hour")
    seconds = time.perf_counter() - started
    return executed(engine, setup.journey_id) - before, seconds


def lateness(engine: Engine, setup: Setup, offset: Any, workers: Workers | None, rate: float, seconds: float
             ) -> list[float]:
    """Waits that expire over `seconds` of real time at `rate` a second; their lateness in seconds."""
    from siyu.kit.clock import FrozenClock, set_clock

    count = max(1, int(rate * seconds))
    ids = setup.customer_ids[:count]
    base = datetime.now(UTC) + timedelta(seconds=offset.value)
    # enter each customer at its own moment, so the one-day waits end spread over `seconds`
    from siyu.db.session import transaction
    from siyu.journeys import enrolment, service

    frozen = FrozenClock(base)
    set_clock(frozen)
    groups = 200
    per_group = max(1, len(ids) // groups)
    for g in range(0, len(ids), per_group):
        frozen.set(base + timedelta(seconds=seconds * g / len(ids)))
        with transaction(engine) as session:
            journey = service.get_journey(session, setup.workspace_id, setup.lateness_journey_id)
            version, definition = service.published_definition(session, journey)
            enrolment.enrol(session, setup.workspace_id, journey.id, version.id, definition,
                            [enrolment.Entrant(c, "lateness") for c in ids[g:g + per_group]])
            from siyu.journeys.engine import execute_due

            while execute_due(session)[0]:
                pass
    install_clock(offset)
    # real time flows from "the first wait ends in 2 s"
    offset.value = (base + timedelta(days=1) - datetime.now(UTC)).total_seconds() - 2
    started_at = base + timedelta(days=1)
    end = time.perf_counter() + seconds + 30
    from siyu.journeys.engine import run_due_steps

    while time.perf_counter() < end:
        if workers is None:
            if run_due_steps(engine, max_batches=1) == 0:
                time.sleep(0.02)
        else:
            time.sleep(0.2)
        if not unfinished(engine, setup.lateness_journey_id, ["wait"]):
            break
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT l.executed_at, l.due_at FROM journey_step_log l JOIN journey_runs r ON r.id = l.run_id "
            "WHERE r.journey_id = :j AND l.step_id = 'wait'"), {"j": setup.lateness_journey_id}).all()
    values = []
    for executed_at, due_at in rows:
        a = executed_at if isinstance(executed_at, datetime) else datetime.fromisoformat(executed_at)
        b = due_at if isinstance(due_at, datetime) else datetime.fromisoformat(due_at)
        if b.replace(tzinfo=None) >= started_at.replace(tzinfo=None):
            values.append((a.replace(tzinfo=None) - b.replace(tzinfo=None)).total_seconds())
    return values


def check_no_duplicates(engine: Engine, setup: Setup, cause: str) -> dict[str, int]:
    """Exactly one message, one coupon and one task per run that went that way; no step twice."""
    with engine.connect() as conn:
        runs = conn.scalar(text("SELECT count(*) FROM journey_runs WHERE journey_id = :j AND entry_key = :c"),
                           {"j": setup.journey_id, "c": cause})
        to_coupon = conn.scalar(text(
            "SELECT count(*) FROM journey_step_log l JOIN journey_runs r ON r.id = l.run_id "
            "WHERE r.entry_key = :c AND l.step_id = 'check' AND l.outcome = 'then'"), {"c": cause})
        messages = conn.scalar(text("SELECT count(*) FROM outbox WHERE idempotency_key LIKE :p"),
                               {"p": "journey:%:message"})
        message_keys = conn.scalar(text("SELECT count(DISTINCT idempotency_key) FROM outbox "
                                        "WHERE idempotency_key LIKE :p"), {"p": "journey:%:message"})
        coupons = conn.scalar(text("SELECT count(*) FROM coupons WHERE cause_key LIKE :p"), {"p": "journey:%:coupon"})
        tasks = conn.scalar(text("SELECT count(*) FROM staff_tasks WHERE cause_key LIKE :p"), {"p": "journey:%:task"})
        gaps = conn.scalar(text("SELECT count(*) FROM (SELECT run_id FROM journey_step_log GROUP BY run_id "
                                "HAVING count(*) <> max(seq) + 1) g"))
        coupon_runs = conn.scalar(text(
            "SELECT count(*) FROM journey_step_log WHERE step_id = 'coupon'"))
        task_runs = conn.scalar(text("SELECT count(*) FROM journey_step_log WHERE step_id = 'task'"))
        message_runs = conn.scalar(text("SELECT count(*) FROM journey_step_log WHERE step_id = 'message'"))
    problems = []
    if messages != message_runs or message_keys != messages:
        problems.append(f"messages {messages} (distinct keys {message_keys}) for {message_runs} message steps")
    if coupons != coupon_runs:
        problems.append(f"coupons {coupons} for {coupon_runs} coupon steps")
    if tasks != task_runs:
        problems.append(f"tasks {tasks} for {task_runs} task steps")
    if gaps:
        problems.append(f"{gaps} runs with a gap or a repeat in their step log")
    if problems:
        raise SystemExit("DUPLICATED OR LOST SIDE EFFECTS: " + "; ".join(problems))
    return {"runs": int(runs or 0), "to_coupon": int(to_coupon or 0), "messages": int(messages or 0),
            "coupons": int(coupons or 0), "tasks": int(tasks or 0)}


# -- one backend ------------------------------------------------------------------------------------

def bench_backend(backend: str, url: str, customers: int, worker_count: int, kill: bool) -> None:
    from siyu.db.session import make_engine

    print(f"\n--- {backend}: {customers:,} customers, "
          f"{'the in-process worker' if backend == 'sqlite' else f'{worker_count} worker processes'} ---", flush=True)
    offset = mp.get_context("fork").Value("d", 0.0)
    setup = prepare(url, customers, offset)
    engine = make_engine(url, immediate=backend == "sqlite")
    workers = Workers(url, worker_count, offset) if backend == "postgresql" else None
    try:
        if workers is not None:
            workers.start()
        mark = (executed(engine, setup.journey_id), time.perf_counter())
        enrol_all(engine, setup, setup.customer_ids, "main")
        steps, seconds = drain(engine, setup, offset, ["message"], workers, since=mark)
        total_steps, total_seconds = steps, seconds
        figure(f"{backend}: enter + send message ({worker_count if workers else 1} worker)", steps / seconds,
               "steps/s", ">= 3,000 SQLite, >= 5,000 PG×4")
        with engine.connect() as conn:
            expected = int(conn.scalar(text("SELECT count(*) FROM journey_runs WHERE journey_id = :j"),
                                       {"j": setup.journey_id}) or 0)
        then = sum(1 for i in range(len(setup.customer_ids)) if CITIES[i % len(CITIES)] in HOLDS)
        mark = (executed(engine, setup.journey_id), time.perf_counter())
        offset.value += DAY
        steps, seconds = drain(engine, setup, offset, ["wait", "check", "coupon"], workers,
                               kill_every=2.0 if kill and workers is not None else 0.0, since=mark)
        if steps != expected * 2 + then * 2:
            raise SystemExit(f"{steps:,} steps executed after the day passed, {expected * 2 + then * 2:,} expected")
        total_steps, total_seconds = total_steps + steps, total_seconds + seconds
        label = "wait → condition → coupon → task"
        figure(f"{backend}: {label}", steps / seconds, "steps/s", ">= 3,000 SQLite, >= 5,000 PG×4")
        figure(f"{backend}: all five steps ({total_steps:,} executions)", total_steps / total_seconds, "steps/s",
               ">= 3,000 SQLite, >= 5,000 PG×4")
        if workers is not None and kill:
            figure(f"{backend}: workers killed (SIGKILL) while draining", workers.kills, "kills")
        result = check_no_duplicates(engine, setup, "main")
        figure(f"{backend}: duplicated side effects after kills", 0, "", "0")
        print(f"  checked: {result}", flush=True)
        throughput = total_steps / total_seconds
        rate = max(50.0, min(throughput / 3, 3000.0))
        late = lateness(engine, setup, offset, workers, rate, 60.0)
        if late:
            late.sort()
            p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
            figure(f"{backend}: p99 lateness of due steps at {rate:,.0f} due/s ({len(late):,} waits)", p99, "s",
                   "< 5 s")
            figure(f"{backend}: median lateness", statistics.median(late), "s")
    finally:
        if workers is not None:
            workers.close()
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=4, help="worker processes on PostgreSQL")
    parser.add_argument("--no-kill", action="store_true", help="do not kill workers on PostgreSQL")
    args = parser.parse_args(argv)
    if args.backend in ("sqlite", "both"):
        bench_backend("sqlite", scratch_sqlite("journeys"), args.customers, 1, False)
    if args.backend in ("postgresql", "both"):
        with scratch_postgres("journeys") as url:
            bench_backend("postgresql", url, args.customers, args.workers, not args.no_kill)


if __name__ == "__main__":
    main()
