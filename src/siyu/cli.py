"""The `siyu` command line. Each command is a boundary: it owns its transaction and prints one red
line (exit 1) for an expected error instead of a stack trace."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from siyu.cli_kit import WorkspaceOpt, cli_errors, console, err_console
from siyu.cli_kit import engine as _engine
from siyu.cli_kit import workspace_ctx as _workspace_ctx
from siyu.config import get_settings

app = typer.Typer(help="siyu (私域) — private-domain operations platform", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database migrations", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces (one brand each)", no_args_is_help=True)
user_app = typer.Typer(help="Console users", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys", no_args_is_help=True)
import_app = typer.Typer(help="Import events, customers or orders from CSV / JSONL", no_args_is_help=True)
jobs_app = typer.Typer(help="Worker jobs and dead letters", no_args_is_help=True)
customers_app = typer.Typer(help="Customer profiles", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(workspace_app, name="workspace")
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(import_app, name="import")
app.add_typer(jobs_app, name="jobs")
app.add_typer(customers_app, name="customers")

def _migrate() -> None:
    from siyu.db.migrate import upgrade

    settings = get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)


@db_app.command("upgrade")
@cli_errors
def db_upgrade() -> None:
    """Apply all migrations (safe to run again)."""
    _migrate()
    console.print("[green]database is up to date[/green]")


@db_app.command("heads")
def db_heads() -> None:
    from siyu.db.migrate import heads

    for head in heads():
        console.print(head)


@app.command()
@cli_errors
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1", port: Annotated[int, typer.Option()] = 8000,
          migrate: Annotated[bool, typer.Option(help="run migrations first")] = True) -> None:
    """Run the API and console (and, on SQLite, the in-process worker)."""
    import uvicorn

    from siyu.web.app import create_app

    if migrate:
        _migrate()
    settings = get_settings()
    console.print(f"siyu console and API on [bold]http://{host}:{port}[/bold] "
                  f"({'SQLite + in-process worker' if settings.is_sqlite else 'PostgreSQL'})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@app.command()
@cli_errors
def worker(poll: Annotated[float, typer.Option(help="seconds between polls when idle")] = 0.5) -> None:
    """Run a worker process (any number of them on PostgreSQL)."""
    import logging
    import signal

    from siyu.jobs.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loop = Worker(_engine(), poll)
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    console.print("worker started; Ctrl-C to stop")
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        loop.stop()


@workspace_app.command("create")
@cli_errors
def workspace_create(slug: str, name: Annotated[str, typer.Option()] = "",
                     timezone: Annotated[str, typer.Option()] = "Asia/Shanghai") -> None:
    from siyu.db.session import transaction
    from siyu.workspaces.service import create_workspace

    with transaction(_engine()) as session:
        workspace = create_workspace(session, slug, name or slug, timezone)
        console.print(f"workspace [bold]{workspace.slug}[/bold] created (id {workspace.id}, {workspace.timezone})")


@workspace_app.command("list")
@cli_errors
def workspace_list() -> None:
    from siyu.db.session import transaction
    from siyu.workspaces.service import list_workspaces

    table = Table("id", "slug", "name", "timezone", "currency")
    with transaction(_engine()) as session:
        for w in list_workspaces(session):
            table.add_row(str(w.id), w.slug, w.name, w.timezone, w.currency)
    console.print(table)


@user_app.command("create")
@cli_errors
def user_create(email: str, workspace: WorkspaceOpt, password: Annotated[str, typer.Option(prompt=True,
                hide_input=True)], name: Annotated[str, typer.Option()] = "",
                role: Annotated[str, typer.Option(help="owner | operator | staff | analyst")] = "operator") -> None:
    from siyu.db.session import transaction
    from siyu.workspaces.service import create_user, get_workspace

    with transaction(_engine()) as session:
        user = create_user(session, get_workspace(session, workspace), email, name or email, password, role)
        console.print(f"user {user.email} ({user.role}) created")


@apikey_app.command("create")
@cli_errors
def apikey_create(workspace: WorkspaceOpt, name: Annotated[str, typer.Option()] = "default",
                  role: Annotated[str, typer.Option()] = "operator") -> None:
    """Create an API key; the secret is shown once."""
    from siyu.db.session import transaction
    from siyu.workspaces.service import create_api_key, get_workspace

    with transaction(_engine()) as session:
        key, secret = create_api_key(session, get_workspace(session, workspace), name, role)
    console.print(f"API key {key.id} ({role}) — shown once, keep it safe:")
    print(secret)


def _run_import(kind: str, file: Path, workspace: str) -> None:
    from siyu.db.session import transaction
    from siyu.events.importer import import_file

    engine = _engine()
    with transaction(engine) as session:
        ctx = _workspace_ctx(session, workspace)
    size = file.stat().st_size if file.exists() else 0
    with Progress(TextColumn(f"importing {kind}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=err_console, transient=False, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(kind, total=size)
        summary = import_file(engine, ctx, file, kind, lambda pos: progress.update(task, completed=pos))
    table = Table("accepted", "duplicate", "rejected", title=f"import {kind}: {file.name}")
    table.add_row(str(summary.accepted), str(summary.duplicate), str(summary.rejected))
    console.print(table)
    for line in summary.errors_sample:
        console.print(f"  [yellow]rejected[/yellow] {line}")
    if summary.rejected_file:
        console.print(f"rejected rows with reasons: {summary.rejected_file}")
    console.print(json.dumps({"accepted": summary.accepted, "duplicate": summary.duplicate,
                              "rejected": summary.rejected}))


@import_app.command("events")
@cli_errors
def import_events(file: Path, workspace: WorkspaceOpt = "demo") -> None:
    """Import events (CSV or JSONL); re-running the same file changes nothing."""
    _run_import("events", file, workspace)


@import_app.command("customers")
@cli_errors
def import_customers(file: Path, workspace: WorkspaceOpt = "demo") -> None:
    """Import customer profiles with their identities (CSV or JSONL)."""
    _run_import("customers", file, workspace)


@import_app.command("orders")
@cli_errors
def import_orders(file: Path, workspace: WorkspaceOpt = "demo") -> None:
    """Import orders: JSONL one order per line, or CSV one item per row."""
    _run_import("orders", file, workspace)


@jobs_app.command("list")
@cli_errors
def jobs_list(state: Annotated[str | None, typer.Option(help="pending | running | done | dead")] = None,
              limit: int = 50) -> None:
    from siyu.db.session import transaction
    from siyu.jobs.service import job_counts, list_jobs

    with transaction(_engine()) as session:
        counts = job_counts(session)
        table = Table("id", "kind", "state", "attempts", "due_at", "last error")
        for job in list_jobs(session, state, limit):
            table.add_row(str(job.id), job.kind, job.state, str(job.attempts), job.due_at.isoformat(),
                          (job.last_error or "")[:80])
    console.print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no jobs")
    console.print(table)


@jobs_app.command("retry")
@cli_errors
def jobs_retry(job_id: int) -> None:
    """Send a dead job back to the queue."""
    from siyu.db.session import transaction
    from siyu.jobs.service import retry_dead_job

    with transaction(_engine()) as session:
        retry_dead_job(session, job_id)
    console.print(f"job {job_id} queued again")


@jobs_app.command("run")
@cli_errors
def jobs_run() -> None:
    """Run every due job once, then exit (handy in scripts and cron)."""
    from siyu.jobs.worker import run_due_jobs

    console.print(f"ran {run_due_jobs(_engine())} jobs")


@customers_app.command("show")
@cli_errors
def customers_show(customer_id: int, workspace: WorkspaceOpt = "demo") -> None:
    from siyu.customers.service import customer_profile
    from siyu.db.session import transaction

    with transaction(_engine()) as session:
        ctx = _workspace_ctx(session, workspace)
        profile = customer_profile(session, ctx.id, customer_id)
        c = profile.customer
        console.print(f"[bold]#{c.id} {c.name or '-'}[/bold] {c.phone or ''} {c.city or ''} "
                      f"channel={c.acquisition_channel or '-'}")
        for identity in profile.identities:
            console.print(f"  {identity.type}{'/' + identity.namespace if identity.namespace else ''}: "
                          f"{identity.value}")
        console.print(f"  rollup: {json.dumps(profile.rollup, default=str, ensure_ascii=False)}")


@app.command()
@cli_errors
def demo(customers: Annotated[int, typer.Option(help="how many customers")] = 5000,
         seed: Annotated[int, typer.Option()] = 42,
         workspace: Annotated[str, typer.Option()] = "demo",
         password: Annotated[str, typer.Option(help="console password of the demo owner")] = "siyu-demo-2026",
         ) -> None:
    """Create (or top up) the demo brand: a 母婴 + 美妆 shop with a year of history."""
    from siyu.demo.load import load_demo
    from siyu.kit import clock

    _migrate()
    result = load_demo(_engine(), customers=customers, seed=seed, slug=workspace, password=password,
                       end=clock.now(), progress=err_console if sys.stderr.isatty() else None)
    console.print(f"demo workspace [bold]{result.slug}[/bold]: {result.customers} customers, "
                  f"{result.events} events ({result.accepted} new)")
    if result.members:
        console.print(f"membership programme: {result.members} members enrolled; their orders earn points "
                      "as the worker handles them")
    console.print(f"console login: [bold]{result.email}[/bold] / [bold]{result.password}[/bold]")
    if result.api_key:
        console.print(f"API key: [bold]{result.api_key}[/bold]")


def _register_domain_commands() -> None:
    """A domain's `cli.py` exposes `app` (a Typer) and `NAME`; it becomes `siyu NAME ...`."""
    from siyu.domains import domain_modules

    for module in domain_modules("cli"):
        app.add_typer(module.app, name=module.NAME)


_register_domain_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
