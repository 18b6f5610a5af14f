"""`siyu coupons ...`: templates and their stats, issuance, redemption, expiry."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table

from siyu.cli_kit import WorkspaceOpt, cli_errors, console, engine, fail, workspace_ctx
from siyu.coupons import service
from siyu.coupons.rules import OrderLine
from siyu.coupons.schemas import OrderLineIn, TemplateIn
from siyu.db.session import transaction

NAME = "coupons"
app = typer.Typer(help="Coupons (优惠券): templates, issuance, redemption, stats", no_args_is_help=True)
KeyOpt = Annotated[str, typer.Option("--key", help="idempotency key: the same key never issues twice")]


def _read(path: Path, adapter: TypeAdapter[Any]) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        return adapter.validate_python(json.loads(text))
    except json.JSONDecodeError as exc:
        fail(f"{path}: not JSON ({exc.msg}, line {exc.lineno})")
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"{path}: {'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}")


def _yuan(fen: int | None) -> str:
    return "-" if fen is None else f"¥{fen / 100:,.2f}"


@app.command("create")
@cli_errors
def create(file: Annotated[Path, typer.Argument(help="template JSON ('-': stdin)")],
           workspace: WorkspaceOpt = "demo") -> None:
    """Create a template, e.g. {"name": "满200减20", "kind": "threshold_off", "amount_off_fen": 2000,
    "threshold_fen": 20000, "valid_days": 30}."""
    data = _read(file, TypeAdapter(TemplateIn))
    with transaction(engine()) as session:
        template = service.create_template(session, workspace_ctx(session, workspace), data, actor="cli")
        console.print(f"template [bold]{template.id}[/bold] {template.name}")


@app.command("templates")
@cli_errors
def templates(workspace: WorkspaceOpt = "demo") -> None:
    """Templates with issued, redeemed, redemption rate, GMV and discount of redeemed orders."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        items = service.list_templates(session, ctx.id)
        stats = service.template_stats(session, ctx.id, [t.id for t in items])
        table = Table("id", "name", "kind", "status", "stock", "issued", "redeemed", "rate", "GMV", "discount")
        for t in items:
            s = stats[t.id]
            table.add_row(str(t.id), t.name, t.kind, t.status, str(t.total_stock or "∞"), str(s.issued),
                          str(s.redeemed), f"{s.redemption_rate:.1%}", _yuan(s.gmv_fen), _yuan(s.discount_fen))
    console.print(table)


@app.command("issue")
@cli_errors
def issue(template_id: int, customer_ids: Annotated[list[int], typer.Argument(help="customer ids")], key: KeyOpt,
          workspace: WorkspaceOpt = "demo") -> None:
    """Issue one coupon per customer."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if len(customer_ids) == 1:
            coupon = service.issue_coupon(session, ctx, template_id, customer_ids[0], f"api:{key}")
            console.print(f"coupon {service.format_code(coupon.code)} for customer {coupon.customer_id}, "
                          f"valid until {coupon.valid_until.isoformat(timespec='minutes')}")
            return
        result = service.issue_coupons_bulk(session, ctx, template_id, customer_ids, key)
    _print_bulk(result)


@app.command("issue-segment")
@cli_errors
def issue_segment(template_id: int, segment_id: int, key: KeyOpt, workspace: WorkspaceOpt = "demo") -> None:
    """Issue one coupon to every current member of a segment."""
    with transaction(engine()) as session:
        result = service.issue_coupons_to_segment(session, workspace_ctx(session, workspace), template_id,
                                                  segment_id, key)
    _print_bulk(result)


def _print_bulk(result: service.BulkIssueResult) -> None:
    console.print(f"{result.issued} issued, {result.already_issued} already issued, {result.skipped_limit} at "
                  f"their limit, {result.skipped_stock} beyond the stock (of {result.requested})")


@app.command("redeem")
@cli_errors
def redeem(code: str, order_id: Annotated[str, typer.Option("--order-id")],
           amount: Annotated[int, typer.Option("--amount", help="order amount in fen")],
           items: Annotated[Path | None, typer.Option(help="JSON list of {sku, category, quantity, "
                                                           "unit_price_fen}")] = None,
           workspace: WorkspaceOpt = "demo") -> None:
    """Redeem a code on an order (once; the same order again shows the first result)."""
    lines = [OrderLine(i.sku, i.category, i.quantity, i.unit_price_fen)
             for i in (_read(items, TypeAdapter(list[OrderLineIn])) if items else [])]
    with transaction(engine()) as session:
        result = service.redeem_coupon(session, workspace_ctx(session, workspace), code, order_id, amount, lines,
                                       source="cli")
    gift = f", gift: {result.gift_name}" if result.gift_name else ""
    console.print(f"redeemed on {result.order_id}: {_yuan(result.discount_fen)} off, pay "
                  f"{_yuan(result.payable_fen)}{gift}")


@app.command("show")
@cli_errors
def show(code: str, workspace: WorkspaceOpt = "demo") -> None:
    """A coupon's template, holder, state and validity."""
    with transaction(engine()) as session:
        c = service.find_coupon(session, workspace_ctx(session, workspace).id, code)
        valid = f"{c.valid_from.isoformat(timespec='minutes')} – {c.valid_until.isoformat(timespec='minutes')}"
        console.print(f"{service.format_code(c.code)} template {c.template_id} customer {c.customer_id}: {c.state}, "
                      f"valid {valid}")


@app.command("expire")
@cli_errors
def expire() -> None:
    """Expire issued coupons past their validity (every workspace); the scheduler does this every 15 minutes."""
    total = 0
    for _ in range(1000):
        with transaction(engine()) as session:
            done = service.expire_coupons(session)
        total += done
        if done == 0:
            break
    console.print(f"{total} coupons expired")
