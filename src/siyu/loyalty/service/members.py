"""Members: enrolment with recorded consent, leaving, dedicated service, and what a member sees."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.loyalty import repository
from siyu.loyalty.errors import MemberNotActive, MemberNotFound, NoDedicatedService
from siyu.loyalty.models import Member, PointsEntry, Programme, Tier, TierChange
from siyu.loyalty.service.programme import get_programme, ladder
from siyu.loyalty.service.tiers import TierChangePlan, apply_tier_changes, metric_values
from siyu.workspaces.service import WorkspaceContext

EXPIRING_SOON = timedelta(days=30)


@dataclass(frozen=True)
class Consent:
    channel: str
    text_version: str
    at: datetime | None = None


def _consent_time(consent: Consent) -> datetime:
    now = clock.now()
    if consent.at is not None and consent.at > now + timedelta(minutes=5):
        raise ValidationFailed("consent cannot be given in the future", field="consent.at")
    return consent.at or now


def get_member(session: Session, workspace_id: int, customer_id: int) -> Member:
    """The member of a customer (an absorbed customer id finds the survivor's membership)."""
    from siyu.customers.service import resolve_customer_id

    member = repository.member_of_customer(session, workspace_id, resolve_customer_id(session, workspace_id,
                                                                                       customer_id))
    if member is None:
        raise MemberNotFound(f"customer {customer_id} is not a member", field="customer_id")
    return member


def enrol_member(session: Session, ctx: WorkspaceContext, customer_id: int, consent: Consent, *,
                 actor: str) -> Member:
    """Make a customer a member (idempotent; a member who left rejoins with their old number)."""
    from siyu.customers.service import resolve_customer_id

    programme = get_programme(session, ctx.id)
    survivor = resolve_customer_id(session, ctx.id, customer_id)
    consented_at = _consent_time(consent)
    member = repository.member_of_customer(session, ctx.id, survivor)
    if member is not None:
        return _rejoin(session, ctx, member, consent, consented_at, actor) if member.status == "left" else member
    try:
        with session.begin_nested():
            members = _insert_members(session, ctx, programme, [survivor], consent, consented_at)
    except IntegrityError:  # enrolled concurrently: the other enrolment stands
        member = repository.member_of_customer(session, ctx.id, survivor)
        assert member is not None
        return member
    record_audit(session, ctx.id, actor, "loyalty.enrolled", "loyalty_member", members[0].id,
                 {"customer_id": survivor, "consent_channel": consent.channel,
                  "consent_text_version": consent.text_version, "consent_at": consented_at.isoformat()})
    return members[0]


def enrol_members_bulk(session: Session, ctx: WorkspaceContext, customer_ids: list[int], consent: Consent, *,
                       actor: str) -> int:
    """Enrol many customers at once (a migration from another system); existing members are skipped."""
    from siyu.customers.service import resolve_customer_ids

    programme = get_programme(session, ctx.id)
    resolved = resolve_customer_ids(session, ctx.id, customer_ids)
    missing = [cid for cid in customer_ids if cid not in resolved]
    if missing:
        raise ValidationFailed(f"{len(missing)} customers are not in this workspace (first: {missing[0]})",
                               field="customer_ids")
    wanted = sorted(set(resolved.values()))
    already = repository.members_of_customers(session, ctx.id, wanted)
    fresh = [cid for cid in wanted if cid not in already]
    members = _insert_members(session, ctx, programme, fresh, consent, _consent_time(consent))
    record_audit(session, ctx.id, actor, "loyalty.enrolled_bulk", "loyalty_programme", programme.id,
                 {"count": len(members), "consent_channel": consent.channel,
                  "consent_text_version": consent.text_version})
    return len(members)


def _insert_members(session: Session, ctx: WorkspaceContext, programme: Programme, customer_ids: list[int],
                    consent: Consent, consented_at: datetime) -> list[Member]:
    if not customer_ids:
        return []
    now = clock.now()
    base = ladder(session, ctx.id).base()
    last = repository.take_member_numbers(session, programme.id, len(customer_ids))
    first = last - len(customer_ids) + 1
    members = repository.insert_members(session, [
        {"workspace_id": ctx.id, "customer_id": cid, "member_number": f"{programme.member_number_prefix}{n:08d}",
         "status": "active", "tier_id": base.id, "tier_reached_at": now, "tier_valid_until": None,
         "points_balance": 0, "points_pending": 0, "points_debt": 0, "consent_at": consented_at,
         "consent_channel": consent.channel, "consent_text_version": consent.text_version, "enrolled_at": now,
         "updated_at": now} for n, cid in enumerate(customer_ids, start=first)])
    apply_tier_changes(session, ctx, [TierChangePlan(m, None, base, "enrolled", "enrolled", 0,
                                                     f"enrolled:{m.id}:{m.enrolled_at.isoformat()}", now, None)
                                      for m in members])
    return members


def _rejoin(session: Session, ctx: WorkspaceContext, member: Member, consent: Consent, consented_at: datetime,
            actor: str) -> Member:
    member = repository.lock_members(session, ctx.id, [member.id])[member.id]
    if member.status == "left":
        member.status, member.left_at = "active", None
        member.consent_at, member.consent_channel = consented_at, consent.channel
        member.consent_text_version, member.updated_at = consent.text_version, clock.now()
        session.flush()
        record_audit(session, ctx.id, actor, "loyalty.rejoined", "loyalty_member", member.id,
                     {"consent_channel": consent.channel, "consent_text_version": consent.text_version})
    return member


def leave_programme(session: Session, ctx: WorkspaceContext, customer_id: int, *, actor: str) -> Member:
    """Benefits and earning stop; the member's history, balance and number are kept."""
    member = get_member(session, ctx.id, customer_id)
    member = repository.lock_members(session, ctx.id, [member.id])[member.id]
    if member.status != "active":
        raise MemberNotActive(f"member {member.member_number} is {member.status}", field="customer_id")
    member.status, member.left_at, member.updated_at = "left", clock.now(), clock.now()
    session.flush()
    record_audit(session, ctx.id, actor, "loyalty.left", "loyalty_member", member.id, {})
    return member


def assign_dedicated_staff(session: Session, ctx: WorkspaceContext, customer_id: int, staff_id: str | None, *,
                           actor: str) -> Member:
    """The 1-to-1 staff member of a tier with dedicated service (None takes them off)."""
    member = get_member(session, ctx.id, customer_id)
    member = repository.lock_members(session, ctx.id, [member.id])[member.id]
    tier = ladder(session, ctx.id).by_id(member.tier_id)
    if staff_id is not None and not tier.dedicated_service:
        raise NoDedicatedService(f"tier {tier.code} has no dedicated service", field="staff_id")
    member.dedicated_staff_id, member.updated_at = staff_id, clock.now()
    session.flush()
    record_audit(session, ctx.id, actor, "loyalty.dedicated_staff", "loyalty_member", member.id,
                 {"staff_id": staff_id})
    return member


@dataclass(frozen=True)
class MemberSummary:
    member: Member
    tier: Tier
    next_tier: Tier | None
    metric: str
    window: str
    metric_value: int
    usable_coupons: int
    points_expiring_soon: int

    @property
    def to_next(self) -> int | None:
        return max(0, self.next_tier.threshold - self.metric_value) if self.next_tier else None


def member_summary(session: Session, ctx: WorkspaceContext, customer_id: int) -> MemberSummary:
    """Tier, progress to the next tier, points and usable coupons of a customer's membership."""
    from siyu.coupons.service import usable_coupon_count

    programme = get_programme(session, ctx.id)
    member = get_member(session, ctx.id, customer_id)
    tiers = ladder(session, ctx.id)
    tier = tiers.by_id(member.tier_id)
    now = clock.now()
    value = metric_values(session, programme, [member.id], now, ctx.timezone)[member.id]
    window = programme.tier_window + (f":{programme.tier_window_months}" if programme.tier_window_months else "")
    return MemberSummary(member, tier, tiers.above(tier), programme.tier_metric, window, value,
                         usable_coupon_count(session, ctx.id, member.customer_id),
                         repository.expiring_points(session, member.id, now + EXPIRING_SOON))


def list_members(session: Session, workspace_id: int, *, tier_id: int | None = None, status: str | None = None,
                 cursor: str | None = None, limit: int = 50) -> tuple[list[Member], str | None]:
    return repository.list_members(session, workspace_id, tier_id=tier_id, status=status, cursor=cursor,
                                   limit=max(1, min(limit, 200)))


def tier_member_counts(session: Session, workspace_id: int) -> dict[int, int]:
    """Active members per tier id."""
    return repository.count_members_by_tier(session, workspace_id)


def member_ledger(session: Session, workspace_id: int, customer_id: int, *, cursor: str | None = None,
                  limit: int = 50) -> tuple[list[PointsEntry], str | None]:
    member = get_member(session, workspace_id, customer_id)
    return repository.ledger_page(session, member.id, cursor, max(1, min(limit, 500)))


def tier_history(session: Session, workspace_id: int, customer_id: int) -> list[TierChange]:
    return repository.tier_history(session, get_member(session, workspace_id, customer_id).id)


def tier_names_of(session: Session, workspace_id: int, customer_ids: list[int]) -> dict[int, str]:
    """The tier name of each active member among these customers (for personalised messages)."""
    from sqlalchemy import select

    found: dict[int, str] = {}
    unique = sorted(set(customer_ids))
    for start in range(0, len(unique), 5000):
        rows = session.execute(select(Member.customer_id, Tier.name).join(Tier, Tier.id == Member.tier_id)
                               .where(Member.workspace_id == workspace_id, Member.status == "active",
                                      Member.customer_id.in_(unique[start:start + 5000])))
        found.update({int(customer_id): name for customer_id, name in rows})
    return found
