"""Run every benchmark at its default size and print the figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    wanted = sys.argv[1:] or names
    for name in names:
        if name in wanted:
            print(f"\n=== {name} ===", flush=True)
            module = importlib.import_module(f"bench.{name}")
            module.main([])


if __name__ == "__main__":
    main()
