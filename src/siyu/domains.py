"""The domain packages of siyu, in dependency order. Each may hold models, router, console, tasks
and cli modules; the app, the worker, the metadata and the CLI load whichever exist."""

from __future__ import annotations

import importlib
from types import ModuleType

DOMAINS: tuple[str, ...] = (
    "workspaces", "audit", "jobs", "customers", "events", "tags", "segments", "loyalty", "coupons",
    "messaging", "journeys",
)


def domain_modules(kind: str) -> list[ModuleType]:
    """Import `siyu.<domain>.<kind>` for every domain that has one."""
    modules = []
    for domain in DOMAINS:
        name = f"siyu.{domain}.{kind}"
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name not in (name, f"siyu.{domain}"):
                raise
    return modules
