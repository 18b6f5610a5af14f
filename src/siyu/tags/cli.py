"""`siyu tags ...`: tag groups, manual and auto tags, tagging by id or CSV, history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli_kit import WorkspaceOpt, cli_errors, console, engine, workspace_ctx
from siyu.db.session import transaction
from siyu.tags import presets, service

NAME = "tags"
app = typer.Typer(help="Tags (标签): groups, manual and auto tags, tagging, history", no_args_is_help=True)
RuleFile = Annotated[Path | None, typer.Option("--rule", help="JSON file with the rule of an auto tag ('-': stdin)")]


def read_json(path: Path) -> object:
    text = typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc


@app.command("groups")
@cli_errors
def groups(workspace: WorkspaceOpt = "demo", create: Annotated[str | None, typer.Option(help="create a group")] = None
           ) -> None:
    """List tag groups (or create one with --create NAME)."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if create:
            group = service.create_group(session, ctx, create)
            console.print(f"tag group [bold]{group.name}[/bold] created (id {group.id})")
            return
        table = Table("id", "name", "description")
        for group in service.list_groups(session, ctx.id):
            table.add_row(str(group.id), group.name, group.description)
    console.print(table)


@app.command("list")
@cli_errors
def list_tags(workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        table = Table("id", "name", "kind", "group", "customers", "state", "external key")
        for tag in service.list_tags(session, ctx.id):
            table.add_row(str(tag.id), tag.name, tag.kind, str(tag.group_id or ""), str(tag.size),
                          service.freshness(tag), tag.external_key)
    console.print(table)


@app.command("create")
@cli_errors
def create(name: str, workspace: WorkspaceOpt = "demo", rule: RuleFile = None,
           group: Annotated[int | None, typer.Option(help="tag group id")] = None,
           description: str = "") -> None:
    """Create a manual tag, or with --rule an auto tag."""
    raw = read_json(rule) if rule else None
    with transaction(engine()) as session:
        tag = service.create_tag(session, workspace_ctx(session, workspace), name=name, actor="cli", group_id=group,
                                 description=description, rule=raw)
        console.print(f"{tag.kind} tag [bold]{tag.name}[/bold] created (id {tag.id}, key {tag.external_key})")


@app.command("delete")
@cli_errors
def delete(tag_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """Delete a tag (refused while rules or journeys use it)."""
    with transaction(engine()) as session:
        service.delete_tag(session, workspace_ctx(session, workspace), tag_id, "cli")
    console.print(f"tag {tag_id} deleted")


@app.command("presets")
@cli_errors
def install(workspace: WorkspaceOpt = "demo") -> None:
    """Install the preset auto tags (高客单价, 母婴品类偏好, 沉睡客户, 新客)."""
    with transaction(engine()) as session:
        for tag in presets.install_presets(session, workspace_ctx(session, workspace), actor="cli"):
            console.print(f"  {tag.id}: {tag.name}")


def _tagging(tag_id: int, workspace: str, customer_ids: list[int], csv_file: Path | None, remove: bool) -> None:
    ids: list[int] = list(customer_ids)
    pairs: list[tuple[str, str]] = []
    if csv_file is not None:
        file_ids, pairs = service.parse_customer_csv(csv_file.read_text(encoding="utf-8-sig"))
        ids += file_ids
    with transaction(engine()) as session:
        change = service.untag_customers if remove else service.tag_customers
        result = change(session, workspace_ctx(session, workspace), tag_id, actor="cli", customer_ids=ids,
                        identities=pairs)
    verb = "removed from" if remove else "added to"
    console.print(f"tag {verb} {result.changed} customers ({result.unchanged} unchanged, "
                  f"{len(result.unknown)} unknown)")
    for item in result.unknown[:20]:
        console.print(f"  [yellow]unknown[/yellow] {item}")


CustomerIds = Annotated[list[int] | None, typer.Option("--customer", help="customer id (repeatable)")]
CsvFile = Annotated[Path | None, typer.Option("--csv", help="CSV: customer_id, type+value or identity columns")]


@app.command("apply")
@cli_errors
def apply(tag_id: int, workspace: WorkspaceOpt = "demo", customer: CustomerIds = None, csv: CsvFile = None) -> None:
    """Put a manual tag on customers (by id and / or a CSV of identities)."""
    _tagging(tag_id, workspace, customer or [], csv, remove=False)


@app.command("remove")
@cli_errors
def remove(tag_id: int, workspace: WorkspaceOpt = "demo", customer: CustomerIds = None, csv: CsvFile = None) -> None:
    """Take a manual tag off customers."""
    _tagging(tag_id, workspace, customer or [], csv, remove=True)


@app.command("history")
@cli_errors
def history(customer_id: int, workspace: WorkspaceOpt = "demo", limit: int = 50) -> None:
    """A customer's tag history, newest first."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        table = Table("at", "tag", "action", "source", "by")
        for entry in service.tag_history_of(session, ctx.id, customer_id, limit):
            table.add_row(entry.at.isoformat(timespec="seconds"), entry.tag_name, entry.action, entry.source,
                          entry.actor)
    console.print(table)
