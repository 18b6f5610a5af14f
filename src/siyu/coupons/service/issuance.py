"""Issuing coupons: one (API, points redemption, journeys) or many (segments, tier benefits).

Every coupon is keyed by its cause (`cause_key`, unique per workspace), so issuing again for the same
cause returns the coupon issued the first time. Stock and per-customer limits are decided under the
template's row lock, so concurrent issuers can never oversell.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from siyu.coupons import repository
from siyu.coupons.errors import (
    IdempotencyConflict,
    OutOfStock,
    PerCustomerLimitReached,
    TemplateExpired,
    TemplateInactive,
    TemplateNotFound,
)
from siyu.coupons.models import Coupon, CouponTemplate
from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.workspaces.service import WorkspaceContext

CODE_BYTES = 10  # 80 random bits: 16 base32 characters, unguessable and unenumerable


def new_code() -> str:
    return base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode()


def normalise_code(code: str) -> str:
    """Codes are shown in groups (ABCD-EFGH-...) and typed in any case; stored plain upper-case."""
    return "".join(code.split()).replace("-", "").upper()


def format_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


@dataclass
class IssueOutcome:
    issued: list[tuple[int, str]] = field(default_factory=list)  # (customer_id, cause_key)
    existing: list[Coupon] = field(default_factory=list)
    skipped_limit: list[int] = field(default_factory=list)
    skipped_stock: list[int] = field(default_factory=list)


def validity(template: CouponTemplate, issued_at: datetime) -> tuple[datetime, datetime]:
    """Fixed dates, or N × 24 hours from the moment of issue."""
    if template.valid_days is not None:
        return issued_at, issued_at + timedelta(days=template.valid_days)
    assert template.valid_until is not None
    return template.valid_from or issued_at, template.valid_until


def issue_many(session: Session, ctx: WorkspaceContext, template_id: int,
               wanted: Sequence[tuple[int, str]]) -> IssueOutcome:
    """Issue one coupon per (customer_id, cause_key); customers must already belong to the workspace.

    Causes already issued come back in `existing`; customers at the template's per-customer limit
    and those beyond the remaining stock are skipped (first come, first served in the given order).
    """
    template = repository.template(session, ctx.id, template_id, lock=True)
    if template is None:
        raise TemplateNotFound(f"no coupon template {template_id}", field="template_id")
    if template.status != "active":
        raise TemplateInactive(f"coupon template {template_id} is {template.status}", field="template_id")
    now = clock.now()
    if template.valid_until is not None and template.valid_until <= now:
        raise TemplateExpired(f"coupon template {template_id} has expired", field="template_id")
    outcome = IssueOutcome()
    existing = repository.coupons_by_cause(session, ctx.id, [key for _, key in wanted])
    outcome.existing = list(existing.values())
    fresh: list[tuple[int, str]] = []
    seen = set(existing)
    for customer_id, key in wanted:
        if key not in seen:
            seen.add(key)
            fresh.append((customer_id, key))
    fresh = _within_customer_limit(session, template, fresh, outcome)
    if template.total_stock is not None:
        remaining = max(0, template.total_stock - template.issued_count)
        outcome.skipped_stock = [cid for cid, _ in fresh[remaining:]]
        fresh = fresh[:remaining]
    if fresh:
        valid_from, valid_until = validity(template, now)
        repository.insert_coupons(session, [
            {"workspace_id": ctx.id, "template_id": template.id, "customer_id": cid, "code": new_code(),
             "state": "issued", "cause_key": key, "issued_at": now, "valid_from": valid_from,
             "valid_until": valid_until} for cid, key in fresh])
        repository.add_issued(session, template.id, len(fresh))
        for cid, key in fresh:
            publish(session, "coupon_issued", {"workspace_id": ctx.id, "customer_id": cid,
                                               "template_id": template.id, "cause_key": key},
                    workspace_id=ctx.id, key=f"coupon:{ctx.id}:{key}")
    outcome.issued = fresh
    return outcome


def _within_customer_limit(session: Session, template: CouponTemplate, fresh: list[tuple[int, str]],
                           outcome: IssueOutcome) -> list[tuple[int, str]]:
    if template.per_customer_limit is None or not fresh:
        return fresh
    held = repository.held_counts(session, template.id, [cid for cid, _ in fresh])
    kept = []
    for customer_id, key in fresh:
        if held.get(customer_id, 0) >= template.per_customer_limit:
            outcome.skipped_limit.append(customer_id)
            continue
        held[customer_id] = held.get(customer_id, 0) + 1
        kept.append((customer_id, key))
    return kept


def issue_coupon(session: Session, ctx: WorkspaceContext, template_id: int, customer_id: int,
                 cause_key: str) -> Coupon:
    """Issue one coupon for a cause (idempotent: the same cause returns the first coupon)."""
    from siyu.customers.service import resolve_customer_id

    survivor = resolve_customer_id(session, ctx.id, customer_id)
    outcome = issue_many(session, ctx, template_id, [(survivor, cause_key)])
    if outcome.skipped_limit:
        raise PerCustomerLimitReached(f"customer {customer_id} already holds the most coupons of this template",
                                      field="customer_id")
    if outcome.skipped_stock:
        raise OutOfStock(f"coupon template {template_id} is out of stock", field="template_id")
    coupon = repository.coupons_by_cause(session, ctx.id, [cause_key])[cause_key]
    if coupon.template_id != template_id or coupon.customer_id != survivor:
        raise IdempotencyConflict("this idempotency key was used for another coupon", field="idempotency_key")
    return coupon


@dataclass(frozen=True)
class BulkIssueResult:
    template_id: int
    requested: int
    issued: int
    already_issued: int
    skipped_limit: int
    skipped_stock: int


def issue_coupons_bulk(session: Session, ctx: WorkspaceContext, template_id: int, customer_ids: Sequence[int],
                       idempotency_key: str) -> BulkIssueResult:
    """One coupon per listed customer (merged ids count for their survivor; unknown ids are refused)."""
    from siyu.customers.service import resolve_customer_ids
    from siyu.kit.errors import ValidationFailed

    resolved = resolve_customer_ids(session, ctx.id, list(customer_ids))
    unknown = [cid for cid in customer_ids if cid not in resolved]
    if unknown:
        raise ValidationFailed(f"{len(unknown)} customers are not in this workspace (first: {unknown[0]})",
                               field="customer_ids")
    survivors = list(dict.fromkeys(resolved[cid] for cid in customer_ids))
    outcome = issue_many(session, ctx, template_id,
                         [(cid, f"bulk:{idempotency_key}:{cid}") for cid in survivors])
    return BulkIssueResult(template_id, len(survivors), len(outcome.issued), len(outcome.existing),
                           len(outcome.skipped_limit), len(outcome.skipped_stock))


def issue_coupons_to_segment(session: Session, ctx: WorkspaceContext, template_id: int, segment_id: int,
                             idempotency_key: str) -> BulkIssueResult:
    """One coupon per current member of a segment (the segment as it is now)."""
    from siyu.segments.service import get_segment, member_ids

    get_segment(session, ctx.id, segment_id)
    customer_ids = sorted(int(cid) for cid in session.scalars(member_ids(ctx.id, segment_id)))
    outcome = issue_many(session, ctx, template_id, [(cid, f"bulk:{idempotency_key}:{cid}") for cid in customer_ids])
    return BulkIssueResult(template_id, len(customer_ids), len(outcome.issued), len(outcome.existing),
                           len(outcome.skipped_limit), len(outcome.skipped_stock))
