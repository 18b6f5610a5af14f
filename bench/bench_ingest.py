"""Ingestion benchmarks (issue: foundation).

- `siyu import events` of N order_paid / page_view events for M customers, with identity
  resolution and rollups, as a separate process: events/s and peak memory, on SQLite and PostgreSQL;
- `POST /api/v1/events/batch` with 1,000 events: median latency on SQLite;
- customer detail (API and console page) of a customer with 1,000 timeline events: median latency.

    python -m bench.bench_ingest                          # 200k events, 20k customers
    python -m bench.bench_ingest --events 1000000 --customers 100000
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import DATA, figure, machine_speed, scratch_postgres, scratch_sqlite

END = datetime(2026, 11, 1, tzinfo=UTC)
LAST_CPU: list[float] = [0.0, 0.0]  # of the last `run_cli`: the command's own, its children's
SKUS = [("MILK-800", "有机奶粉 800g", "母婴/奶粉", 29800), ("DIAPER-L", "纸尿裤 L", "母婴/纸尿裤", 15900),
        ("MASK-10", "补水面膜 10片", "美妆/面膜", 9900), ("SERUM-30", "精华 30ml", "美妆/护肤", 45900)]


def make_event(rng: random.Random, n: int, customers: int) -> dict[str, Any]:
    customer = rng.randrange(customers)
    at = END - timedelta(seconds=rng.randrange(365 * 86400))
    identities: list[dict[str, Any]] = [{"type": "wechat_unionid", "value": f"bench-u-{customer}"}]
    if customer % 3 == 0:
        identities.append({"type": "phone", "value": f"+86139{customer:08d}", "verified": True})
    if rng.random() < 0.3:
        sku, name, category, price = rng.choice(SKUS)
        quantity = rng.randint(1, 3)
        return {"id": f"bench-{n}", "type": "order_paid", "occurred_at": at.isoformat(), "identities": identities,
                "properties": {"order_id": f"BO-{n}", "channel": rng.choice(["tmall", "mini_program", "douyin"]),
                               "currency": "CNY", "total_fen": quantity * price,
                               "items": [{"sku": sku, "name": name, "category": category, "quantity": quantity,
                                          "unit_price_fen": price}]}}
    return {"id": f"bench-{n}", "type": "page_view", "occurred_at": at.isoformat(), "identities": identities,
            "properties": {"page": f"/products/{rng.choice(SKUS)[0]}"}}


def write_events(path: Path, events: int, customers: int) -> None:
    if path.exists():
        return
    rng = random.Random(7)
    with path.open("wb") as handle:
        for n in range(events):
            handle.write(orjson.dumps(make_event(rng, n, customers)) + b"\n")


def run_cli(args: list[str], url: str, data_dir: Path) -> tuple[float, float, str]:
    """Run `siyu ...` in a child process; returns seconds, peak RSS in MB and its output.

    The peak is the command's own plus that of the largest process it started (the import's
    reading process): both are alive together, so the sum bounds what the import needs."""
    env = {**os.environ, "SIYU_DATABASE_URL": url, "SIYU_DATA_DIR": str(data_dir)}
    code = ("import resource, sys; from siyu.cli import app\n"
            "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]\n"
            "print('PEAK_RSS_KB', sum(u.ru_maxrss for u in usage), file=sys.stderr)\n"
            "print('CPU_SECONDS', *(u.ru_utime + u.ru_stime for u in usage), file=sys.stderr)\n"
            "sys.exit(code)\n")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"siyu {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    peak = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    cpu = next(line.split()[1:] for line in proc.stderr.splitlines() if line.startswith("CPU_SECONDS"))
    LAST_CPU[:] = [float(value) for value in cpu]
    return seconds, peak / 1024, proc.stdout


def bench_import(backend: str, url: str, path: Path, events: int) -> None:
    data_dir = DATA / f"import-{backend}"
    run_cli(["db", "upgrade"], url, data_dir)
    run_cli(["workspace", "create", "bench"], url, data_dir)
    seconds, peak_mb, output = run_cli(["import", "events", str(path), "-w", "bench"], url, data_dir)
    summary = orjson.loads(output.strip().splitlines()[-1])
    assert summary["accepted"] == events, summary
    target = "≥ 30,000" if backend == "sqlite" else "≥ 15,000"
    figure(f"import {events:,} events on {backend}", events / seconds, "events/s", target)
    figure(f"import peak memory on {backend} (both processes)", peak_mb, "MB", "< 500")
    # Where the time goes: the storing process (the command) and the reading one, in CPU seconds.
    figure(f"import CPU of the storing process on {backend}", LAST_CPU[0], "s")
    figure(f"import CPU of the reading process on {backend}", LAST_CPU[1], "s")
    seconds, _, output = run_cli(["import", "events", str(path), "-w", "bench"], url, data_dir)
    summary = orjson.loads(output.strip().splitlines()[-1])
    assert summary["accepted"] == 0 and summary["duplicate"] == events, summary
    figure(f"re-import (all duplicates) on {backend}", events / seconds, "events/s")


def bench_api(url: str) -> None:
    from fastapi.testclient import TestClient

    from siyu.config import Settings
    from siyu.db.migrate import upgrade
    from siyu.db.session import make_engine, transaction
    from siyu.web.app import create_app
    from siyu.workspaces.service import create_api_key, create_user, create_workspace

    upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        workspace = create_workspace(session, "api", "API bench")
        _, secret = create_api_key(session, workspace, "bench", "owner")
        create_user(session, workspace, "bench@siyu.local", "bench", "bench-password", "owner")
    app = create_app(Settings(data_dir=DATA, database_url=url, secret_key="bench"), engine, run_worker=False)
    rng = random.Random(11)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        latencies = []
        for round_ in range(20):
            batch = [make_event(rng, round_ * 1000 + i, 5000) for i in range(1000)]
            start = time.perf_counter()
            response = client.post("/api/v1/events/batch", json={"events": batch})
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200 and response.json()["accepted"] == 1000, response.text[:300]
        figure("POST /events/batch (1,000 events) median on sqlite", statistics.median(latencies), "ms", "< 250")
        bench_detail(client, rng)


def bench_detail(client: Any, rng: random.Random) -> None:
    events = [make_event(rng, 10_000_000 + i, 1) for i in range(1000)]
    for event in events:
        event["identities"] = [{"type": "wechat_unionid", "value": "detail-bench"}]
    client.post("/api/v1/events/batch", json={"events": events})
    customer_id = client.get("/api/v1/customers", params={"identity_type": "wechat_unionid",
                                                          "identity_value": "detail-bench"}).json()["items"][0]["id"]
    for label, path in (("API customer detail", f"/api/v1/customers/{customer_id}"),
                        ("API customer timeline (first page)", f"/api/v1/customers/{customer_id}/timeline")):
        figure(f"{label}, 1,000 events, median", _median_ms(client, path), "ms", "< 100")
    client.headers.pop("Authorization")  # the console is a person signed in through its form
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    login = client.post("/login", data={"email": "bench@siyu.local", "password": "bench-password",
                                        "csrf_token": token.group(1) if token else ""}, follow_redirects=False)
    if login.status_code != 303:
        raise SystemExit(f"console sign-in failed ({login.status_code}): {login.text[:300]}")
    figure("console customer detail page, 1,000 events, median",
           _median_ms(client, f"/customers/{customer_id}"), "ms", "< 100")


def _median_ms(client: Any, path: str, rounds: int = 30) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    DATA.mkdir(parents=True, exist_ok=True)
    machine_speed()
    path = DATA / f"events-{args.events}-{args.customers}.jsonl"
    write_events(path, args.events, args.customers)
    bench_import("sqlite", scratch_sqlite("import"), path, args.events)
    if not args.skip_postgres:
        with scratch_postgres("import") as url:
            bench_import("postgresql", url, path, args.events)
    bench_api(scratch_sqlite("api"))


if __name__ == "__main__":
    main(sys.argv[1:])
