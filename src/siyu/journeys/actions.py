"""Every call journeys make into other domains, in one place.

Journeys never read or write another domain's tables: they call these small functions, which call
the owning domain's service. Each side effect carries the step's idempotency key as its cause, so a
replayed step finds the first result instead of doing it twice. Expected refusals of another
domain (a coupon out of stock, a suppressed message) come back as outcomes, not exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from siyu.kit.errors import SiyuError
from siyu.workspaces.service import WorkspaceContext

CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a side effect did for one customer: `ok` (done, or found done by an earlier attempt)
    or a refusal with the other domain's error code."""

    ok: bool
    code: str
    detail: dict[str, Any] | None = None


def refused(exc: SiyuError) -> Outcome:
    return Outcome(False, exc.code, {"message": exc.message[:300]})


# -- workspace, customers, users -----------------------------------------------------------------

def workspace_context(session: Session, workspace_id: int) -> WorkspaceContext:
    from siyu.workspaces.service import context_of, get_workspace

    return context_of(get_workspace(session, workspace_id))


def resolve_customers(session: Session, workspace_id: int, customer_ids: Sequence[int]) -> dict[int, int]:
    """Each known id → the profile it resolves to after merges; unknown ids are left out."""
    from siyu.customers.service import resolve_customer_ids

    return resolve_customer_ids(session, workspace_id, list(customer_ids))


def active_user_ids(session: Session, workspace_id: int) -> dict[int, str]:
    """The workspace's active console users (staff tasks are assigned to them), id → name."""
    from siyu.workspaces.service import list_users

    return {u.id: u.name for u in list_users(session, workspace_id) if u.is_active}


def owning_staff(session: Session, workspace_id: int, customer_ids: Sequence[int]) -> dict[int, int]:
    """The staff member (user id) who owns each customer, where one is known: the customer attribute
    `owner_user_id`, which the WeCom contact sync or an import sets (there is no owner table yet)."""
    from siyu.customers.service import contact_profiles

    owners: dict[int, int] = {}
    for row in contact_profiles(session, workspace_id, list(customer_ids)):
        value = (row.attributes or {}).get("owner_user_id")
        if isinstance(value, int) and not isinstance(value, bool):
            owners[int(row.id)] = value
        elif isinstance(value, str) and value.isdigit():
            owners[int(row.id)] = int(value)
    return owners


def customer_names(session: Session, workspace_id: int, customer_ids: Sequence[int]) -> dict[int, str]:
    from siyu.customers.service import contact_profiles

    return {int(r.id): r.name or f"#{r.id}" for r in contact_profiles(session, workspace_id, list(customer_ids))}


# -- events and orders ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EventView:
    id: int
    type: str
    customer_id: int
    occurred_at: datetime
    properties: dict[str, Any]


def events_by_ids(session: Session, workspace_id: int, ids: Sequence[int]) -> list[EventView]:
    from siyu.events.service import events_by_ids as read

    return [EventView(e.id, e.type, e.customer_id, e.occurred_at, e.properties or {})
            for e in read(session, workspace_id, list(ids))]


def customer_events_since(session: Session, workspace_id: int, customer_ids: Sequence[int], types: Iterable[str],
                          since: datetime) -> list[EventView]:
    from siyu.events.service import customer_events_since as read

    return [EventView(e.id, e.type, e.customer_id, e.occurred_at, e.properties or {})
            for e in read(session, workspace_id, list(customer_ids), sorted(set(types)), since)]


@dataclass(frozen=True, slots=True)
class Purchase:
    customer_id: int
    sku: str
    category: str
    quantity: int
    paid_at: datetime


def purchases(session: Session, workspace_id: int, customer_ids: Sequence[int], *, category: str | None = None,
              sku: str | None = None) -> list[Purchase]:
    """Items bought by these customers (orders not refunded in full), oldest first."""
    from siyu.events.service import purchased_items

    return [Purchase(*row) for row in purchased_items(session, workspace_id, list(customer_ids),
                                                      category=category, sku=sku)]


# -- the rule language (condition steps, date triggers) ------------------------------------------

def parse_condition_rule(raw: Any) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """The canonical JSON of a rule, or the (path, message) of every problem."""
    from siyu.rules.tree import RuleInvalid, parse_rule, to_json

    try:
        return to_json(parse_rule(raw)), []
    except RuleInvalid as exc:
        return None, [(issue.path, issue.message) for issue in exc.issues]


