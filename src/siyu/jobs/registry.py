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


def load_task_modules() -> None:
    """Every domain's `tasks` module registers its handlers when imported."""
    from siyu.domains import domain_modules

    domain_modules("tasks")


def handler_for(kind: str) -> JobHandler | None:
    if not _HANDLERS:
        load_task_modules()
    return _HANDLERS.get(kind)
