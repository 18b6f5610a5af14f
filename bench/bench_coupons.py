"""Coupon benchmarks (issue 5): concurrent redemption on PostgreSQL.

N coupons are issued; C client processes (checkouts) redeem them at once, each redemption its own
unit of work as the API's request runs it (one session factory per process, a session per request).
Every code belongs to one client; a share of the codes (`--duplicates`, default 25%) is also tried by
another client at the same time (a double submit, a shared code), and `--duplicates 1` makes every
code a race. Figures: successful redemptions per second, attempts per second, and double
redemptions — which must be zero: every coupon has exactly one redemption and is `redeemed`.

    python -m bench.bench_coupons                      # 20,000 coupons, 8 clients, 25% raced
    python -m bench.bench_coupons --coupons 100000 --duplicates 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from bench.common import figure, scratch_postgres
from siyu.db.bulk import Bulk
from siyu.db.migrate import upgrade
from siyu.db.session import make_engine, transaction
from siyu.kit.clock import FrozenClock, use_clock
from siyu.workspaces.service import WorkspaceContext, context_of, create_workspace

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def seed(url: str, coupons: int) -> tuple[WorkspaceContext, list[str]]:
    from siyu.coupons.models import Coupon
    from siyu.coupons.schemas import TemplateIn
    from siyu.coupons.service import create_template, issue_many

    engine = make_engine(url)
    with transaction(engine) as session:
        ctx = context_of(create_workspace(session, "coupons", "Coupon bench"))
        template = create_template(session, ctx, TemplateIn(name="满200减20", kind="threshold_off",
                                                            amount_off_fen=2000, threshold_fen=20_000,
                                                            valid_days=30), actor="bench")
        bulk = Bulk(session)
        customers = bulk.allocate_ids("customers", coupons // 4)
        now = bulk.ts(NOW)
        bulk.insert("customers", ("id", "workspace_id", "attributes", "created_at", "updated_at"),
                    [(cid, ctx.id, bulk.json({}), now, now) for cid in customers])
    for start in range(0, coupons, 10_000):
        with transaction(engine) as session:
            issue_many(session, ctx, template.id, [(customers[n % len(customers)], f"seed:{n}")
                                                   for n in range(start, min(coupons, start + 10_000))])
    with transaction(engine) as session:
        codes = list(session.scalars(select(Coupon.code).where(Coupon.workspace_id == ctx.id).order_by(Coupon.id)))
    engine.dispose()
    return ctx, codes


def client(args: tuple[str, WorkspaceContext, list[str], int, Any]) -> tuple[int, int, dict[str, int], float]:
    """One checkout client: redeems its codes one unit of work each, the way a web process runs the
    redemption request (`siyu.web.deps.get_db`: an engine and a session factory made once per process,
    a session per request that commits or rolls back); returns wins, losses by code, and the CPU
    seconds it spent. HTTP and API-key checks are not part of the figure."""
    from siyu.coupons.service import redeem_coupon
    from siyu.kit.errors import SiyuError

    url, ctx, codes, number, start = args
    engine = make_engine(url)  # `transaction` reuses the engine's one session factory, as a web process does

    wins, losses = 0, 0
    reasons: dict[str, int] = {}
    with use_clock(FrozenClock(NOW)):
        start.wait()
        cpu = time.process_time()
        for code in codes:
            try:
                with transaction(engine) as session:
                    redeem_coupon(session, ctx, code, f"order-{number}-{code}", 25_000)
                wins += 1
            except SiyuError as exc:
                losses += 1
                reasons[exc.code] = reasons.get(exc.code, 0) + 1
        cpu = time.process_time() - cpu
    engine.dispose()
    return wins, losses, reasons, cpu


def bench_redemption(coupons: int, clients: int, duplicates: float) -> None:
    from siyu.coupons.models import Coupon, CouponRedemption

    with scratch_postgres("coupons") as url:
        upgrade(url)
        with use_clock(FrozenClock(NOW)):
            ctx, codes = seed(url, coupons)
        rng = random.Random(3)
        rng.shuffle(codes)
        shares = [codes[k::clients] for k in range(clients)]
        raced = codes[:int(len(codes) * duplicates)]
        # A raced code is also tried by the next client, spread through its work like the rest.
        extra: list[list[str]] = [[] for _ in range(clients)]
        for position, code in enumerate(raced):
            extra[(position % clients + 1) % clients].append(code)
        work = [shares[k] + extra[k] for k in range(clients)]
        for items in work:
            rng.shuffle(items)
        with multiprocessing.Manager() as manager:
            start = manager.Barrier(clients + 1)
            with multiprocessing.Pool(clients) as pool:
                pending = pool.map_async(client, [(url, ctx, work[k], k, start) for k in range(clients)])
                start.wait()
                began = time.perf_counter()
                results = pending.get()
                seconds = time.perf_counter() - began
        wins = sum(r[0] for r in results)
        losses = sum(r[1] for r in results)
        reasons: dict[str, int] = {}
        client_cpu = sum(r[3] for r in results)
        for _, _, r, _ in results:
            for code, n in r.items():
                reasons[code] = reasons.get(code, 0) + n
        engine = make_engine(url)
        with transaction(engine) as session:
            redemptions = session.scalar(select(func.count()).select_from(CouponRedemption))
            doubles = session.scalar(select(func.count()).select_from(
                select(CouponRedemption.coupon_id).group_by(CouponRedemption.coupon_id)
                .having(func.count() > 1).subquery()))
            redeemed = session.scalar(select(func.count()).select_from(Coupon).where(Coupon.state == "redeemed"))
        engine.dispose()
        figure(f"concurrent redemption, {clients} clients, {coupons:,} coupons, postgresql", wins / seconds,
               "redemptions/s", "≥ 500")
        figure(f"  attempts per second ({duplicates:.0%} of the codes raced by two clients)",
               (wins + losses) / seconds, "attempts/s")
        figure("  double redemptions", float(doubles or 0), "", "0")
        figure("  client CPU per attempt (the 8 clients share the CPUs with PostgreSQL)",
               1000 * client_cpu / max(1, wins + losses), "ms")
        print(f"    {wins:,} won, {losses:,} refused {reasons}; {redemptions:,} redemption rows, {redeemed:,} "
              f"coupons redeemed; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        assert wins == coupons == redemptions == redeemed and doubles == 0, (wins, redemptions, redeemed, doubles)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coupons", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duplicates", type=float, default=0.25, help="share of codes two clients race for")
    args = parser.parse_args(argv)
    bench_redemption(args.coupons, args.clients, args.duplicates)


if __name__ == "__main__":
    main(sys.argv[1:])
