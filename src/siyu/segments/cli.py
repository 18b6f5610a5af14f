"""`siyu segments ...`: rules (validate, preview), segments (create, refresh, members, export),
and layering (RFM, lifecycle). Refreshes run here and now, step by step, each in its own transaction."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli_kit import WorkspaceOpt, cli_errors, console, engine, fail, workspace_ctx
from siyu.db.session import transaction
from siyu.segments import layering, rfm, scheduling, service
from siyu.segments.lifecycle import STAGE_LABELS, update_lifecycle
from siyu.segments.refresh import reevaluate_customers
from siyu.tags.cli import read_json
from siyu.tags.service import freshness, parse_customer_csv
from siyu.workspaces.service import WorkspaceContext

NAME = "segments"
app = typer.Typer(help="Segments (分群) and layering (分层): rules, refresh, members, export, RFM, lifecycle",
                  no_args_is_help=True)
RuleArg = Annotated[Path, typer.Argument(help="JSON file with the rule ('-': stdin)")]


def _run_steps(ctx: WorkspaceContext, steps: list[str]) -> None:
    for step in steps:
        with transaction(engine()) as session:
            scheduling.run_step(session, ctx, step)
    with transaction(engine()) as session:
        for segment in service.list_segments(session, ctx.id):
            if f"segment:{segment.id}" in steps:
                state = freshness(segment)
                colour = "red" if state == "failed" else "green"
                console.print(f"  [{colour}]{state}[/{colour}] {segment.name}: {segment.size} members"
                              + (f" — {segment.last_error}" if segment.last_error else ""))


@app.command("validate")
@cli_errors
def validate(rule: RuleArg, workspace: WorkspaceOpt = "demo") -> None:
    """Check a rule; every error names the path of the failing node."""
    raw = read_json(rule)
    with transaction(engine()) as session:
        check = service.validate_rule(session, workspace_ctx(session, workspace), raw)
    if check.valid:
        console.print("[green]valid[/green]")
        console.print_json(json.dumps(check.rule, ensure_ascii=False))
        return
    for issue in check.issues:
        console.print(f"[red]{issue}[/red]")
    raise typer.Exit(1)


@app.command("preview")
@cli_errors
def preview(rule: RuleArg, workspace: WorkspaceOpt = "demo") -> None:
    """How many customers a rule selects, and a sample of 20."""
    raw = read_json(rule)
    with transaction(engine()) as session:
        result = service.preview_rule(session, workspace_ctx(session, workspace), raw)
        console.print(f"[bold]{result.count}[/bold] customers")
        for customer in result.sample:
            console.print(f"  #{customer.id} {customer.name or '-'} {customer.phone or ''}")


@app.command("list")
@cli_errors
def list_segments(workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        table = Table("id", "name", "kind", "members", "state", "last refreshed")
        for segment in service.list_segments(session, ctx.id):
            refreshed = segment.last_refreshed_at.isoformat(timespec="seconds") if segment.last_refreshed_at else "-"
            table.add_row(str(segment.id), segment.name, segment.kind, str(segment.size), freshness(segment),
                          refreshed)
    console.print(table)


@app.command("create")
@cli_errors
def create(name: str, workspace: WorkspaceOpt = "demo",
           rule: Annotated[Path | None, typer.Option(help="JSON rule file: a dynamic segment")] = None,
           csv_file: Annotated[Path | None, typer.Option("--csv", help="CSV of customers: a static segment")] = None,
           description: str = "", refresh: Annotated[bool, typer.Option(help="refresh it now")] = True) -> None:
    """Create a dynamic segment (--rule) or a static one (--csv)."""
    if (rule is None) == (csv_file is None):
        fail("give either --rule (dynamic) or --csv (static)")
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if rule is not None:
            segment = service.create_segment(session, ctx, name=name, actor="cli", rule=read_json(rule),
                                             description=description)
        else:
            assert csv_file is not None
            ids, pairs = parse_customer_csv(csv_file.read_text(encoding="utf-8-sig"))
            segment = service.create_segment(session, ctx, name=name, actor="cli", kind="static",
                                             description=description, customer_ids=ids, identities=pairs)
        steps = scheduling.refresh_steps(session, ctx, [("segment", segment.id)]) if rule and refresh else []
    console.print(f"{segment.kind} segment [bold]{segment.name}[/bold] created (id {segment.id})")
    _run_steps(ctx, steps)


@app.command("refresh")
@cli_errors
def refresh(segment_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """Refresh a dynamic segment now, then what depends on it."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        service.get_segment(session, ctx.id, segment_id)
        steps = scheduling.refresh_steps(session, ctx, [("segment", segment_id)])
    if not steps:
        fail(f"segment {segment_id} is static: it has nothing to refresh")
    _run_steps(ctx, steps)


