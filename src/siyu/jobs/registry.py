"""Job handlers by kind. Domain packages register theirs in their `tasks.py` with `@job_handler`."""

from __future__ import annotations

import importlib
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
    from siyu.subscriptions import TASK_MODULES

    for module in TASK_MODULES:
        importlib.import_module(module)


def handler_for(kind: str) -> JobHandler | None:
    if not _HANDLERS:
        load_task_modules()
    return _HANDLERS.get(kind)
