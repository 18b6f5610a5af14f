"""Job handlers by kind. Domain packages register theirs in their `tasks.py` with `@job_handler`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

JobHandler = Callable[[Session, dict[str, Any]], None]

_HANDLERS: dict[str, JobHandler] = {}


def job_handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    def register(func: JobHandler) -> JobHandler:
        _HANDLERS[kind] = func
        return func

    return register


# A due poller claims and runs due rows of its own table (journey runs) each time the worker loop
# turns, in its own transactions; it returns how much it did. Registered in a domain's `tasks.py`.
DuePoller = Callable[[Any], int]
_POLLERS: dict[str, DuePoller] = {}


def due_poller(name: str) -> Callable[[DuePoller], DuePoller]:
    def register(func: DuePoller) -> DuePoller:
        _POLLERS[name] = func
        return func

    return register


def due_pollers() -> list[DuePoller]:
    load_task_modules()
    return list(_POLLERS.values())


_loaded = False


def load_task_modules() -> None:
    """Every domain's `tasks` module registers its handlers when imported (once per process;
    handlers registered elsewhere, e.g. by tests, do not stop the domains' from loading)."""
    global _loaded
    if _loaded:
        return
    from siyu.domains import domain_modules

    domain_modules("tasks")
    _loaded = True


def handler_for(kind: str) -> JobHandler | None:
    load_task_modules()
    return _HANDLERS.get(kind)
