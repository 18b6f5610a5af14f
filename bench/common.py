"""Helpers shared by the benchmarks: scratch databases, timing, figures."""

from __future__ import annotations

import os
import random
import resource
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

DATA = Path(__file__).parent / ".data"
PG_ADMIN = os.environ.get("SIYU_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def scratch_sqlite(name: str) -> str:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


@contextmanager
def scratch_postgres(name: str) -> Iterator[str]:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    db = f"siyu_bench_{name}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def scratch_database(name: str, backend: str) -> Iterator[str]:
    if backend == "postgresql":
        with scratch_postgres(name) as url:
            yield url
    else:
        yield scratch_sqlite(name)


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def peak_rss_mb(children: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024


def machine_speed() -> None:
    """Print what else the machine runs and how fast it is now: figures are only comparable with these
    (on a shared machine they vary by twice between days). Two reference works, best of three: a
    pure-Python loop, and 200,000 rows into an SQLite table with two indexes (memory-bound work, which
    varies more than the loop)."""
    figure("load average (1 min) when starting", os.getloadavg()[0], "")
    figure("reference CPU work (10M Python additions; lower is faster)", min(_loop() for _ in range(3)), "s")
    figure("reference SQLite insert (200k rows, 2 indexes; lower is faster)",
           min(_sqlite_inserts() for _ in range(3)), "µs/row")


def _loop() -> float:
    start = time.process_time()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.process_time() - start


def _sqlite_inserts(count: int = 200_000) -> float:
    rng = random.Random(1)
    rows = [(n, f"event-{rng.randrange(10**9)}-{n}", rng.randrange(10**6),
             f"2026-{rng.randrange(1, 13):02d}-01 10:00:00") for n in range(count)]
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / "reference.db"
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, key TEXT UNIQUE, customer INTEGER, at TEXT)")
        connection.execute("CREATE INDEX t_customer_at ON t (customer, at)")
        start = time.perf_counter()
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
        return (time.perf_counter() - start) / count * 1e6
    finally:
        connection.close()
        path.unlink(missing_ok=True)


def figure(label: str, value: float, unit: str, target: str = "") -> None:
    suffix = f"   (target {target})" if target else ""
    print(f"{label:<58} {value:>12,.1f} {unit}{suffix}", flush=True)
