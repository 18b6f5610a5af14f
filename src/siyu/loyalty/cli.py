"""`siyu loyalty ...`: programme and tier set-up, members, points, benefit runs and the scheduled work."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from siyu.cli_kit import WorkspaceOpt, cli_errors, console, engine, fail, workspace_ctx
from siyu.db.session import transaction
from siyu.loyalty import service
from siyu.loyalty.schemas import ProgrammeIn, ProgrammeOut, TiersIn

NAME = "loyalty"
app = typer.Typer(help="Membership (会员): programme, tiers and benefits, members, points ledger", no_args_is_help=True)
FileArg = Annotated[Path, typer.Argument(help="JSON file ('-': stdin)")]
KeyOpt = Annotated[str, typer.Option("--key", help="idempotency key: the same key never moves points twice")]


def read_model(path: Path, model: Any) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        return model.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        fail(f"{path}: not JSON ({exc.msg}, line {exc.lineno})")
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"{path}: {'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}")


@app.command("configure")
@cli_errors
def configure(file: FileArg, workspace: WorkspaceOpt = "demo") -> None:
    """Create the programme or change its settings from a JSON file (see `siyu loyalty programme`)."""
    data = read_model(file, ProgrammeIn)
    with transaction(engine()) as session:
        service.configure_programme(session, workspace_ctx(session, workspace), data, actor="cli")
    console.print("[green]programme saved[/green]")


@app.command("programme")
@cli_errors
def programme(workspace: WorkspaceOpt = "demo") -> None:
    """Print the programme's settings as JSON."""
    with transaction(engine()) as session:
        current = service.get_programme(session, workspace_ctx(session, workspace).id)
        print(ProgrammeOut.model_validate(current).model_dump_json(indent=2))


@app.command("set-tiers")
@cli_errors
def set_tiers(file: FileArg, workspace: WorkspaceOpt = "demo") -> None:
    """Replace the tier ladder from a JSON file: {"tiers": [{"code", "name", "threshold", ...}, ...]}."""
    data = read_model(file, TiersIn)
    with transaction(engine()) as session:
        tiers = service.set_tiers(session, workspace_ctx(session, workspace), data.tiers, actor="cli")
        console.print(f"[green]{len(tiers)} tiers saved[/green]")


@app.command("tiers")
@cli_errors
def tiers(workspace: WorkspaceOpt = "demo") -> None:
    """The ladder and each tier's benefits."""
    with transaction(engine()) as session:
        table = Table("rank", "code", "name", "threshold", "valid (months)", "points ×", "member day ×",
                      "discount", "monthly coupon", "birthday", "1-to-1")
        for t in service.ladder(session, workspace_ctx(session, workspace).id).tiers:
            monthly = f"#{t.monthly_coupon_template_id} ×{t.monthly_coupon_quantity}" \
                if t.monthly_coupon_template_id else "-"
            birthday = " + ".join(x for x in (f"#{t.birthday_coupon_template_id}" if t.birthday_coupon_template_id
                                              else "", f"{t.birthday_points} pts" if t.birthday_points else "") if x)
            table.add_row(str(t.rank), t.code, t.name, str(t.threshold), str(t.validity_months or "-"),
                          f"{t.points_multiplier_percent}%", f"{t.member_day_multiplier_percent}%",
                          f"{t.shop_discount_percent}%", monthly, birthday or "-", "yes" if t.dedicated_service else "")
    console.print(table)


@app.command("enrol")
@cli_errors
def enrol(customer_ids: Annotated[list[int], typer.Argument(help="customer ids")],
          channel: Annotated[str, typer.Option(help="where the customer agreed")],
          text_version: Annotated[str, typer.Option(help="version of the terms they agreed to")],
          workspace: WorkspaceOpt = "demo") -> None:
    """Enrol customers who gave their consent (already members are left as they are)."""
    consent = service.Consent(channel, text_version)
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        if len(customer_ids) == 1:
            member = service.enrol_member(session, ctx, customer_ids[0], consent, actor="cli")
            console.print(f"member [bold]{member.member_number}[/bold] (customer {member.customer_id})")
            return
        count = service.enrol_members_bulk(session, ctx, customer_ids, consent, actor="cli")
    console.print(f"{count} customers enrolled")


