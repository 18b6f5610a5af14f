"""`siyu journeys ...`: define, validate, publish, pause, resume, enrol, inspect runs; staff tasks
(`siyu journeys tasks ...`) and consumption cycles (`siyu journeys cycles ...`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.cli_kit import WorkspaceOpt, cli_errors, console, engine, err_console, fail, workspace_ctx
from siyu.db.session import transaction
from siyu.journeys import analytics, cycles, service, staff_tasks, templates
from siyu.journeys.definitions import Issue

NAME = "journeys"
app = typer.Typer(help="Journeys (自动化营销) and SOPs: define, publish, enrol, inspect", no_args_is_help=True)
tasks_app = typer.Typer(help="Staff tasks (SOP): inbox, close, stats", no_args_is_help=True)
cycles_app = typer.Typer(help="Consumption cycles (复购周期) and replenishment predictions", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(cycles_app, name="cycles")
FileArg = Annotated[Path, typer.Argument(help="JSON file ('-': stdin)")]


def _read_json(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path}: not JSON ({exc.msg}, line {exc.lineno})")


def _print_issues(issues: list[Issue]) -> None:
    for issue in issues:
        where = f"step {issue.step_id}: " if issue.step_id else ""
        err_console.print(f"[red]invalid:[/red] {where}{issue.field}: {issue.message}")


def _definition_of(document: Any) -> Any:
    """A bare definition, or an exported journey ({name, description, definition})."""
    if isinstance(document, dict) and isinstance(document.get("definition"), dict):
        return document["definition"]
    return document


@app.command("list")
@cli_errors
def list_journeys(workspace: WorkspaceOpt = "demo", status: Annotated[str | None, typer.Option()] = None) -> None:
    with transaction(engine()) as session:
        table = Table("id", "name", "status", "version", "template")
        for j in service.list_journeys(session, workspace_ctx(session, workspace).id, status):
            table.add_row(str(j.id), j.name, j.status, str(j.published_version_id or "-"), j.template_key or "")
    console.print(table)


@app.command("create")
@cli_errors
def create(file: FileArg, name: Annotated[str | None, typer.Option(help="default: the file's name field")] = None,
           workspace: WorkspaceOpt = "demo") -> None:
    """Save a draft from a definition (or an exported journey); its issues are listed."""
    document = _read_json(file)
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        title = name or (document.get("name") if isinstance(document, dict) else None)
        if not title:
            fail("name the journey with --name")
        draft = service.create_journey(session, ctx, name=str(title), definition=_definition_of(document),
                                       description=str(document.get("description", "")), actor="cli")
        console.print(f"journey [bold]{draft.journey.id}[/bold] {draft.journey.name} (draft)")
    _print_issues(draft.issues)


@app.command("update")
@cli_errors
def update(journey_id: int, file: FileArg, workspace: WorkspaceOpt = "demo") -> None:
    """Replace a journey's draft definition."""
    document = _read_json(file)
    with transaction(engine()) as session:
        draft = service.update_journey(session, workspace_ctx(session, workspace), journey_id, actor="cli",
                                       definition=_definition_of(document))
    console.print(f"journey {journey_id} draft saved")
    _print_issues(draft.issues)


