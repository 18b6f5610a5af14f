"""`siyu messaging ...`: templates, sending, the outbox, the contact policy, quotas, channels,
preferences (opt-outs) and broadcasts (群发)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.cli_kit import WorkspaceOpt, cli_errors, console, engine, fail, workspace_ctx
from siyu.db.session import transaction
from siyu.kit.timefmt import parse_aware
from siyu.messaging import broadcasts, deliveries, preferences, quotas, sending, settings, template_service
from siyu.messaging.channels import adapter_class

NAME = "messaging"
app = typer.Typer(help="Messaging: outbox, contact policy (不打扰), templates, broadcasts (群发)", no_args_is_help=True)
templates_app = typer.Typer(help="Message templates", no_args_is_help=True)
messages_app = typer.Typer(help="The outbox: messages and why they went or did not", no_args_is_help=True)
policy_app = typer.Typer(help="The contact policy of a workspace", no_args_is_help=True)
channels_app = typer.Typer(help="Channels and their configuration", no_args_is_help=True)
preferences_app = typer.Typer(help="Consents, opt-outs and blocks", no_args_is_help=True)
broadcasts_app = typer.Typer(help="Broadcasts (群发)", no_args_is_help=True)
for sub, sub_name in ((templates_app, "templates"), (messages_app, "messages"), (policy_app, "policy"),
                      (channels_app, "channels"), (preferences_app, "preferences"), (broadcasts_app, "broadcasts")):
    app.add_typer(sub, name=sub_name)

JsonOpt = Annotated[str, typer.Option(help="JSON object")]


def _json(text: str, what: str) -> Any:
    source = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not JSON: {exc.msg} (line {exc.lineno})")


def _when(text: str | None) -> datetime | None:
    return parse_aware(text, "send_at") if text else None


# -- templates ----------------------------------------------------------------------------------

@templates_app.command("list")
@cli_errors
def templates_list(workspace: WorkspaceOpt = "demo", channel: str | None = None) -> None:
    with transaction(engine()) as session:
        items = template_service.list_templates(session, workspace_ctx(session, workspace).id, channel=channel)
        table = Table("id", "name", "channel", "kind", "purpose", "variables")
        for t in items:
            table.add_row(str(t.id), t.name, t.channel, t.kind, t.purpose, ", ".join(t.variables))
    console.print(table)


@templates_app.command("create")
@cli_errors
def templates_create(name: str, channel: Annotated[str, typer.Option()], body: Annotated[str, typer.Option()] = "",
                     kind: str = "text", subject: str | None = None, purpose: str = "marketing",
                     payload: JsonOpt = "{}", workspace: WorkspaceOpt = "demo") -> None:
    """Create a template; an unknown variable is refused now, not when sending."""
    with transaction(engine()) as session:
        template = template_service.create_template(
            session, workspace_ctx(session, workspace), name=name, channel=channel, kind=kind, body=body,
            subject=subject, payload=_json(payload, "payload"), purpose=purpose, actor="cli")
        console.print(f"template [bold]{template.id}[/bold] {template.name} "
                      f"(variables: {', '.join(template.variables) or 'none'})")


@templates_app.command("preview")
@cli_errors
def templates_preview(template_id: int, customer_id: int, context: JsonOpt = "{}",
                      workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        result = template_service.preview_template(session, workspace_ctx(session, workspace), template_id,
                                                   customer_id, _json(context, "context"))
    console.print_json(json.dumps(result, ensure_ascii=False, default=str))


@templates_app.command("archive")
@cli_errors
def templates_archive(template_id: int, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        template_service.archive_template(session, workspace_ctx(session, workspace), template_id, actor="cli")
    console.print(f"template {template_id} archived")


# -- sending and messages -------------------------------------------------------------------------

@app.command("send")
@cli_errors
def send(customer_id: int, channel: Annotated[str, typer.Option()], key: Annotated[str, typer.Option(
        help="idempotency key: the same key never sends twice")], template: int | None = None,
         text: str | None = None, purpose: str = "marketing", context: JsonOpt = "{}", droppable: bool = False,
         workspace: WorkspaceOpt = "demo") -> None:
    """Send one message through the outbox (the contact policy decides)."""
    with transaction(engine()) as session:
        message, created = sending.submit_message(
            session, workspace_ctx(session, workspace), customer_id=customer_id, channel=channel,
            idempotency_key=key, template_id=template, content={"text": text} if text is not None else None,
            purpose=purpose, context=_json(context, "context"), droppable=droppable, source="cli")
        line = f"message [bold]{message.id}[/bold] {message.state}"
    console.print(line + (f" ({message.reason})" if message.reason else "") + ("" if created else " — existing"))


@app.command("dispatch")
@cli_errors
def dispatch() -> None:
    """Dispatch every due message once (workers do this continuously)."""
    from siyu.messaging.dispatch import dispatch_due

    stats = dispatch_due(engine())
    console.print(" ".join(f"{k}={v}" for k, v in vars(stats).items()))


@app.command("worker")
@cli_errors
def worker(poll: Annotated[float, typer.Option(help="seconds between polls when idle")] = 0.5) -> None:
    """A dedicated dispatch process: only sends due messages (any number of them on PostgreSQL)."""
    import logging
    import signal
    import threading

    from siyu.messaging.tasks import run_dispatch_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    console.print("dispatch worker started; Ctrl-C to stop")
    try:
        run_dispatch_worker(engine(), stopping, poll)
    except KeyboardInterrupt:
        stopping.set()


@messages_app.command("list")
@cli_errors
def messages_list(workspace: WorkspaceOpt = "demo", customer: int | None = None, broadcast: int | None = None,
                  state: str | None = None, limit: int = 50) -> None:
    with transaction(engine()) as session:
        page = deliveries.list_messages(session, workspace_ctx(session, workspace).id, customer_id=customer,
                                        broadcast_id=broadcast, state=state, limit=limit)
        table = Table("id", "customer", "channel", "purpose", "state", "reason", "due", "sent")
        for m in page.items:
            table.add_row(str(m.id), str(m.customer_id), m.channel, m.purpose, m.state, m.reason or "",
                          m.due_at.isoformat(timespec="seconds"),
                          m.sent_at.isoformat(timespec="seconds") if m.sent_at else "")
    console.print(table)


@messages_app.command("show")
@cli_errors
def messages_show(message_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """A message, every attempt and everything that happened to it."""
    with transaction(engine()) as session:
        story = deliveries.message_story(session, workspace_ctx(session, workspace).id, message_id)
        m = story.message
        console.print(f"[bold]#{m.id}[/bold] → customer {m.customer_id} by {m.channel} ({m.purpose}): "
                      f"{m.state}{f' ({m.reason})' if m.reason else ''}")
        console.print(f"  content: {json.dumps(m.content, ensure_ascii=False)}")
        for a in story.attempts:
            console.print(f"  attempt {a.number} {a.at.isoformat(timespec='seconds')} {a.outcome} "
                          f"{a.error_code or ''} {a.error_message or ''}".rstrip())
        for e in story.events:
            console.print(f"  {e.at.isoformat(timespec='seconds')} {e.type} {e.reason or ''}".rstrip())


@messages_app.command("retry")
@cli_errors
def messages_retry(message_id: int, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        message = deliveries.retry_message(session, workspace_ctx(session, workspace), message_id, actor="cli")
        console.print(f"message {message.id} {message.state}")


@messages_app.command("cancel")
@cli_errors
def messages_cancel(message_id: int, workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        deliveries.cancel_message(session, workspace_ctx(session, workspace), message_id, actor="cli")
    console.print(f"message {message_id} cancelled")


# -- policy, quotas, channels ---------------------------------------------------------------------

@policy_app.command("show")
@cli_errors
def policy_show(workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        policy = settings.load_policy(session, workspace_ctx(session, workspace).id)
    console.print_json(policy.model_dump_json())


@policy_app.command("set")
@cli_errors
def policy_set(changes: Annotated[str, typer.Argument(help='JSON, e.g. {"quiet_hours": {"start": "22:00", '
                                                           '"end": "08:00"}} or @file.json')],
               workspace: WorkspaceOpt = "demo") -> None:
    """Change top-level policy settings; the result is validated as a whole."""
    with transaction(engine()) as session:
        policy = settings.update_policy(session, workspace_ctx(session, workspace).id, _json(changes, "changes"))
    console.print_json(policy.model_dump_json())


@policy_app.command("quotas")
@cli_errors
def policy_quotas(workspace: WorkspaceOpt = "demo") -> None:
    """Platform quotas in force: the defaults and this workspace's own."""
    with transaction(engine()) as session:
        table = Table("channel", "name", "scope", "period", "max", "purposes", "active", "own")
        for q in quotas.quota_rows(session, workspace_ctx(session, workspace).id):
            table.add_row(q.channel, q.name, q.scope, q.period, str(q.max_count), ",".join(q.purposes) or "all",
                          "yes" if q.active else "no", "yes" if q.workspace_id else "default")
    console.print(table)


