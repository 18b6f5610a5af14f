"""Tier benefits the scheduler gives: monthly coupons on the programme's benefit day and the
birthday gift (coupon and/or points) in the birthday month.

Exactly once per member per period: each grant is a row keyed by (member, benefit, period),
claimed before anything is issued. What a tier gives is read when its grant is made, so changing a
tier's benefits never re-issues a period already granted. A month's run goes through active
members in id order, one chunk per unit of work, and can resume from its cursor after a crash.

Rules: the benefit day is clamped to the month's length (31 → 28/29 in February); members who
join or move up after their month's run receive that tier's coupons from the next month; a coupon
template that is paused or expired at run time gives nothing that period (its grants are not
claimed); stock running out leaves the grant recorded with the coupons it actually got.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from siyu.kit import clock
from siyu.kit.timefmt import zone
from siyu.loyalty import repository, rules
from siyu.loyalty.models import BenefitGrant, BenefitRun, Programme, Tier
from siyu.loyalty.service.ledger import LedgerPlan
from siyu.loyalty.service.programme import get_programme, ladder
from siyu.workspaces.service import WorkspaceContext

CHUNK = 10_000
Member = tuple[int, int, int]  # (member id, customer id, tier id)


def due_period(programme: Programme, ctx: WorkspaceContext, at: datetime) -> str | None:
    """The month whose benefits are due at `at` (local benefit day reached), else None."""
    today = rules.local_date(at, ctx.timezone)
    due = rules.benefit_date(today.year, today.month, programme.benefit_day)
    return rules.month_period(today) if today >= due else None


def run_benefits_chunk(session: Session, ctx: WorkspaceContext, period: str, *, chunk: int = CHUNK,
                       restart: bool = False) -> BenefitRun:
    """Grant one chunk of the period's run; call again (new unit of work) until `finished_at` is set.
    `restart` walks all members again: grants already made are not repeated."""
    programme = get_programme(session, ctx.id)
    year, month = (int(part) for part in period.split("-"))
    now = clock.now()
    run = repository.start_benefit_run(session, ctx.id, period, now)
    if restart:
        run.cursor_member_id, run.finished_at = 0, None
    if run.finished_at is not None:
        return run
    members = repository.active_members_after(session, ctx.id, run.cursor_member_id, chunk)
    tiers = {t.id: t for t in ladder(session, ctx.id).tiers}
    usable = _usable_templates(session, ctx, now)
    birthday = _grant_birthdays(session, ctx, programme, members, tiers, usable, year, month, now)
    monthly = _grant_monthly(session, ctx, members, tiers, usable, period, now)
    run.members_granted += birthday[0] + monthly[0]
    run.coupons_issued += birthday[1] + monthly[1]
    run.points_awarded += birthday[2]
    if members:
        run.cursor_member_id = members[-1][0]
    if len(members) < chunk:
        run.finished_at = now
    session.flush()
    return run


def _usable_templates(session: Session, ctx: WorkspaceContext, now: datetime) -> set[int]:
    from siyu.coupons.service import list_templates

    return {t.id for t in list_templates(session, ctx.id, "active")
            if t.valid_until is None or t.valid_until > now}


def _grant_monthly(session: Session, ctx: WorkspaceContext, members: list[Member], tiers: dict[int, Tier],
                   usable: set[int], period: str, now: datetime) -> tuple[int, int]:
    eligible = [m for m in members if tiers[m[2]].monthly_coupon_template_id in usable]
    claimed = set(repository.claim_grants(session, [
        {"workspace_id": ctx.id, "member_id": mid, "tier_id": tid, "benefit": "monthly_coupon", "period": period,
         "coupons": tiers[tid].monthly_coupon_quantity, "points": 0, "created_at": now}
        for mid, _, tid in eligible]))
    wanted: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for mid, cid, tid in eligible:
        if mid in claimed:
            tier = tiers[tid]
            assert tier.monthly_coupon_template_id is not None
            wanted[tier.monthly_coupon_template_id].extend(
                (cid, f"benefit:{period}:monthly:{mid}:{n}") for n in range(tier.monthly_coupon_quantity))
    issued = _issue(session, ctx, wanted, "monthly_coupon", period)
    return len(claimed), issued


def _grant_birthdays(session: Session, ctx: WorkspaceContext, programme: Programme, members: list[Member],
                     tiers: dict[int, Tier], usable: set[int], year: int, month: int,
                     now: datetime) -> tuple[int, int, int]:
    from siyu.customers.service import customers_born_in_month

    def gives(tier: Tier) -> bool:
        return tier.birthday_points > 0 or tier.birthday_coupon_template_id in usable

    candidates = [m for m in members if gives(tiers[m[2]])]
    if not candidates:
        return 0, 0, 0
    born = customers_born_in_month(session, ctx.id, [cid for _, cid, _ in candidates], month)
    eligible = [m for m in candidates if m[1] in born]
    period = f"{year:04d}"
    claimed = set(repository.claim_grants(session, [
        {"workspace_id": ctx.id, "member_id": mid, "tier_id": tid, "benefit": "birthday_gift", "period": period,
         "coupons": 1 if tiers[tid].birthday_coupon_template_id in usable else 0,
         "points": tiers[tid].birthday_points, "created_at": now} for mid, _, tid in eligible]))
    granted = [m for m in eligible if m[0] in claimed]
    points = _birthday_points(session, ctx, programme, granted, tiers, year, now)
    wanted: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for mid, cid, tid in granted:
        template_id = tiers[tid].birthday_coupon_template_id
        if template_id in usable:
            assert template_id is not None
            wanted[template_id].append((cid, f"benefit:{period}:birthday:{mid}:0"))
    return len(granted), _issue(session, ctx, wanted, "birthday_gift", period), points


def _birthday_points(session: Session, ctx: WorkspaceContext, programme: Programme, granted: list[Member],
                     tiers: dict[int, Tier], year: int, now: datetime) -> int:
    giving = [(mid, tiers[tid].birthday_points) for mid, _, tid in granted if tiers[tid].birthday_points > 0]
    if not giving:
        return 0
    members = repository.lock_members(session, ctx.id, [mid for mid, _ in giving])
    plan = LedgerPlan(session, ctx.id, members, programme.allow_negative_balance, now)
    expires = rules.points_expiry(now, zone(ctx.timezone), programme.points_expiry, programme.points_expiry_months)
    for mid, points in giving:
        plan.credit(mid, points, "benefit", f"benefit:{year:04d}:birthday:{mid}", "birthday gift", now,
                    expires_at=expires)
    plan.write()
    return sum(points for _, points in giving)


def _issue(session: Session, ctx: WorkspaceContext, wanted: dict[int, list[tuple[int, str]]], benefit: str,
           period: str) -> int:
    """Issue the coupons of claimed grants; a grant that got fewer (stock, limits) records what it got."""
    from siyu.coupons.service import issue_many

    issued = 0
    for template_id, items in sorted(wanted.items()):
        outcome = issue_many(session, ctx, template_id, items)
        issued += len(outcome.issued) + len(outcome.existing)
        planned: dict[int, int] = defaultdict(int)
        got: dict[int, int] = defaultdict(int)
        for _, key in items:
            planned[_member_of(key)] += 1
        for key in [key for _, key in outcome.issued] + [c.cause_key for c in outcome.existing]:
            got[_member_of(key)] += 1
        _record_short(session, ctx.id, benefit, period,
                      {m: got[m] for m, n in planned.items() if got[m] != n})
    return issued


def _member_of(cause_key: str) -> int:
    return int(cause_key.split(":")[3])  # benefit:<period>:<benefit>:<member id>:<n>


def _record_short(session: Session, workspace_id: int, benefit: str, period: str, counts: dict[int, int]) -> None:
    if not counts:
        return
    table = cast(Table, BenefitGrant.__table__)
    session.execute(update(table).where(table.c.workspace_id == workspace_id, table.c.member_id == bindparam("mid"),
                                        table.c.benefit == benefit, table.c.period == period)
                    .values(coupons=bindparam("n")), [{"mid": m, "n": n} for m, n in sorted(counts.items())])


def start_benefit_run(session: Session, ctx: WorkspaceContext, period: str | None = None, *,
                      restart: bool = False) -> BenefitRun:
    """Grant the first chunk of a period now (default: this month) and queue the rest as jobs."""
    period = period or rules.month_period(rules.local_date(clock.now(), ctx.timezone))
    run = run_benefits_chunk(session, ctx, period, restart=restart)
    continue_later(session, run)
    return run


def continue_later(session: Session, run: BenefitRun) -> None:
    """Queue the next chunk of an unfinished run (the key makes a duplicate harmless)."""
    from siyu.jobs.service import enqueue

    if run.finished_at is None:
        enqueue(session, "loyalty.run_benefits", {"workspace_id": run.workspace_id, "period": run.period},
                workspace_id=run.workspace_id,
                key=f"loyalty.run_benefits:{run.workspace_id}:{run.period}:{run.cursor_member_id}")


def benefit_runs(session: Session, workspace_id: int) -> list[BenefitRun]:
    return repository.benefit_runs(session, workspace_id)
