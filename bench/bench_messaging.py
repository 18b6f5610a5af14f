"""Messaging benchmarks (issue 6): a broadcast through the sandbox channel.

- fill: the contact policy evaluated set-wise and the outbox filled, recipients/s, on SQLite (and on
  PostgreSQL for reference) — with a real policy: caps of 1 a day / 3 a week, fatigue, a 5 % holdout,
  1 % of customers opted out;
- dispatch: 4 worker processes on PostgreSQL (`siyu messaging worker`, the outbox poller that every
  `siyu worker` also runs, without the other domains' jobs), messages/s; one worker is killed
  (SIGKILL) mid-run and started again; afterwards every message must be final and the sandbox must
  hold no key twice.

    python -m bench.bench_messaging                         # 100k recipients
    python -m bench.bench_messaging --recipients 1000000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from bench.common import DATA, figure, scratch_postgres, scratch_sqlite

OPTED_OUT_EVERY = 100
WORKERS = 4


def setup(url: str, recipients: int) -> tuple[Engine, int, int]:
    """A migrated database with a workspace, `recipients` customers, some opted out, a template and a
    draft broadcast to everyone. Customers are written straight to the table: the setup is not measured."""
    from siyu.db.bulk import Bulk
    from siyu.db.migrate import upgrade
    from siyu.db.session import make_engine, transaction
    from siyu.messaging.broadcasts import create_broadcast
    from siyu.messaging.settings import update_policy
    from siyu.messaging.template_service import create_template
    from siyu.workspaces.service import context_of, create_workspace

    upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        ctx = context_of(create_workspace(session, "bench", "Bench 母婴"))
        # Quiet hours off so the run does not depend on the hour; the rest of the policy stays on.
        update_policy(session, ctx.id, {"quiet_hours": None, "holdout": {"share": 0.05, "draw": "bench"},
                                        "send_lease_seconds": 5})
    now = datetime.now(UTC)
    for start in range(0, recipients, 50_000):
        with transaction(engine) as session:
            bulk = Bulk(session)
            ts = bulk.ts(now)
            ids = range(start + 1, min(start + 50_000, recipients) + 1)
            bulk.insert("customers", ("id", "workspace_id", "name", "attributes", "created_at", "updated_at"),
                        [(i, ctx.id, f"客户{i}", bulk.json({}), ts, ts) for i in ids])
            bulk.insert("contact_preferences", ("workspace_id", "customer_id", "channel", "purpose", "status",
                                                "source", "updated_at"),
                        [(ctx.id, i, "*", "marketing", "opted_out", "bench", ts) for i in ids
                         if i % OPTED_OUT_EVERY == 0])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), :n)"), {"n": recipients})
            conn.execute(text("ANALYZE"))
    with transaction(engine) as session:
        template = create_template(session, ctx, name="双11", channel="sandbox", kind="text",
                                   body="{{ customer.name }}，双11预售开启 https://shop.example/1111", actor="bench")
        broadcast = create_broadcast(session, ctx, name="双11预热", channel="sandbox", audience={"kind": "all"},
                                     variants=[{"template_id": template.id}], actor="bench")
    return engine, ctx.id, broadcast.id


def fill(engine: Engine, workspace_id: int, broadcast_id: int) -> tuple[float, float, dict[str, int]]:
    from siyu.db.session import transaction
    from siyu.messaging.broadcasts import fill_broadcast, start_broadcast
    from siyu.workspaces.service import context_of, get_workspace

    with transaction(engine) as session:
        start_broadcast(session, context_of(get_workspace(session, workspace_id)), broadcast_id, actor="bench")
    started, cpu = time.perf_counter(), time.process_time()
    fill_broadcast(engine, broadcast_id)
    return time.perf_counter() - started, time.process_time() - cpu, states(engine, broadcast_id)


def states(engine: Engine, broadcast_id: int) -> dict[str, int]:
    from siyu.messaging.models import OutboxMessage

    with engine.connect() as conn:
        rows = conn.execute(select(OutboxMessage.state, func.count()).where(OutboxMessage.broadcast_id == broadcast_id)
                            .group_by(OutboxMessage.state))
        return {state: int(count) for state, count in rows}


def bench_fill(backend: str, url: str, recipients: int) -> tuple[Engine, int, int, dict[str, int]]:
    engine, workspace_id, broadcast_id = setup(url, recipients)
    seconds, cpu, counts = fill(engine, workspace_id, broadcast_id)
    figure(f"fill on {backend}: policy + outbox, {recipients:,} recipients", recipients / seconds, "recipients/s",
           ">= 10,000/s on SQLite" if backend == "sqlite" else "")
    # On SQLite the database works inside this process, so its CPU time is the whole cost; on a
    # machine shared with other work the wall-clock rate is lower than this one.
    print(f"    {seconds:.1f} s wall, {cpu:.1f} s CPU in this process ({recipients / cpu:,.0f} per CPU-second); "
          f"load average {os.getloadavg()[0]:.1f}; outcomes {counts}", flush=True)
    return engine, workspace_id, broadcast_id, counts


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SIYU_DATABASE_URL": url, "SIYU_DATA_DIR": str(DATA / "messaging-workers")}
    return subprocess.Popen([sys.executable, "-m", "siyu.cli", "messaging", "worker", "--poll", "0.1"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def sending_attempts(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT DISTINCT attempt_id FROM outbox WHERE state = 'sending'")).scalars())


def kill_a_worker_mid_batch(engine: Engine, workers: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """SIGKILL a worker while it holds a claimed batch (the hard case: claimed, maybe sent, not recorded).
    Each candidate is frozen first; if after a while a batch is still `sending` under the same attempt,
    the frozen worker holds it and is killed; otherwise it is thawed and the next one tried."""
    for _ in range(20):
        for index, worker in enumerate(workers):
            worker.send_signal(signal.SIGSTOP)
            before = sending_attempts(engine)
            time.sleep(1.5)  # the others finish and record their batches meanwhile
            stuck = before & sending_attempts(engine)
            if stuck:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                with engine.connect() as conn:
                    held = conn.execute(text("SELECT count(*) FROM outbox WHERE state = 'sending' AND attempt_id = "
                                             "ANY(:a)"), {"a": sorted(stuck)}).scalar_one()
                return index, int(held)
            worker.send_signal(signal.SIGCONT)
    index = 0  # no batch caught in flight: kill one anyway
    workers[index].send_signal(signal.SIGKILL)
    workers[index].wait()
    return index, 0


def waiting(engine: Engine) -> tuple[int, int]:
    """Messages still due and messages being sent: two counts over partial indexes, cheap at any size."""
    with engine.connect() as conn:
        due = conn.execute(text("SELECT count(*) FROM outbox WHERE state IN ('queued', 'deferred')")).scalar_one()
        sending = conn.execute(text("SELECT count(*) FROM outbox WHERE state = 'sending'")).scalar_one()
    return int(due), int(sending)


def bench_dispatch(url: str, recipients: int) -> None:
    from siyu.db.session import transaction
    from siyu.messaging.broadcasts import pause_broadcast, resume_broadcast
    from siyu.workspaces.service import context_of, get_workspace

    engine, workspace_id, broadcast_id, counts = bench_fill("postgresql", url, recipients)
    to_send = counts.get("queued", 0)
    with transaction(engine) as session:  # hold the messages while the workers start
        pause_broadcast(session, context_of(get_workspace(session, workspace_id)), broadcast_id, actor="bench")
    log = DATA / "messaging-workers.log"
    log.unlink(missing_ok=True)
    workers = [_worker(url, log) for _ in range(WORKERS)]
    try:
        time.sleep(4)  # imports and first poll
        with transaction(engine) as session:
            resume_broadcast(session, context_of(get_workspace(session, workspace_id)), broadcast_id, actor="bench")
        started = time.perf_counter()
        killed = False
        while True:
            time.sleep(0.5)
            due, sending = waiting(engine)
            done = to_send - due - sending
            if not killed and done >= to_send * 0.4:
                index, held = kill_a_worker_mid_batch(engine, workers)
                workers[index] = _worker(url, log)
                killed = True
                print(f"    killed worker {index + 1} at about {done:,} sent, holding {held:,} messages as `sending`; "
                      f"started it again", flush=True)
            if due == 0:
                drained = time.perf_counter() - started
                break
        figure(f"dispatch, {WORKERS} workers on PostgreSQL, {done:,} messages", done / drained, "messages/s",
               ">= 5,000/s")
        deadline = time.perf_counter() + 180  # rows of the killed worker: their lease runs out, then recovery
        while waiting(engine)[1] and time.perf_counter() < deadline:
            time.sleep(0.5)
        check_no_duplicates(engine, workspace_id, broadcast_id, to_send)
    finally:
        stop(workers)
        engine.dispose()


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (a worker finishes its loop turn), then SIGKILL whatever is still running after a minute."""
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def check_no_duplicates(engine: Engine, workspace_id: int, broadcast_id: int, to_send: int) -> None:
    from siyu.messaging.models import MessageEvent, OutboxMessage, SandboxMessage

    final = states(engine, broadcast_id)
    with engine.connect() as conn:
        received = conn.execute(select(func.count(), func.count(SandboxMessage.idempotency_key.distinct()))
                                .where(SandboxMessage.workspace_id == workspace_id)).one()
        recovered: dict[str, Any] = dict(conn.execute(
            select(MessageEvent.type, func.count()).where(MessageEvent.workspace_id == workspace_id,
                                                          MessageEvent.type.in_(("recovered", "requeued", "unknown")))
            .group_by(MessageEvent.type)).all())
        not_final = conn.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.broadcast_id == broadcast_id, OutboxMessage.state.in_(("queued", "sending", "paused"))))
    duplicates = received[0] - received[1]
    sent = final.get("delivered", 0) + final.get("sent", 0)
    print(f"    after the kill: {recovered or 'nothing'} (recovered = the sandbox had it, requeued = it had not)")
    print(f"    final states {final}; sandbox received {received[0]:,} messages for {received[1]:,} keys")
    figure("duplicates after killing a worker mid-run", duplicates, "messages", "0")
    if duplicates or not_final or sent != to_send or received[1] != to_send:
        raise SystemExit(f"FAILED: duplicates={duplicates}, not final={not_final}, sent={sent} of {to_send}, "
                         f"distinct keys received={received[1]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_messaging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    engine, *_ = bench_fill("sqlite", scratch_sqlite("messaging"), args.recipients)
    engine.dispose()
    if not args.skip_postgres:
        with scratch_postgres("messaging") as url:
            bench_dispatch(url, args.recipients)


if __name__ == "__main__":
    main()
