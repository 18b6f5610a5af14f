"""Moving one member's points on request (award, adjust, redeem, deduct) and the scheduled moves
(pending → available after the return window, expiry). Every move is keyed by its cause: repeating a
request with the same key returns the first entry and changes nothing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from math import gcd

from sqlalchemy.orm import Session

from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.loyalty import repository, rules
from siyu.loyalty.errors import (
    DeductionTooLarge,
    IdempotencyConflict,
    InvalidPoints,
    MemberNotActive,
    NotRedeemableWithPoints,
)
from siyu.loyalty.models import Member, PointsEntry, PointsLot, Programme
from siyu.loyalty.service.ledger import LedgerPlan
from siyu.loyalty.service.members import get_member
from siyu.loyalty.service.programme import get_programme
from siyu.workspaces.service import WorkspaceContext

SCHEDULED_BATCH = 2000


@dataclass(frozen=True)
class PointsResult:
    entry: PointsEntry
    member: Member
    deduction_fen: int | None = None
    coupon_code: str | None = None


def _check_points(points: object, *, allow_negative: bool = False) -> int:
    if not isinstance(points, int) or isinstance(points, bool) or points == 0 \
            or (points < 0 and not allow_negative) or abs(points) > 10**12:
        raise InvalidPoints("points are a whole, non-zero number" + ("" if allow_negative else " above zero"),
                            field="points")
    return points


def _check_amount(order_amount_fen: object) -> None:
    if not isinstance(order_amount_fen, int) or isinstance(order_amount_fen, bool) \
            or not 0 <= order_amount_fen <= 10**13:
        raise InvalidPoints("order_amount_fen is a whole, non-negative number of fen", field="order_amount_fen")


def _locked_member(session: Session, ctx: WorkspaceContext, customer_id: int, *, active: bool = True) -> Member:
    member = get_member(session, ctx.id, customer_id)
    locked = repository.lock_members(session, ctx.id, [member.id])[member.id]
    if active and locked.status != "active":
        raise MemberNotActive(f"member {locked.member_number} is {locked.status}", field="customer_id")
    return locked


def _replay(session: Session, ctx: WorkspaceContext, key: str, member: Member) -> PointsEntry | None:
    entry = repository.entry_by_key(session, ctx.id, key)
    if entry is not None and entry.member_id != member.id:
        raise IdempotencyConflict("this idempotency key was used for another member", field="idempotency_key")
    return entry


def _write(session: Session, plan: LedgerPlan, key: str, member: Member) -> PointsEntry:
    plan.write()
    entry = repository.entry_by_key(session, plan.workspace_id, key)
    assert entry is not None
    session.refresh(member)
    return entry


def award_points(session: Session, ctx: WorkspaceContext, customer_id: int, points: int, cause_key: str,
                 reason: str, *, actor: str | None = None) -> PointsResult:
    """Credit available points for a cause (referrals, journeys, campaigns); idempotent by cause."""
    _check_points(points)
    programme = get_programme(session, ctx.id)
    member = _locked_member(session, ctx, customer_id)
    key = f"award:{cause_key}"
    existing = _replay(session, ctx, key, member)
    if existing is not None:
        return PointsResult(existing, member)
    now = clock.now()
    plan = LedgerPlan(session, ctx.id, {member.id: member}, programme.allow_negative_balance, now)
    plan.credit(member.id, points, "award", key, reason, now, actor=actor,
                expires_at=rules.points_expiry(now, ctx.timezone, programme.points_expiry,
                                               programme.points_expiry_months))
    entry = _write(session, plan, key, member)
    publish(session, "points_earned", {"workspace_id": ctx.id, "member_id": member.id,
                                       "customer_id": member.customer_id, "points": points, "pending": False,
                                       "cause_key": key},
            workspace_id=ctx.id, key=f"{ctx.id}:{key}")
    return PointsResult(entry, member)


def adjust_points(session: Session, ctx: WorkspaceContext, customer_id: int, points: int, reason: str,
                  idempotency_key: str, *, actor: str) -> PointsResult:
    """An operator's correction, with a reason; a deduction beyond the balance is refused."""
    from siyu.audit.service import record_audit

    _check_points(points, allow_negative=True)
    programme = get_programme(session, ctx.id)
    member = _locked_member(session, ctx, customer_id, active=False)
    key = f"adjust:{idempotency_key}"
    existing = _replay(session, ctx, key, member)
    if existing is not None:
        return PointsResult(existing, member)
    now = clock.now()
    plan = LedgerPlan(session, ctx.id, {member.id: member}, programme.allow_negative_balance, now)
    if points > 0:
        plan.credit(member.id, points, "adjust", key, reason, now, actor=actor,
                    expires_at=rules.points_expiry(now, ctx.timezone, programme.points_expiry,
                                                   programme.points_expiry_months))
    else:
        plan.debit(member.id, -points, "adjust", key, reason, actor=actor)
    record_audit(session, ctx.id, actor, "loyalty.points_adjusted", "loyalty_member", member.id,
                 {"points": points, "reason": reason})
    return PointsResult(_write(session, plan, key, member), member)


