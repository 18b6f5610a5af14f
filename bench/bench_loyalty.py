"""Loyalty benchmarks (issue 5).

- Replaying stored `order_paid` events through points earning and tier evaluation as `siyu loyalty
  replay` does, in batches of an import's size (siyu.events.importer.BATCH events, the command's
  default) and of the API's (1,000 events, what the worker receives from API batches): events/s on
  SQLite and PostgreSQL; then the same events again, which must change nothing.
- Monthly benefit issuance (a coupon per member per month): members/s and total time; a re-run
  issues nothing.

    python -m bench.bench_loyalty                                   # 100k events / 20k members, 100k benefit members
    python -m bench.bench_loyalty --events 1000000 --members 100000 --benefit-members 1000000   # the issue's sizes
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from bench.common import figure, scratch_postgres, scratch_sqlite
from siyu.db.bulk import Bulk, chunks
from siyu.db.migrate import upgrade
from siyu.db.session import make_engine, transaction
from siyu.events.importer import BATCH as IMPORT_BATCH
from siyu.kit.clock import FrozenClock, use_clock
from siyu.workspaces.service import WorkspaceContext, context_of, create_workspace

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
API_BATCH = 1000
SKUS = [("MILK-800", "母婴/奶粉", 29800), ("DIAPER-L", "母婴/纸尿裤", 15900), ("MASK-10", "美妆/面膜", 9900),
        ("SERUM-30", "美妆/护肤", 45900)]


@contextmanager
def database(backend: str, name: str) -> Iterator[str]:
    if backend == "postgresql":
        with scratch_postgres(name) as url:
            yield url
    else:
        yield scratch_sqlite(name)


def new_workspace(engine: Engine, slug: str, *, monthly_coupons: bool = False) -> WorkspaceContext:
    from siyu.coupons.schemas import TemplateIn
    from siyu.coupons.service import create_template
    from siyu.loyalty.schemas import ProgrammeIn, TierIn
    from siyu.loyalty.service import configure_programme, set_tiers

    with transaction(engine) as session:
        ctx = context_of(create_workspace(session, slug, slug))
        configure_programme(session, ctx, ProgrammeIn(name="bench", member_day=18), actor="bench")
        coupons = [create_template(session, ctx, TemplateIn(name=f"¥{yuan} 月券", kind="amount_off",
                                                            amount_off_fen=yuan * 100, valid_days=31),
                                   actor="bench").id if monthly_coupons else None for yuan in (5, 10, 20)]
        set_tiers(session, ctx, [
            TierIn(code="member", name="普通会员", threshold=0, monthly_coupon_template_id=coupons[0]),
            TierIn(code="silver", name="银卡", threshold=200_000, validity_months=12, points_multiplier_percent=150,
                   monthly_coupon_template_id=coupons[1]),
            TierIn(code="gold", name="金卡", threshold=800_000, validity_months=12, points_multiplier_percent=200,
                   member_day_multiplier_percent=200, monthly_coupon_template_id=coupons[2]),
        ], actor="bench")
    return ctx


def seed_members(engine: Engine, ctx: WorkspaceContext, count: int) -> list[int]:
    """Customers and their memberships, written straight to the tables (set-up, not measured)."""
    from siyu.loyalty.models import Tier

    with transaction(engine) as session:
        base = session.scalars(select(Tier.id).where(Tier.workspace_id == ctx.id, Tier.rank == 0)).one()
        bulk = Bulk(session)
        ids = bulk.allocate_ids("customers", count)
        now = bulk.ts(NOW)
        birthday_month = [1 + n % 12 for n in range(count)]
        for part in chunks(list(zip(ids, birthday_month, strict=True)), 20_000):
            bulk.insert("customers", ("id", "workspace_id", "attributes", "birthday", "created_at", "updated_at"),
                        [(cid, ctx.id, bulk.json({}), bulk.day(datetime(1990, m, 5).date()), now, now)
                         for cid, m in part])
        for start in range(0, count, 20_000):
            part = ids[start:start + 20_000]
            bulk.insert("loyalty_members", (
                "workspace_id", "customer_id", "member_number", "status", "tier_id", "tier_reached_at",
                "points_balance", "points_pending", "points_debt", "consent_at", "consent_channel",
                "consent_text_version", "enrolled_at", "updated_at"),
                [(ctx.id, cid, f"B{start + n:09d}", "active", base, now, 0, 0, 0, now, "bench", "v1", now, now)
                 for n, cid in enumerate(part)])
    analyze(engine)
    return ids


def seed_orders(engine: Engine, ctx: WorkspaceContext, customer_ids: list[int], count: int) -> list[int]:
    """Stored order_paid events and their orders over the past year (set-up, not measured)."""
    rng = random.Random(5)
    with transaction(engine) as session:
        bulk = Bulk(session)
        event_ids = bulk.allocate_ids("events", count)
        order_pks = bulk.allocate_ids("orders", count)
        received = bulk.ts(NOW)
        for part in chunks(list(range(count)), 20_000):
            events, orders = [], []
            for n in part:
                sku, category, price = rng.choice(SKUS)
                quantity = rng.randint(1, 3)
                at = NOW - timedelta(seconds=rng.randrange(365 * 86400))
                customer = rng.choice(customer_ids)
                props = {"order_id": f"BO-{n}", "channel": "tmall", "currency": "CNY", "total_fen": quantity * price,
                         "items": [{"sku": sku, "category": category, "quantity": quantity, "unit_price_fen": price}]}
                events.append((event_ids[n], ctx.id, f"bench-{n}", "order_paid", customer, bulk.ts(at), received,
                               bulk.json(props)))
                orders.append((order_pks[n], ctx.id, f"BO-{n}", customer, "tmall", "CNY", quantity * price, 0, 0,
                               "paid", bulk.ts(at), f"bench-{n}"))
            bulk.insert("events", ("id", "workspace_id", "event_id", "type", "customer_id", "occurred_at",
                                   "received_at", "properties"), events)
            bulk.insert("orders", ("id", "workspace_id", "order_id", "customer_id", "channel", "currency",
                                   "total_fen", "discount_fen", "refunded_fen", "status", "paid_at", "event_id"),
                        orders)
    analyze(engine)
    return event_ids


def analyze(engine: Engine) -> None:
    """Ingestion keeps PostgreSQL's statistics current; rows written straight to the tables need this."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()