@app.command("validate")
@cli_errors
def validate(target: Annotated[str, typer.Argument(help="a journey id, or a JSON file of a definition")],
             workspace: WorkspaceOpt = "demo") -> None:
    """Check a definition: every issue with its step id; exit 1 when there is one."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        raw = (service.get_journey(session, ctx.id, int(target)).draft if target.isdigit()
               else _definition_of(_read_json(Path(target))))
        _, issues = service.check_definition(session, ctx, raw)
    if issues:
        _print_issues(issues)
        raise typer.Exit(1)
    console.print("[green]valid[/green]")


@app.command("publish")
@cli_errors
def publish(journey_id: int, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        version = service.publish_journey(session, workspace_ctx(session, workspace), journey_id, actor="cli")
    console.print(f"journey {journey_id} published as version {version.number}")


@app.command("pause")
@cli_errors
def pause(journey_id: int, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        service.pause_journey(session, workspace_ctx(session, workspace), journey_id, actor="cli")
    console.print(f"journey {journey_id} paused")


@app.command("resume")
@cli_errors
def resume(journey_id: int, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        service.resume_journey(session, workspace_ctx(session, workspace), journey_id, actor="cli")
    console.print(f"journey {journey_id} resumed")


@app.command("archive")
@cli_errors
def archive(journey_id: int, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        service.archive_journey(session, workspace_ctx(session, workspace), journey_id, actor="cli")
    console.print(f"journey {journey_id} archived; its active runs exited")


@app.command("export")
@cli_errors
def export(journey_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """Print the journey as JSON (name, description, definition), for `create` elsewhere."""
    with transaction(engine()) as session:
        document = service.export_journey(session, workspace_ctx(session, workspace).id, journey_id)
    print(json.dumps(document, ensure_ascii=False, indent=2))


@app.command("enrol")
@cli_errors
def enrol(journey_id: int,
          customers: Annotated[str | None, typer.Option(help="customer ids, comma-separated")] = None,
          file: Annotated[Path | None, typer.Option(help="a file of customer ids, one a line")] = None,
          segment: Annotated[int | None, typer.Option(help="enter a segment's members (in a job)")] = None,
          key: Annotated[str | None, typer.Option(help="names the request: re-running enters nobody twice")] = None,
          workspace: WorkspaceOpt = "demo") -> None:
    """Enter customers into an active journey now."""
    ids: list[int] = []
    if customers:
        ids += [int(c) for c in customers.split(",") if c.strip()]
    if file is not None:
        ids += [int(line) for line in file.read_text().split() if line.strip()]
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if segment is not None:
            cause = service.enrol_segment_later(session, ctx, journey_id, segment, key=key)
            console.print(f"segment {segment} is being entered ({cause})")
            return
        result = service.enrol_customers(session, ctx, journey_id, ids, key=key)
    console.print(json.dumps(result.as_dict(), ensure_ascii=False))


@app.command("run")
@cli_errors
def inspect_run(journey_id: int, customer: Annotated[int, typer.Option("--customer", help="customer id")],
                workspace: WorkspaceOpt = "demo") -> None:
    """Inspect a customer's runs: where they are, what they wait for, every step executed."""
    with transaction(engine()) as session:
        details = service.customer_runs(session, workspace_ctx(session, workspace).id, journey_id, customer)
        for detail in details:
            run = detail.run
            console.print(f"[bold]run {run.id}[/bold] v{detail.version_number} {run.status}"
                          f"{' (' + run.exit_reason + ')' if run.exit_reason else ''} step={run.step_id or '-'} "
                          f"due={run.due_at.isoformat() if run.due_at else '-'}"
                          f"{' holdout' if run.holdout else ''}"
                          f"{' converted ' + run.converted_at.isoformat() if run.converted_at else ''}")
            for step in detail.steps:
                console.print(f"  {step.seq:>3} {step.executed_at.isoformat()} {step.step_id}: {step.outcome}")
            for task in detail.tasks:
                console.print(f"  task {task.id} {task.status} {task.title} (due {task.due_at.isoformat()})")


@app.command("analytics")
@cli_errors
def show_analytics(journey_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """Entered, in each step, exits, conversion against the holdout, A/B branches (JSON)."""
    with transaction(engine()) as session:
        report = analytics.journey_report(session, workspace_ctx(session, workspace).id, journey_id)
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str))


@app.command("migrate-runs")
@cli_errors
def migrate(journey_id: int, from_version: Annotated[int, typer.Option("--from")],
            step_map: Annotated[list[str] | None, typer.Option("--map", help="old=new, repeatable")] = None,
            workspace: WorkspaceOpt = "demo") -> None:
    """Move active runs of an older version to the published one."""
    mapping = dict(item.split("=", 1) for item in step_map or [])
    with transaction(engine()) as session:
        moved = service.migrate_runs(session, workspace_ctx(session, workspace), journey_id,
                                     from_version=from_version, step_map=mapping, actor="cli")
    console.print(f"{moved} runs moved")


@app.command("templates")
@cli_errors
def list_templates() -> None:
    table = Table("key", "name", "slots")
    for t in templates.TEMPLATES:
        table.add_row(t.key, t.name, ", ".join(s.name for s in t.slots))
    console.print(table)


