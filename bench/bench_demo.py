"""Demo brand generation speed: `python -m bench.bench_demo [--customers N]`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from bench.common import figure
from siyu.demo.generator import DemoSpec, generate_demo_events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    count = sum(1 for _ in generate_demo_events(DemoSpec(customers=args.customers, seed=3,
                                                          end=datetime(2026, 11, 1, tzinfo=UTC))))
    seconds = time.perf_counter() - started
    figure(f"demo generator, {args.customers:,} customers ({count:,} events)", count / seconds, "events/s")


if __name__ == "__main__":
    main(sys.argv[1:])
