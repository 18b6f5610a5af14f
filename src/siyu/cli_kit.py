"""What every `siyu` sub-command shares: consoles, the error wrapper, engine and workspace lookup.

A domain's `cli.py` defines `NAME = "segments"` and `app = typer.Typer(...)`; its commands use
`@cli_errors` so an expected error prints one red line and exits 1, and open their own
`transaction(engine())`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from siyu.config import get_settings
from siyu.kit.errors import SiyuError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", help="workspace slug or id")]


def fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def cli_errors(func: F) -> F:
    """Expected errors become one red line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SiyuError as exc:
            where = f" ({exc.field})" if exc.field else ""
            fail(f"{exc.message}{where}")
        except (OSError, ValueError) as exc:
            fail(str(exc))
        except OperationalError as exc:
            fail(f"the database is not reachable: {exc.orig}")

    return wrapper  # type: ignore[return-value]


def engine() -> Engine:
    from siyu.db.session import get_engine

    return get_engine(get_settings())


def workspace_ctx(session: Session, workspace: str) -> Any:
    from siyu.workspaces.service import context_of, get_workspace

    return context_of(get_workspace(session, workspace))