def redeem_points(session: Session, ctx: WorkspaceContext, customer_id: int, points: int, reason: str,
                  idempotency_key: str, *, actor: str | None = None) -> PointsResult:
    """Spend points on a gift; refused beyond the available balance (never into debt)."""
    _check_points(points)
    programme = get_programme(session, ctx.id)
    member = _locked_member(session, ctx, customer_id)
    key = f"redeem:{idempotency_key}"
    existing = _replay(session, ctx, key, member)
    if existing is not None:
        return PointsResult(existing, member)
    plan = LedgerPlan(session, ctx.id, {member.id: member}, programme.allow_negative_balance)
    plan.debit(member.id, points, "redeem", key, reason, actor=actor)
    return PointsResult(_write(session, plan, key, member), member)


def redeem_points_for_coupon(session: Session, ctx: WorkspaceContext, customer_id: int, template_id: int,
                             idempotency_key: str, *, actor: str | None = None) -> PointsResult:
    """Pay a template's points price and receive one of its coupons, in one unit of work."""
    from siyu.coupons.service import get_template, issue_coupon

    programme = get_programme(session, ctx.id)
    member = _locked_member(session, ctx, customer_id)  # member lock before the template's: see repository
    key = f"redeem:{idempotency_key}"
    existing = _replay(session, ctx, key, member)
    coupon_key = f"points:{idempotency_key}"
    if existing is not None:
        coupon = issue_coupon(session, ctx, template_id, member.customer_id, coupon_key)
        return PointsResult(existing, member, coupon_code=coupon.code)
    template = get_template(session, ctx.id, template_id)
    if template.points_cost is None:
        raise NotRedeemableWithPoints(f"coupon template {template_id} cannot be had for points",
                                      field="template_id")
    plan = LedgerPlan(session, ctx.id, {member.id: member}, programme.allow_negative_balance)
    plan.debit(member.id, template.points_cost, "redeem", key, f"coupon {template.name}", actor=actor)
    entry = _write(session, plan, key, member)
    coupon = issue_coupon(session, ctx, template_id, member.customer_id, coupon_key)
    return PointsResult(entry, member, coupon_code=coupon.code)


def deduct_points(session: Session, ctx: WorkspaceContext, customer_id: int, order_id: str, order_amount_fen: int,
                  points: int, *, actor: str | None = None) -> PointsResult:
    """Points as money off an order: `deduction_points_per_yuan` points are ¥1, at most
    `max_deduction_percent` of the order. One deduction per order (the order id is the key)."""
    _check_points(points)
    _check_amount(order_amount_fen)
    programme = get_programme(session, ctx.id)
    member = _locked_member(session, ctx, customer_id)
    key = f"deduct:{order_id}"
    existing = _replay(session, ctx, key, member)
    if existing is not None:
        return PointsResult(existing, member, deduction_fen=rules.deduction_fen(-existing.points,
                                                                                programme.deduction_points_per_yuan))
    fen = rules.deduction_fen(points, programme.deduction_points_per_yuan)
    if fen is None:
        raise InvalidPoints(f"at {programme.deduction_points_per_yuan} points per ¥1 these points are not a whole "
                            "number of fen", field="points")
    cap = order_amount_fen * programme.max_deduction_percent // 100
    if fen > cap:
        raise DeductionTooLarge(f"points may pay at most {programme.max_deduction_percent}% of the order "
                                f"({cap} fen); {points} points are {fen} fen", field="points")
    plan = LedgerPlan(session, ctx.id, {member.id: member}, programme.allow_negative_balance)
    plan.debit(member.id, points, "deduct", key, f"{fen} fen off order {order_id}", order_id=order_id, actor=actor)
    return PointsResult(_write(session, plan, key, member), member, deduction_fen=fen)