@app.command("delete")
@cli_errors
def delete(segment_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """Delete a segment (refused while rules or journeys use it)."""
    with transaction(engine()) as session:
        service.delete_segment(session, workspace_ctx(session, workspace), segment_id, "cli")
    console.print(f"segment {segment_id} deleted")


@app.command("members")
@cli_errors
def members(segment_id: int, workspace: WorkspaceOpt = "demo", limit: int = 50) -> None:
    """The newest members of a segment."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        page = service.members(session, ctx.id, segment_id, limit=limit)
        for customer in page.items:
            console.print(f"#{customer.id} {customer.name or '-'} {customer.phone or ''} {customer.city or ''}")


@app.command("add")
@cli_errors
def add(segment_id: int, csv_file: Annotated[Path, typer.Option("--csv")], workspace: WorkspaceOpt = "demo",
        remove: Annotated[bool, typer.Option(help="remove them instead")] = False) -> None:
    """Add (or --remove) the customers of a CSV to a static segment."""
    ids, pairs = parse_customer_csv(csv_file.read_text(encoding="utf-8-sig"))
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if remove:
            change = service.change_static_members(session, ctx, segment_id, actor="cli", remove_ids=ids,
                                                   remove_identities=pairs)
        else:
            change = service.change_static_members(session, ctx, segment_id, actor="cli", add_ids=ids,
                                                   add_identities=pairs)
    console.print(f"{change.added} added, {change.removed} removed, {len(change.unknown)} unknown")


@app.command("snapshot")
@cli_errors
def snapshot(segment_id: int, name: str, workspace: WorkspaceOpt = "demo") -> None:
    """Save the current members of a segment as a static segment."""
    with transaction(engine()) as session:
        copy = service.snapshot_segment(session, workspace_ctx(session, workspace), segment_id, name=name,
                                        actor="cli")
        console.print(f"static segment [bold]{copy.name}[/bold] (id {copy.id}): {copy.size} members")


@app.command("export")
@cli_errors
def export(segment_id: int, workspace: WorkspaceOpt = "demo",
           identities: Annotated[str, typer.Option(help="comma-separated identity types")] = "",
           out: Annotated[Path | None, typer.Option(help="file to write (default: stdout)")] = None) -> None:
    """Members as CSV: customer_id, name, and a column per identity type."""
    types = [t.strip() for t in identities.split(",") if t.strip()]
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
        writer = csv.writer(handle)
        rows = 0
        for row in service.export_rows(session, ctx, segment_id, types):
            writer.writerow(row)
            rows += 1
        if out:
            handle.close()
            console.print(f"{rows - 1} members written to {out}")


@app.command("rfm")
@cli_errors
def rfm_command(workspace: WorkspaceOpt = "demo",
                score: Annotated[bool, typer.Option(help="score everyone now")] = False) -> None:
    """The RFM eight-class matrix (scoring first with --score)."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if score:
            rfm.score_rfm(session, ctx)
            steps = scheduling.refresh_steps(session, ctx, scheduling.layer_readers(session, ctx, "rfm"))
    if score:
        _run_steps(ctx, steps)
    with transaction(engine()) as session:
        overview = layering.rfm_overview(session, ctx)
    run = overview["last_run"]
    if run is None or not run.summary.get("customers"):
        console.print("not scored yet: run `siyu segments rfm --score`")
        return
    table = Table("class", "customers", "spend ¥", title=f"RFM at {run.summary['scored_at']} "
                                                      f"({run.summary['customers']} customers)")
    for name, cell in run.summary["classes"].items():
        table.add_row(f"{cell['label']} ({name})", str(cell["customers"]), f"{cell['monetary_fen'] / 100:,.2f}")
    console.print(table)


@app.command("lifecycle")
@cli_errors
def lifecycle(workspace: WorkspaceOpt = "demo",
              evaluate: Annotated[bool, typer.Option(help="re-stage everyone now")] = False) -> None:
    """Customers per lifecycle stage (re-staging everyone first with --evaluate)."""
    steps: list[str] = []
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if evaluate:
            moved = update_lifecycle(session, ctx)
            console.print(f"stage changes: {moved or 'none'}")
            steps = scheduling.refresh_steps(session, ctx, scheduling.layer_readers(session, ctx, "lifecycle"))
    _run_steps(ctx, steps)
    with transaction(engine()) as session:
        counts = layering.lifecycle_overview(session, ctx)["counts"]
    for stage, label in STAGE_LABELS.items():
        console.print(f"  {label} ({stage}): {counts[stage]}")


@app.command("reevaluate")
@cli_errors
def reevaluate(customer_ids: list[int], workspace: WorkspaceOpt = "demo") -> None:
    """Re-evaluate some customers across every auto tag and dynamic segment now."""
    with transaction(engine()) as session:
        outcome = reevaluate_customers(session, workspace_ctx(session, workspace), customer_ids)
    console.print(f"{outcome.customers} customers: {outcome.entered} entries, {outcome.exited} exits")