@app.command("copy-template")
@cli_errors
def copy_template(key: str, name: Annotated[str | None, typer.Option()] = None,
                  value: Annotated[list[str] | None, typer.Option("--set", help="slot=id, repeatable")] = None,
                  workspace: WorkspaceOpt = "demo") -> None:
    """Copy a ready-made journey into a draft, filling slots (e.g. --set welcome_message=3)."""
    values = {k: int(v) for k, v in (item.split("=", 1) for item in value or [])}
    with transaction(engine()) as session:
        draft = templates.copy_template(session, workspace_ctx(session, workspace), key, actor="cli", name=name,
                                        values=values)
        console.print(f"journey [bold]{draft.journey.id}[/bold] {draft.journey.name} (draft)")
    _print_issues(draft.issues)


@app.command("run-due")
@cli_errors
def run_due() -> None:
    """Execute every due step now, then exit (the worker does this continuously)."""
    from siyu.journeys.engine import run_due_steps

    console.print(f"{run_due_steps(engine())} steps executed")


# -- staff tasks -------------------------------------------------------------------------------

@tasks_app.command("list")
@cli_errors
def tasks_list(assignee: Annotated[int | None, typer.Option(help="user id")] = None,
               status: Annotated[str, typer.Option()] = "open", overdue: bool = False,
               workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        page = staff_tasks.list_tasks(session, workspace_ctx(session, workspace).id, assignee_id=assignee,
                                      status=status or None, overdue=overdue, limit=200)
        table = Table("id", "priority", "due", "assignee", "customer", "title", "status")
        for t in page.items:
            table.add_row(str(t.id), t.priority, t.due_at.isoformat(), str(t.assignee_id or "-"),
                          str(t.customer_id or "-"), t.title, t.status)
    console.print(table)


@tasks_app.command("close")
@cli_errors
def tasks_close(task_id: int, status: Annotated[str, typer.Option(help="done | skipped")] = "done",
                outcome: Annotated[str, typer.Option()] = "", workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        staff_tasks.close_task(session, workspace_ctx(session, workspace), task_id, status, outcome=outcome,
                               actor="cli")
    console.print(f"task {task_id} {status}")


@tasks_app.command("stats")
@cli_errors
def tasks_stats(workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        stats = staff_tasks.staff_stats(session, workspace_ctx(session, workspace).id)
    table = Table("staff", "open", "overdue", "done", "skipped", "completion", "on time")
    for s in stats:
        table.add_row(s.name or "(unassigned)", str(s.open), str(s.overdue), str(s.done), str(s.skipped),
                      f"{s.completion_rate:.0%}", f"{s.on_time_rate:.0%}")
    console.print(table)


# -- consumption cycles ------------------------------------------------------------------------

@cycles_app.command("list")
@cli_errors
def cycles_list(workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        table = Table("id", "scope", "key", "days per unit")
        for c in cycles.list_cycles(session, workspace_ctx(session, workspace).id):
            table.add_row(str(c.id), c.scope, c.key, str(c.cycle_days))
    console.print(table)


@cycles_app.command("set")
@cli_errors
def cycles_set(days: int, sku: Annotated[str | None, typer.Option()] = None,
               category: Annotated[str | None, typer.Option()] = None, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        cycle = cycles.set_cycle(session, workspace_ctx(session, workspace).id, cycle_days=days, sku=sku,
                                 category=category)
        console.print(f"{cycle.scope} {cycle.key}: {cycle.cycle_days} days per unit")


@cycles_app.command("seed-demo")
@cli_errors
def cycles_seed(workspace: WorkspaceOpt = "demo") -> None:
    """Set the demo catalogue's category cycles (奶粉 30, 纸尿裤 20, 面膜 14 …)."""
    with transaction(engine()) as session:
        count = cycles.seed_demo_cycles(session, workspace_ctx(session, workspace).id)
    console.print(f"{count} category cycles set")


@cycles_app.command("predict")
@cli_errors
def cycles_predict(customer: Annotated[int, typer.Option("--customer")],
                   category: Annotated[str | None, typer.Option()] = None,
                   sku: Annotated[str | None, typer.Option()] = None, workspace: WorkspaceOpt = "demo") -> None:
    """When the customer runs out of a category (or SKU), learned or from the catalogue."""
    if (category is None) == (sku is None):
        fail("give exactly one of --category or --sku")
    with transaction(engine()) as session:
        found = cycles.predict(session, workspace_ctx(session, workspace).id, [customer], category=category,
                               sku=sku)
    if customer not in found:
        fail(f"no prediction for customer {customer}: no purchase with a known cycle")
    console.print(json.dumps(found[customer].as_dict(), ensure_ascii=False))