def replay(engine: Engine, ctx: WorkspaceContext, batch: int) -> tuple[float, int]:
    """What `siyu loyalty replay --batch N` does: the stored events page by page, a transaction each."""
    from siyu.loyalty.service import replay_page

    processed = 0
    start, cpu = time.perf_counter(), time.process_time()
    after: int | None = 0
    while after is not None:
        with transaction(engine) as session:
            after, done = replay_page(session, ctx, after, batch)
        processed += done.events
    seconds = time.perf_counter() - start
    print(f"    this process: {time.process_time() - cpu:.1f} s CPU in {seconds:.1f} s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    return seconds, processed


def bench_replay(backend: str, events: int, members: int, batch: int) -> None:
    from siyu.loyalty.models import Member, PointsEntry, TierChange

    with database(backend, "loyalty") as url:
        upgrade(url)
        engine = make_engine(url)
        ctx = new_workspace(engine, "replay")
        seed_orders(engine, ctx, seed_members(engine, ctx, members), events)
        seconds, processed = replay(engine, ctx, batch)
        assert processed == events, processed
        figure(f"earn + tiers, {events:,} order_paid in batches of {batch:,}, {members:,} members, {backend}",
               events / seconds, "events/s", "≥ 5,000")
        with transaction(engine) as session:
            entries = session.scalar(select(func.count()).select_from(PointsEntry))
            upgrades = session.scalar(select(func.count()).select_from(TierChange).where(TierChange.direction == "up"))
            balances = session.execute(select(func.sum(Member.points_balance), func.sum(Member.points_pending))).one()
            sums = session.execute(select(func.sum(PointsEntry.points), func.sum(PointsEntry.pending))).one()
        assert tuple(balances) == tuple(sums), (balances, sums)
        seconds, processed = replay(engine, ctx, batch)
        assert processed == 0, processed
        with transaction(engine) as session:
            assert session.scalar(select(func.count()).select_from(PointsEntry)) == entries
        figure(f"replay of the same events (changes nothing), {backend}", events / seconds, "events/s")
        print(f"    {entries:,} ledger entries, {upgrades:,} upgrades; balances equal the ledger sums", flush=True)
        engine.dispose()


def bench_benefits(backend: str, members: int) -> None:
    from siyu.coupons.models import Coupon
    from siyu.loyalty.service import run_benefits_chunk

    with database(backend, "benefits") as url:
        upgrade(url)
        engine = make_engine(url)
        ctx = new_workspace(engine, "benefits", monthly_coupons=True)
        seed_members(engine, ctx, members)

        def run(restart: bool) -> tuple[float, Any]:
            start, cpu, result = time.perf_counter(), time.process_time(), None
            while result is None or result.finished_at is None:
                with transaction(engine) as session:
                    result = run_benefits_chunk(session, ctx, "2026-12", restart=restart and result is None)
            seconds = time.perf_counter() - start
            print(f"    this process: {time.process_time() - cpu:.1f} s CPU in {seconds:.1f} s; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
            return seconds, result

        seconds, result = run(restart=False)
        with transaction(engine) as session:
            issued = session.scalar(select(func.count()).select_from(Coupon))
        assert issued == members == result.coupons_issued, (issued, members, result.coupons_issued)
        figure(f"monthly benefits, {members:,} members, {backend}", seconds, "s", "< 300 for 1,000,000")
        figure(f"  = members granted per second, {backend}", members / seconds, "members/s")
        seconds, _ = run(restart=True)
        with transaction(engine) as session:
            again = session.scalar(select(func.count()).select_from(Coupon))
        assert again == issued, (again, issued)
        figure(f"re-run of the same month (issues {again - issued}), {backend}", seconds, "s")
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--benefit-members", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--only", choices=["replay", "benefits"], default=None)
    parser.add_argument("--batch", type=int, action="append",
                        help=f"events per job (default: {IMPORT_BATCH:,} as `siyu import` sends, and {API_BATCH:,} "
                             "as the API does)")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with use_clock(FrozenClock(NOW)):
        for backend in backends:
            if args.only in (None, "replay"):
                for batch in args.batch or [IMPORT_BATCH, API_BATCH]:
                    bench_replay(backend, args.events, args.members, batch)
            if args.only in (None, "benefits"):
                bench_benefits(backend, args.benefit_members)


if __name__ == "__main__":
    main(sys.argv[1:])