@policy_app.command("set-quota")
@cli_errors
def policy_set_quota(channel: str, name: str, scope: Annotated[str, typer.Option()],
                     period: Annotated[str, typer.Option()], max_count: Annotated[int, typer.Option("--max")],
                     purpose: Annotated[list[str] | None, typer.Option()] = None, inactive: bool = False,
                     workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        quotas.set_quota(session, workspace_ctx(session, workspace).id, channel=channel, name=name, scope=scope,
                         period=period, max_count=max_count, purposes=purpose or [], active=not inactive)
    console.print(f"quota {channel}/{name}: {max_count} per {scope} per {period}")


@channels_app.command("list")
@cli_errors
def channels_list(workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        configured = settings.load_channels(session, workspace_ctx(session, workspace).id)
        table = Table("channel", "enabled", "rate/min", "config")
        for name, s in configured.items():
            table.add_row(name, "yes" if s.enabled else "no", str(s.rate_per_minute or "-"),
                          json.dumps(adapter_class(name).redact(s.config), ensure_ascii=False))
    console.print(table)


@channels_app.command("set")
@cli_errors
def channels_set(name: str, config: JsonOpt = "{}", disabled: bool = False, rate_per_minute: int | None = None,
                 workspace: WorkspaceOpt = "demo") -> None:
    """Configure a channel, e.g. `siyu messaging channels set sms --config @sms.json`."""
    with transaction(engine()) as session:
        settings.configure_channel(session, workspace_ctx(session, workspace).id, name,
                                   {"enabled": not disabled, "rate_per_minute": rate_per_minute,
                                    "config": _json(config, "config")})
    console.print(f"channel {name} configured")


# -- preferences ------------------------------------------------------------------------------------

@preferences_app.command("set")
@cli_errors
def preferences_set(customer_id: int, status: Annotated[str, typer.Argument(help="opted_in | opted_out | blocked")],
                    channel: str = "*", purpose: str = "marketing", note: str | None = None,
                    workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        row = preferences.set_preference(session, workspace_ctx(session, workspace).id, customer_id, channel=channel,
                                         purpose=purpose, status=status, source="cli", actor="cli", note=note)
        console.print(f"customer {row.customer_id}: {row.status} ({row.channel}, {row.purpose})")


@preferences_app.command("list")
@cli_errors
def preferences_list(workspace: WorkspaceOpt = "demo", status: str | None = None, channel: str | None = None,
                     limit: int = 50) -> None:
    with transaction(engine()) as session:
        page = preferences.list_preferences(session, workspace_ctx(session, workspace).id, status=status,
                                            channel=channel, limit=limit)
        table = Table("customer", "channel", "purpose", "status", "source", "updated")
        for p in page.items:
            table.add_row(str(p.customer_id), p.channel, p.purpose, p.status, p.source,
                          p.updated_at.isoformat(timespec="seconds"))
    console.print(table)


# -- broadcasts ----------------------------------------------------------------------------------------

@broadcasts_app.command("create")
@cli_errors
def broadcasts_create(name: str, channel: Annotated[str, typer.Option()],
                      audience: Annotated[str, typer.Option(help='JSON, e.g. {"kind": "tag", "tag_id": 3}')],
                      template: Annotated[list[int] | None, typer.Option(help="template id (repeat for A/B)")] = None,
                      split: Annotated[list[int] | None, typer.Option(help="percent per template")] = None,
                      csv: Annotated[Path | None, typer.Option(help="CSV audience file (customer_id/phone/...)")]
                      = None, context: JsonOpt = "{}", send_at: str | None = None, rate_per_minute: int | None = None,
                      purpose: str = "marketing", workspace: WorkspaceOpt = "demo") -> None:
    """Create a draft broadcast; preview it, then start it."""
    spec: dict[str, Any] = {"kind": "csv", "csv": csv.read_text(encoding="utf-8")} if csv else _json(audience,
                                                                                                  "audience")
    templates = template or []
    if split and len(split) != len(templates):
        fail("give one --split per --template")
    variants = [{"template_id": t, **({"percent": split[i]} if split else {})} for i, t in enumerate(templates)]
    with transaction(engine()) as session:
        broadcast = broadcasts.create_broadcast(
            session, workspace_ctx(session, workspace), name=name, channel=channel, audience=spec, variants=variants,
            context=_json(context, "context"), send_at=_when(send_at), rate_per_minute=rate_per_minute,
            purpose=purpose, actor="cli")
        console.print(f"broadcast [bold]{broadcast.id}[/bold] {broadcast.name}: {broadcast.audience_size} customers")


@broadcasts_app.command("list")
@cli_errors
def broadcasts_list(workspace: WorkspaceOpt = "demo") -> None:
    with transaction(engine()) as session:
        table = Table("id", "name", "channel", "state", "audience", "filled", "created")
        for b in broadcasts.list_broadcasts(session, workspace_ctx(session, workspace).id):
            table.add_row(str(b.id), b.name, b.channel, b.state, str(b.audience_size), str(b.filled_count),
                          b.created_at.isoformat(timespec="minutes"))
    console.print(table)


@broadcasts_app.command("preview")
@cli_errors
def broadcasts_preview(broadcast_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """How many the policy would send, defer and suppress now, and why."""
    with transaction(engine()) as session:
        p = broadcasts.preview_broadcast(session, workspace_ctx(session, workspace), broadcast_id)
    console.print(f"audience {p.audience_size}: send {p.send}, defer {p.defer}, suppress {p.suppress}")
    for rule, count in sorted({**p.deferred_by_rule, **p.suppressed_by_rule}.items()):
        console.print(f"  {rule}: {count}")


@broadcasts_app.command("show")
@cli_errors
def broadcasts_show(broadcast_id: int, workspace: WorkspaceOpt = "demo") -> None:
    """Progress and results per variant."""
    with transaction(engine()) as session:
        ctx = workspace_ctx(session, workspace)
        b = broadcasts.get_broadcast(session, ctx.id, broadcast_id)
        console.print(f"[bold]#{b.id} {b.name}[/bold] {b.state}: {b.filled_count}/{b.audience_size} written")
        for r in broadcasts.broadcast_results(session, ctx.id, broadcast_id):
            console.print(f"  variant {r.name} (template {r.template_id}, {r.percent}%): {r.total} messages, "
                          f"sent {r.sent}, clicked {r.clicked}, replied {r.replied}, orders {r.orders} "
                          f"(¥{r.revenue_fen / 100:,.2f})")
            console.print(f"    states {json.dumps(r.states)}")
            for label, tally in (("suppressed", r.suppressed_by_rule), ("deferred", r.deferred_by_rule),
                                 ("failed", r.failed_by_reason)):
                if tally:
                    console.print(f"    {label} {json.dumps(tally, ensure_ascii=False)}")


def _transition(action: str, broadcast_id: int, workspace: str) -> None:
    func = {"start": broadcasts.start_broadcast, "pause": broadcasts.pause_broadcast,
            "resume": broadcasts.resume_broadcast, "cancel": broadcasts.cancel_broadcast}[action]
    with transaction(engine()) as session:
        broadcast = func(session, workspace_ctx(session, workspace), broadcast_id, actor="cli")
        console.print(f"broadcast {broadcast.id} {broadcast.state}")


@broadcasts_app.command("start")
@cli_errors
def broadcasts_start(broadcast_id: int, workspace: WorkspaceOpt = "demo") -> None:
    _transition("start", broadcast_id, workspace)


@broadcasts_app.command("pause")
@cli_errors
def broadcasts_pause(broadcast_id: int, workspace: WorkspaceOpt = "demo") -> None:
    _transition("pause", broadcast_id, workspace)


@broadcasts_app.command("resume")
@cli_errors
def broadcasts_resume(broadcast_id: int, workspace: WorkspaceOpt = "demo") -> None:
    _transition("resume", broadcast_id, workspace)


@broadcasts_app.command("cancel")
@cli_errors
def broadcasts_cancel(broadcast_id: int, workspace: WorkspaceOpt = "demo") -> None:
    _transition("cancel", broadcast_id, workspace)


@app.command("sandbox")
@cli_errors
def sandbox(workspace: WorkspaceOpt = "demo", customer: int | None = None, limit: int = 20) -> None:
    """What the sandbox channel received, newest first."""
    with transaction(engine()) as session:
        items = deliveries.sandbox_inbox(session, workspace_ctx(session, workspace).id, customer_id=customer,
                                         limit=limit)
        for m in items:
            console.print(f"{m.received_at.isoformat(timespec='seconds')} → customer {m.customer_id}: "
                          f"{m.content.get('text', '')}")


@app.command("holdout")
@cli_errors
def holdout(workspace: WorkspaceOpt = "demo") -> None:
    """Record the holdout's current draw per customer (the daily job does this too)."""
    from siyu.messaging.holdout import refresh_holdout

    with transaction(engine()) as session:
        members = refresh_holdout(session, workspace_ctx(session, workspace).id)
    console.print(f"{members} customers in the holdout")