def rule_segment_and_tag_ids(rule: dict[str, Any]) -> tuple[set[int], set[int]]:
    from siyu.rules.references import referenced
    from siyu.rules.tree import parse_rule

    found = referenced(parse_rule(rule))
    return {i for kind, i in found if kind == "segment"}, {i for kind, i in found if kind == "tag"}


def customers_matching(session: Session, ctx: WorkspaceContext, rule: dict[str, Any], customer_ids: Sequence[int],
                       now: datetime) -> set[int]:
    """Which of these customers the rule holds for at `now`: one statement per chunk."""
    from siyu.rules.compiler import SCOPE, compile_rule
    from siyu.rules.tree import parse_rule

    compiled = compile_rule(parse_rule(rule), workspace_id=ctx.id, timezone=ctx.timezone,
                            dialect=session.get_bind().dialect.name, now=now, scoped=True)
    found: set[int] = set()
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), CHUNK):
        params = {**compiled.params(now), SCOPE: ids[start:start + CHUNK]}
        found.update(int(cid) for cid in session.scalars(compiled.select(), params))
    return found


def all_customers_matching(session: Session, ctx: WorkspaceContext, rule: dict[str, Any], now: datetime
                           ) -> list[int]:
    from siyu.rules.compiler import compile_rule
    from siyu.rules.tree import parse_rule

    compiled = compile_rule(parse_rule(rule), workspace_id=ctx.id, timezone=ctx.timezone,
                            dialect=session.get_bind().dialect.name, now=now)
    return sorted(int(cid) for cid in session.scalars(compiled.select(), compiled.params(now)))


def segment_member_ids(workspace_id: int, segment_id: int) -> Select[Any]:
    from siyu.segments.service import member_ids

    return member_ids(workspace_id, segment_id)


# -- references ---------------------------------------------------------------------------------------

def missing_references(session: Session, ctx: WorkspaceContext, kind: str, ids: Iterable[int]) -> set[int]:
    """Which of these ids name nothing in the workspace (a deleted segment, an unknown template…)."""
    wanted = set(ids)
    if not wanted:
        return set()
    if kind == "user":
        return wanted - set(active_user_ids(session, ctx.id))
    lookup = {"segment": _segment_exists, "tag": _tag_exists, "coupon_template": _coupon_template_exists,
              "message_template": _message_template_exists}[kind]
    return {ref_id for ref_id in wanted if not lookup(session, ctx, ref_id)}


def _exists(getter: Any, *args: Any) -> bool:
    try:
        getter(*args)
    except SiyuError:
        return False
    return True


def _segment_exists(session: Session, ctx: WorkspaceContext, segment_id: int) -> bool:
    from siyu.segments.service import get_segment

    return _exists(get_segment, session, ctx.id, segment_id)


def _tag_exists(session: Session, ctx: WorkspaceContext, tag_id: int) -> bool:
    from siyu.tags.service import get_tag

    return _exists(get_tag, session, ctx.id, tag_id)


def _coupon_template_exists(session: Session, ctx: WorkspaceContext, template_id: int) -> bool:
    from siyu.coupons.service import get_template

    return _exists(get_template, session, ctx.id, template_id)


def _message_template_exists(session: Session, ctx: WorkspaceContext, template_id: int) -> bool:
    from siyu.messaging.template_service import get_template

    return _exists(get_template, session, ctx.id, template_id)


# -- side effects ------------------------------------------------------------------------------------------

def send_messages(session: Session, ctx: WorkspaceContext, template_id: int, channel: str | None,
                  wanted: Sequence[tuple[int, str]]) -> dict[str, Outcome]:
    """One message per (customer, key) through messaging's bulk send: the contact policy decides
    the whole group at once. A suppressed or deferred message is the policy's decision and counts
    as done; a key already in the outbox (a replay) returns its first message. Workers' dispatch
    poller sends queued and deferred messages when they fall due."""
    from siyu.messaging.sending import submit_messages

    try:
        submitted = submit_messages(session, ctx, template_id=template_id, channel=channel, wanted=wanted,
                                    source="journey")
    except SiyuError as exc:
        return {key: refused(exc) for _, key in wanted}
    return {key: _message_outcome(s.message_id, s.state, s.reason) for key, s in submitted.items()}