@dataclass(frozen=True)
class MemberPrice:
    """What a member pays at the shop: the tier's discount (会员价), then how much of the rest points may pay."""

    member: Member
    tier_code: str
    order_amount_fen: int
    shop_discount_percent: int
    member_discount_fen: int
    member_price_fen: int
    max_deduction_fen: int
    max_deduction_points: int


def quote_member_price(session: Session, ctx: WorkspaceContext, customer_id: int,
                       order_amount_fen: int) -> MemberPrice:
    """Price an order for a member: the shop discount of the tier they hold (none once they left), and
    the most their available points may take off the member price (the programme's deduction rule,
    whole fen only). Nothing is written; `deduct_points` spends the points at checkout."""
    from siyu.loyalty.service.programme import ladder

    _check_amount(order_amount_fen)
    programme = get_programme(session, ctx.id)
    member = get_member(session, ctx.id, customer_id)
    tier = ladder(session, ctx.id).by_id(member.tier_id)
    percent = tier.shop_discount_percent if member.status == "active" else 100
    price = rules.member_price_fen(order_amount_fen, percent)
    per_yuan = programme.deduction_points_per_yuan
    cap_fen = price * programme.max_deduction_percent // 100 if member.status == "active" else 0
    points = min(max(0, member.points_balance), cap_fen * per_yuan // 100)
    points -= points % _points_per_whole_fen(per_yuan)
    deduction = rules.deduction_fen(points, per_yuan) or 0
    return MemberPrice(member, tier.code, order_amount_fen, percent, order_amount_fen - price, price, deduction,
                       points)


def _points_per_whole_fen(points_per_yuan: int) -> int:
    """The smallest number of points worth a whole number of fen (100 per ¥1 → 1; 150 per ¥1 → 3)."""
    return points_per_yuan // gcd(points_per_yuan, 100)


# -- scheduled ---------------------------------------------------------------------------------

def _by_workspace(lots: list[PointsLot]) -> dict[int, list[PointsLot]]:
    grouped: dict[int, list[PointsLot]] = defaultdict(list)
    for lot in lots:
        grouped[lot.workspace_id].append(lot)
    return grouped


def _programme_and_members(session: Session, workspace_id: int,
                           lots: list[PointsLot]) -> tuple[Programme | None, dict[int, Member]]:
    return (repository.programme(session, workspace_id),
            repository.lock_members(session, workspace_id, {lot.member_id for lot in lots}))


def release_pending_points(session: Session, *, limit: int = SCHEDULED_BATCH) -> int:
    """Make order points available once their return window has closed (every workspace)."""
    due = repository.due_lots(session, "pending", PointsLot.available_at, clock.now(), limit)
    released = 0
    for workspace_id, lots in _by_workspace(due).items():
        programme, members = _programme_and_members(session, workspace_id, lots)
        if programme is None:
            continue
        # Re-read under the member locks: a refund may have cancelled a lot meanwhile.
        current = repository.lots_by_entry(session, [lot.entry_id for lot in lots])
        plan = LedgerPlan(session, workspace_id, members, programme.allow_negative_balance)
        for lot in current.values():
            if lot.status == "pending" and lot.remaining > 0:
                plan.release(lot, f"release:{lot.id}")
                released += 1
        plan.write()
    return released


def expire_points(session: Session, *, limit: int = SCHEDULED_BATCH) -> int:
    """Expire what is left of lots past their expiry (every workspace); returns points expired."""
    due = repository.due_lots(session, "available", PointsLot.expires_at, clock.now(), limit)
    expired = 0
    for workspace_id, lots in _by_workspace(due).items():
        programme, members = _programme_and_members(session, workspace_id, lots)
        if programme is None:
            continue
        current = repository.lots_by_entry(session, [lot.entry_id for lot in lots])
        plan = LedgerPlan(session, workspace_id, members, programme.allow_negative_balance)
        for lot in current.values():
            if lot.status == "available" and lot.remaining > 0:
                plan.expire(lot, f"expire:{lot.id}")
                expired += lot.remaining
        plan.write()
    return expired

