"""Segment benchmarks (issue 4: tags, segments and customer layering).

Builds a brand of N customers with ~20 events each (orders, order items, identities, rollups and a
manual tag on 30% of customers), loaded with bulk driver writes, then measures:

- preview count of a rule with three conditions — a tag, ≥ 2 orders in the last 90 days, total
  spend ≥ ¥1,000 — (target < 2 s at 1M customers / 20M events);
- full refresh of that segment, membership diff written and entry events recorded (< 20 s);
- incremental re-evaluation of one customer across 50 segments after one new event (< 20 ms);
- RFM scoring of every customer (< 30 s); and, for reference, lifecycle staging of everyone.

    python -m bench.bench_segments                       # 200k customers, SQLite and PostgreSQL
    python -m bench.bench_segments --customers 1000000 --reuse
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select, text
from sqlalchemy.schema import CreateIndex

from bench.common import DATA, figure, scratch_postgres
from siyu.db import models  # noqa: F401  (every table in the metadata)
from siyu.db.base import Base
from siyu.db.migrate import upgrade
from siyu.db.session import make_engine, transaction
from siyu.events.service import ingest_events
from siyu.kit.clock import FrozenClock, use_clock
from siyu.segments.lifecycle import update_lifecycle
from siyu.segments.refresh import load_targets, reevaluate_customers, refresh_target
from siyu.segments.rfm import score_rfm
from siyu.segments.service import create_segment, preview_rule
from siyu.tags.service import create_tag
from siyu.workspaces.service import WorkspaceContext, context_of, create_workspace, get_workspace

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
CHUNK = 20_000
CITIES = ["上海", "杭州", "北京", "深圳", "成都", "南京", "苏州", "武汉", None]
CATEGORIES = [("MILK-800", "母婴/奶粉", 29800), ("DIAPER-L", "母婴/纸尿裤", 15900), ("FOOD-1", "母婴/辅食", 6800),
              ("MASK-10", "美妆/面膜", 9900), ("SERUM-30", "美妆/护肤", 45900), ("LIP-1", "美妆/彩妆", 19900)]
EVENT_TYPES = ["page_view"] * 10 + ["message_received"] * 4 + ["check_in"] * 2 + ["share"]
BULK_TABLES = ("customers", "identities", "events", "orders", "order_items", "customer_rollups", "customer_tags")
THREE_CONDITIONS = {"all": [{"kind": "tag", "op": "has_any", "tags": [1]},
                            {"kind": "order", "measure": "count", "window": 90, "op": "gte", "value": 2},
                            {"kind": "order", "measure": "total_spend_fen", "op": "gte", "value": 100_000}]}


# -- the brand ----------------------------------------------------------------------------------------

COLUMNS = {
    "customers": ("id", "workspace_id", "name", "gender", "birthday", "city", "attributes", "acquisition_channel",
                  "first_seen_at", "last_seen_at", "created_at", "updated_at"),
    "identities": ("id", "workspace_id", "customer_id", "type", "namespace", "value", "verified", "created_at"),
    "events": ("id", "workspace_id", "event_id", "type", "customer_id", "occurred_at", "received_at", "properties"),
    "orders": ("id", "workspace_id", "order_id", "customer_id", "channel", "currency", "total_fen", "discount_fen",
               "refunded_fen", "status", "paid_at", "event_id"),
    "order_items": ("id", "order_pk", "workspace_id", "customer_id", "sku", "name", "category", "quantity",
                    "unit_price_fen", "paid_at"),
    "customer_rollups": ("customer_id", "workspace_id", "orders_count", "total_spend_fen", "refunded_fen",
                         "first_order_at", "last_order_at", "last_interaction_at", "events_count"),
    "customer_tags": ("tag_id", "customer_id", "workspace_id", "source", "added_by", "added_at"),
}
MINUTES = 400 * 24 * 60


class Loader:
    """Writes rows straight through the driver: executemany on SQLite, COPY on PostgreSQL. Times are
    whole minutes before NOW, formatted once each as the text both stores read."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.raw = engine.raw_connection()
        suffix = "+00" if self.postgres else ".000000"
        self.times = [(NOW - timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S") + suffix for m in range(MINUTES)]
        self.true: Any = "t" if self.postgres else 1
        self.false: Any = "f" if self.postgres else 0

    def begin(self) -> None:
        if not self.postgres:  # siyu's SQLite connections run in autocommit until told otherwise
            self.raw.cursor().execute("BEGIN")

    def write(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = COLUMNS[table]
        cursor = self.raw.cursor()
        if self.postgres:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for values in rows:
                    copy.write_row(values)
        else:
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        cursor.close()

    def drop_indexes(self) -> None:
        cursor = self.raw.cursor()
        for table in BULK_TABLES:
            for index in Base.metadata.tables[table].indexes:
                cursor.execute(f"DROP INDEX IF EXISTS {index.name}")
        cursor.close()
        self.raw.commit()

    def create_indexes(self) -> None:
        cursor = self.raw.cursor()
        for table in BULK_TABLES:
            for index in Base.metadata.tables[table].indexes:
                cursor.execute(str(CreateIndex(index).compile(dialect=self.engine.dialect)))
        if self.postgres:
            for table in ("customers", "identities", "events", "orders", "order_items"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.close()
        self.raw.commit()
        if self.postgres:  # what autovacuum does for a loaded table: statistics and the visibility map
            self.raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            self.raw.cursor().execute("VACUUM ANALYZE")
            self.raw.driver_connection.autocommit = False  # type: ignore[union-attr]
        else:
            self.raw.cursor().execute("ANALYZE")


def build_brand(engine: Engine, customers: int, events_per_customer: int, seed: int = 4) -> WorkspaceContext:
    with transaction(engine) as session:
        ctx = context_of(create_workspace(session, "bench", "小林母婴美妆"))
        create_tag(session, ctx, name="VIP", actor="bench")  # tag 1, worn by 30% of customers
    loader = Loader(engine)
    if not loader.postgres:
        loader.raw.cursor().execute("PRAGMA synchronous=OFF")
    loader.drop_indexes()
    brand = _Brand(random.Random(seed), ctx.id, events_per_customer, loader)
    started = time.perf_counter()
    for first in range(1, customers + 1, CHUNK):
        brand.rows = {t: [] for t in BULK_TABLES}
        for cid in range(first, min(first + CHUNK, customers + 1)):
            brand.customer(cid)
        loader.begin()
        for table in BULK_TABLES:
            loader.write(table, brand.rows[table])
        loader.raw.commit()
        done = min(first + CHUNK - 1, customers)
        print(f"  loaded {done:,} customers, {brand.event_id:,} events ({time.perf_counter() - started:.0f} s)",
              end="\r", flush=True)
    print()
    with_indexes = time.perf_counter()
    loader.create_indexes()
    figure("indexes built and analysed", time.perf_counter() - with_indexes, "s")
    loader.raw.close()
    return ctx


class _Brand:
    """One customer at a time: profile, identities, orders with their items and events, other events,
    the rollup, and the VIP tag for 30% of them."""

    def __init__(self, rng: random.Random, workspace_id: int, per_customer: int, loader: Loader) -> None:
        self.random = rng.random
        self.ws = workspace_id
        self.per_customer = per_customer
        self.t = loader.times
        self.true, self.false = loader.true, loader.false
        self.pages = [orjson.dumps({"page": f"/p/{n}"}).decode() for n in range(200)]
        self.levels = [orjson.dumps({"level": level}).decode() for level in ("gold", "silver", "bronze")]
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.identity_id = self.event_id = self.order_id = 0

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        return options[int(self.random() * len(options))]

    def minute(self, within_days: int) -> int:
        return int(self.random() * within_days * 1440)

    def customer(self, cid: int) -> None:
        r, t, rows, ws = self.random, self.t, self.rows, self.ws
        seen = t[self.minute(399)]
        birthday = f"{1970 + int(r() * 33)}-{1 + int(r() * 12):02d}-{1 + int(r() * 28):02d}" if r() < 0.6 else None
        rows["customers"].append((cid, ws, f"客户{cid}", self.pick(("female", "female", "male", None)), birthday,
                                  self.pick(CITIES), self.pick(self.levels) if r() < 0.4 else "{}",
                                  self.pick(("douyin", "xhs", "tmall", "live_code")), seen, t[self.minute(60)], seen,
                                  seen))
        for identity_type, value in (("wechat_unionid", f"u{cid}"),
                                     *((("wecom_external_userid", f"wm{cid}"),) if r() < 0.4 else ())):
            self.identity_id += 1
            rows["identities"].append((self.identity_id, ws, cid, identity_type, "", value, self.false, seen))
        n_events = int(r() * (2 * self.per_customer + 1))
        n_orders = min(n_events, self.pick((1, 1, 2, 3, 4, 6, 8))) if r() < 0.3 else 0
        count = spend = 0
        paid = []
        for _ in range(n_orders):
            at = self.minute(365)
            sku, category, price = self.pick(CATEGORIES)
            quantity = 1 + int(r() * 4)
            total = quantity * price
            refunded = r() < 0.03
            self.order_id += 1
            self.event_id += 1
            rows["orders"].append((self.order_id, ws, f"O{self.order_id}", cid, "tmall", "CNY", total, 0,
                                   total if refunded else 0, "refunded" if refunded else "paid", t[at],
                                   f"e{self.event_id}"))
            rows["order_items"].append((self.order_id, self.order_id, ws, cid, sku, sku, category, quantity, price,
                                        t[at]))
            rows["events"].append((self.event_id, ws, f"e{self.event_id}", "order_paid", cid, t[at], t[at],
                                   f'{{"order_id": "O{self.order_id}", "total_fen": {total}}}'))
            if not refunded:
                count, spend = count + 1, spend + total
                paid.append(at)
        latest = min(paid, default=None)
        for _ in range(n_events - n_orders):
            at = self.minute(365)
            kind = self.pick(EVENT_TYPES)
            self.event_id += 1
            rows["events"].append((self.event_id, ws, f"e{self.event_id}", kind, cid, t[at], t[at],
                                   self.pick(self.pages) if kind == "page_view" else "{}"))
            latest = at if latest is None else min(latest, at)
        rows["customer_rollups"].append((cid, ws, count, spend, 0, t[max(paid)] if paid else None,
                                         t[min(paid)] if paid else None, t[latest] if latest is not None else None,
                                         n_events))
        if r() < 0.3:
            rows["customer_tags"].append((1, cid, ws, "manual", "bench", seen))


def fifty_rules() -> list[dict[str, Any]]:
    """Fifty segment rules of the kinds operators write, over every source a rule can read; each
    selects a few percent of the customers, as targeting segments do."""
    rules: list[dict[str, Any]] = []
    for i in range(10):
        rules.append({"all": [{"kind": "tag", "op": "has_any", "tags": [1]},
                              {"kind": "order", "measure": "count", "window": 30 + 30 * i, "op": "gte", "value": 2},
                              {"kind": "order", "measure": "total_spend_fen", "op": "gte", "value": 50_000 * (i + 1)}]})
        rules.append({"kind": "event", "event_type": "page_view", "aggregate": "count", "window": 7 + 7 * (i % 3),
                      "op": "gte", "value": 2 + i % 3})
        rules.append({"all": [{"kind": "bought", "category": CATEGORIES[i % 6][1], "window": 30 + 10 * i},
                              {"not": {"kind": "order", "measure": "days_since_last_order", "op": "gte",
                                       "value": 10 + 2 * i}}]})
        rules.append({"all": [{"kind": "profile", "field": "city", "op": "eq", "value": CITIES[i % 8]},
                              {"kind": "identity", "identity_type": "wecom_external_userid", "op": "present"},
                              {"kind": "event", "event_type": "check_in", "aggregate": "last", "op": "lt",
                               "value": 30 + 3 * i}]})
        rules.append({"all": [{"kind": "attribute", "key": "level", "op": "eq", "value": "gold"},
                              {"any": [{"kind": "order", "measure": "average_order_fen", "op": "gte",
                                        "value": 80_000 + i * 5000},
                                       {"kind": "profile", "field": "birthday", "op": "within_next_days",
                                        "value": 7 + i}]}]})
    return rules


# -- the figures --------------------------------------------------------------------------------------

def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure(engine: Engine, ctx: WorkspaceContext, label: str) -> None:
    for attempt in ("cold", "warm"):
        with transaction(engine) as session:
            seconds, preview = timed(partial(preview_rule, session, ctx, THREE_CONDITIONS))
        figure(f"{label}: preview, 3 conditions ({attempt}; {preview.count:,} match)", seconds, "s", "< 2 s")

    with transaction(engine) as session:
        segment = create_segment(session, ctx, name="VIP 复购", actor="bench", rule=THREE_CONDITIONS)
    for attempt in ("first: everyone enters", "again: no change"):
        with transaction(engine) as session:
            target = next(t for t in load_targets(session, ctx.id) if t.key == ("segment", segment.id))
            seconds, outcome = timed(partial(refresh_target, session, ctx, target))
        figure(f"{label}: full refresh, {attempt} ({outcome.entered:,} in, {outcome.exited:,} out)", seconds, "s",
               "< 20 s")

    with transaction(engine) as session:
        existing = {t.name for t in load_targets(session, ctx.id)}
        for i, rule in enumerate(fifty_rules()[1:]):
            if f"segment {i}" not in existing:  # a reused brand keeps its segments
                create_segment(session, ctx, name=f"segment {i}", actor="bench", rule=rule)
    started = time.perf_counter()
    with transaction(engine) as session:
        targets = load_targets(session, ctx.id)
    refreshed = [t for t in targets if t.last_refreshed_at is None]
    for target in refreshed:
        with transaction(engine) as session:
            refresh_target(session, ctx, target)
    if refreshed:
        figure(f"{label}: full refresh of {len(refreshed)} new segments (first fill)", time.perf_counter() - started,
               "s")

    with transaction(engine) as session:
        customers = int(session.scalar(select(func.max(text("id"))).select_from(text("customers"))) or 0)
    rng = random.Random(11)
    timings = []
    for n in range(60):  # the first ten warm the caches (compiled rules, prepared statements)
        customer = rng.randrange(1, customers + 1)
        with transaction(engine) as session:
            ingest_events(session, ctx, [{"id": f"bench-live-{n}", "type": "page_view", "occurred_at": NOW.isoformat(),
                                          "identities": [{"type": "wechat_unionid", "value": f"u{customer}"}],
                                          "properties": {"page": "/promo"}}])
        started = time.perf_counter()
        with transaction(engine) as session:
            reevaluate_customers(session, ctx, [customer])
        timings.append((time.perf_counter() - started) * 1000)
    timings = sorted(timings[10:])
    figure(f"{label}: re-evaluate 1 customer × {len(targets)} segments (median)", statistics.median(timings), "ms",
           "< 20 ms")
    figure(f"{label}: re-evaluate 1 customer × {len(targets)} segments (p90)", timings[int(len(timings) * 0.9)], "ms")

    with transaction(engine) as session:
        seconds, summary = timed(partial(score_rfm, session, ctx))
    figure(f"{label}: RFM of all customers ({summary['customers']:,} scored)", seconds, "s", "< 30 s")
    with transaction(engine) as session:
        seconds, _ = timed(partial(update_lifecycle, session, ctx))
    figure(f"{label}: lifecycle stage of all customers", seconds, "s")


def run_on(url: str, label: str, customers: int, per_customer: int, reuse: bool) -> None:
    engine = make_engine(url)
    with use_clock(FrozenClock(NOW)):
        fresh = True
        if reuse:
            with transaction(engine) as session:
                fresh = session.scalar(text("SELECT count(*) FROM customers")) != customers
        if fresh:
            print(f"{label}: building a brand of {customers:,} customers …", flush=True)
            seconds, ctx = timed(partial(build_brand, engine, customers, per_customer))
            figure(f"{label}: brand built", seconds, "s")
        else:
            with transaction(engine) as session:
                ctx = context_of(get_workspace(session, "bench"))
                session.execute(text("DELETE FROM segments WHERE name = 'VIP 复购'"))
        with transaction(engine) as session:
            events = session.scalar(text("SELECT count(*) FROM events"))
        print(f"{label}: {customers:,} customers, {events:,} events")
        measure(engine, ctx, label)
    engine.dispose()


def sqlite_database(customers: int, reuse: bool) -> AbstractContextManager[str]:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"segments-{customers}.db"
    if not reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    return nullcontext(url)


def postgres_database() -> Iterator[str]:
    with scratch_postgres("segments") as url:
        upgrade(url)
        yield url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--events-per-customer", type=int, default=20)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the SQLite brand between runs")
    args = parser.parse_args(argv)
    if not args.skip_sqlite:
        with sqlite_database(args.customers, args.reuse) as url:
            run_on(url, "SQLite", args.customers, args.events_per_customer, args.reuse)
    if not args.skip_postgres:
        for url in postgres_database():
            run_on(url, "PostgreSQL", args.customers, args.events_per_customer, reuse=False)


if __name__ == "__main__":
    main()