@app.command("leave")
@cli_errors
def leave(customer_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """Leave the programme: benefits and earning stop, history and points are kept."""
    with transaction(engine()) as session:
        member = service.leave_programme(session, workspace_ctx(session, workspace), customer_id, actor="cli")
    console.print(f"member {member.member_number} left the programme")


@app.command("member")
@cli_errors
def member(customer_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """A member's tier, progress, points and coupons."""
    with transaction(engine()) as session:
        s = service.member_summary(session, workspace_ctx(session, workspace), customer_id)
        m = s.member
        console.print(f"[bold]{m.member_number}[/bold] customer {m.customer_id} · {m.status} · "
                      f"{s.tier.name} ({s.tier.code}) until {m.tier_valid_until or '-'}")
        progress = f"{s.to_next} to {s.next_tier.name}" if s.next_tier else "top tier"
        console.print(f"  {s.metric} ({s.window}): {s.metric_value} — {progress}")
        console.print(f"  points: {m.points_balance} available, {m.points_pending} pending, {m.points_debt} debt; "
                      f"{s.points_expiring_soon} expire within 30 days")
        console.print(f"  usable coupons: {s.usable_coupons}")


@app.command("members")
@cli_errors
def members(workspace: WorkspaceOpt = "demo", limit: int = 50) -> None:
    """Members, newest first."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        names = {t.id: t.name for t in service.ladder(session, ctx.id).tiers}
        items, _ = service.list_members(session, ctx.id, limit=limit)
        table = Table("number", "customer", "status", "tier", "points", "pending", "debt")
        for m in items:
            table.add_row(m.member_number, str(m.customer_id), m.status, names[m.tier_id], str(m.points_balance),
                          str(m.points_pending), str(m.points_debt))
    console.print(table)


@app.command("ledger")
@cli_errors
def ledger(customer_id: int, workspace: WorkspaceOpt = "demo", limit: int = 50) -> None:
    """A member's points ledger, newest first."""
    with transaction(engine()) as session:
        items, _ = service.member_ledger(session, workspace_ctx(session, workspace).id, customer_id, limit=limit)
        table = Table("id", "when", "kind", "points", "pending", "debt", "reason")
        for e in items:
            table.add_row(str(e.id), e.occurred_at.isoformat(timespec="minutes"), e.kind, str(e.points),
                          str(e.pending), str(e.debt), e.reason)
    console.print(table)


@app.command("adjust")
@cli_errors
def adjust(customer_id: int, points: Annotated[int, typer.Argument(help="negative to take points away")],
           reason: Annotated[str, typer.Option()], key: KeyOpt, workspace: WorkspaceOpt = "demo") -> None:
    """An operator's correction with a reason (never below zero)."""
    with transaction(engine()) as session:
        result = service.adjust_points(session, workspace_ctx(session, workspace), customer_id, points, reason, key,
                                       actor="cli")
    console.print(f"entry {result.entry.id}: {result.entry.points:+d}; balance {result.member.points_balance}")


@app.command("redeem")
@cli_errors
def redeem(customer_id: int, points: int, reason: Annotated[str, typer.Option()], key: KeyOpt,
           workspace: WorkspaceOpt = "demo") -> None:
    """Spend points on a gift."""
    with transaction(engine()) as session:
        result = service.redeem_points(session, workspace_ctx(session, workspace), customer_id, points, reason, key,
                                       actor="cli")
    console.print(f"entry {result.entry.id}: {result.entry.points:+d}; balance {result.member.points_balance}")


@app.command("redeem-coupon")
@cli_errors
def redeem_coupon(customer_id: int, template_id: int, key: KeyOpt, workspace: WorkspaceOpt = "demo") -> None:
    """Pay a coupon template's points price and receive the coupon."""
    with transaction(engine()) as session:
        result = service.redeem_points_for_coupon(session, workspace_ctx(session, workspace), customer_id,
                                                  template_id, key, actor="cli")
    console.print(f"coupon {result.coupon_code}; balance {result.member.points_balance}")


@app.command("deduct")
@cli_errors
def deduct(customer_id: int, points: int, order_id: Annotated[str, typer.Option("--order-id")],
           amount: Annotated[int, typer.Option("--amount", help="order amount in fen")],
           workspace: WorkspaceOpt = "demo") -> None:
    """Use points as money off an order (one deduction per order)."""
    with transaction(engine()) as session:
        result = service.deduct_points(session, workspace_ctx(session, workspace), customer_id, order_id, amount,
                                       points, actor="cli")
    console.print(f"{result.deduction_fen} fen off order {order_id}; balance {result.member.points_balance}")


@app.command("price")
@cli_errors
def price(customer_id: int, amount: Annotated[int, typer.Option("--amount", help="order amount in fen")],
          workspace: WorkspaceOpt = "demo") -> None:
    """Member price of an order (the tier's shop discount) and the most points may pay of it."""
    with transaction(engine()) as session:
        quote = service.quote_member_price(session, workspace_ctx(session, workspace), customer_id, amount)
    console.print(f"{quote.tier_code}: {quote.shop_discount_percent}% of {quote.order_amount_fen} fen = "
                  f"{quote.member_price_fen} fen ({quote.member_discount_fen} fen off); points may pay up to "
                  f"{quote.max_deduction_fen} fen ({quote.max_deduction_points} of {quote.member.points_balance} "
                  "points)")


@app.command("staff")
@cli_errors
def staff(customer_id: int, staff_id: Annotated[str | None, typer.Argument(help="none to take them off")] = None,
          workspace: WorkspaceOpt = "demo") -> None:
    """Assign the 1-to-1 staff member of a member whose tier offers dedicated service."""
    with transaction(engine()) as session:
        member = service.assign_dedicated_staff(session, workspace_ctx(session, workspace), customer_id, staff_id,
                                                actor="cli")
    console.print(f"member {member.member_number}: staff {member.dedicated_staff_id or '-'}")


@app.command("run-benefits")
@cli_errors
def run_benefits(period: Annotated[str | None, typer.Option(help="YYYY-MM; default this month")] = None,
                 workspace: WorkspaceOpt = "demo") -> None:
    """Grant a month's benefits here and now, chunk by chunk; a re-run grants nothing twice."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
    run = None
    while run is None or run.finished_at is None:
        with transaction(engine()) as session:
            chosen = period or (run.period if run else None)
            run = service.run_benefits_chunk(session, ctx, chosen or _this_month(ctx))
    console.print(f"{run.period}: {run.members_granted} members granted, {run.coupons_issued} coupons, "
                  f"{run.points_awarded} points")


def _this_month(ctx: Any) -> str:
    from siyu.kit import clock
    from siyu.loyalty import rules

    return rules.month_period(rules.local_date(clock.now(), ctx.timezone))


@app.command("replay")
@cli_errors
def replay(batch: Annotated[int, typer.Option(help="events per transaction")] = service.REPLAY_BATCH,
           workspace: WorkspaceOpt = "demo") -> None:
    """Run the stored orders, refunds, check-ins and shares through points and tiers again, oldest row
    first: for a programme started after its orders were imported. What was earned already is skipped."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
    total = service.EarningSummary()
    after: int | None = 0
    while after is not None:
        with transaction(engine()) as session:
            after, done = service.replay_page(session, ctx, after, batch)
        total.events += done.events
        total.points_earned += done.points_earned
        total.points_reversed += done.points_reversed
        total.tier_changes += done.tier_changes
    console.print(f"{total.events} events applied; {total.points_earned} points earned, {total.points_reversed} "
                  f"reversed, {total.tier_changes} tier changes")


@app.command("tick")
@cli_errors
def tick() -> None:
    """Run the scheduled points work now, every workspace: release after the return window, expiry,
    tier reviews at period end."""
    for name, step in (("lots released", service.release_pending_points), ("points expired", service.expire_points),
                       ("members reviewed", service.review_due_tiers)):
        total = 0
        for _ in range(100):
            with transaction(engine()) as session:
                done = step(session)
            total += done
            if done == 0:
                break
        console.print(f"{name}: {total}")