def _message_outcome(message_id: int, state: str, reason: str | None) -> Outcome:
    ok = state != "failed"
    return Outcome(ok, state if ok else "message_failed", {"message_id": message_id, "state": state,
                                                           "reason": reason})


def issue_coupons(session: Session, ctx: WorkspaceContext, template_id: int,
                  wanted: Sequence[tuple[int, str]]) -> dict[str, Outcome]:
    """One coupon per (customer, key); customers at the template's limit or beyond its stock are refused."""
    from siyu.coupons.service import issue_many

    try:
        result = issue_many(session, ctx, template_id, list(wanted))
    except SiyuError as exc:
        return {key: refused(exc) for _, key in wanted}
    limit, stock = set(result.skipped_limit), set(result.skipped_stock)
    outcomes: dict[str, Outcome] = {}
    for customer_id, key in wanted:
        if customer_id in limit:
            outcomes[key] = Outcome(False, "coupon_per_customer_limit")
        elif customer_id in stock:
            outcomes[key] = Outcome(False, "coupon_out_of_stock")
        else:
            outcomes[key] = Outcome(True, "issued", {"template_id": template_id})
    return outcomes


def award_points(session: Session, ctx: WorkspaceContext, points: int, reason: str,
                 wanted: Sequence[tuple[int, str]]) -> dict[str, Outcome]:
    from siyu.loyalty.service import award_points as award

    outcomes: dict[str, Outcome] = {}
    for customer_id, key in wanted:
        try:
            award(session, ctx, customer_id, points, key, reason, actor="journey")
        except SiyuError as exc:
            outcomes[key] = refused(exc)
            continue
        outcomes[key] = Outcome(True, "awarded", {"points": points})
    return outcomes


def change_tag(session: Session, ctx: WorkspaceContext, tag_id: int, customer_ids: Sequence[int], *, add: bool,
               actor: str) -> dict[int, Outcome]:
    """Put a manual tag on (or take it off) customers. Adding twice changes nothing, so a replay is safe."""
    from siyu.tags.service import tag_customers, untag_customers

    change = tag_customers if add else untag_customers
    try:
        change(session, ctx, tag_id, actor=actor, customer_ids=list(customer_ids))
    except SiyuError as exc:
        return {cid: refused(exc) for cid in customer_ids}
    return {cid: Outcome(True, "tagged" if add else "untagged") for cid in customer_ids}


def update_attribute(session: Session, ctx: WorkspaceContext, customer_ids: Sequence[int], key: str, value: Any,
                     at: datetime) -> dict[int, Outcome]:
    """Set a custom attribute, as a profile update at `at` (newer updates win, as on ingestion)."""
    from siyu.customers.service import apply_traits

    return {cid: Outcome(True, "updated" if apply_traits(session, ctx.id, cid, {"attributes": {key: value}}, at)
                         else "unchanged") for cid in customer_ids}


def call_webhook_later(session: Session, ctx: WorkspaceContext, url: str, body: dict[str, Any], key: str) -> None:
    """The HTTP call happens after commit, in a job keyed by the step: retried with backoff, never doubled
    by a replay (the receiver also gets the key as `Idempotency-Key`)."""
    from siyu.jobs.service import enqueue

    enqueue(session, "journeys.webhook", {"url": url, "body": body, "idempotency_key": key}, workspace_id=ctx.id,
            key=f"journeys.webhook:{key}")


def publish_event(session: Session, ctx: WorkspaceContext, name: str, payload: dict[str, Any], key: str) -> None:
    from siyu.jobs.service import publish

    publish(session, name, {"workspace_id": ctx.id, **payload}, workspace_id=ctx.id, key=key)


def enqueue_job(session: Session, kind: str, payload: dict[str, Any], workspace_id: int, *, key: str) -> None:
    from siyu.jobs.service import enqueue

    enqueue(session, kind, payload, workspace_id=workspace_id, key=key)


def record_audit(session: Session, workspace_id: int, actor: str, action: str, kind: str, object_id: int,
                 details: dict[str, Any]) -> None:
    from siyu.audit.service import record_audit as record

    record(session, workspace_id, actor, action, kind, object_id, details)
