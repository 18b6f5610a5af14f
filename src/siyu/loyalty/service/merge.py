"""Customer merges: the survivor keeps one membership holding everything both had.

- Only the absorbed profile is a member: the membership moves to the survivor as it is.
- Both are members: the absorbed member's ledger entries, lots, qualifying activity and benefit
  grants move to the survivor's membership (entries are re-attributed, never changed), balances
  move with them, the higher tier is kept, and the absorbed membership is closed as `merged`.
  A debt is then settled from the merged balance. See docs/adr/0003-points-ledger.md.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session, aliased

from siyu.kit import clock
from siyu.kit.timefmt import zone
from siyu.loyalty import repository, rules
from siyu.loyalty.models import Activity, BenefitGrant, Member, PointsEntry, PointsLot
from siyu.loyalty.service.ledger import LedgerPlan
from siyu.loyalty.service.programme import ladder
from siyu.loyalty.service.tiers import TierChangePlan, apply_tier_changes, metric_values, valid_until
from siyu.workspaces.service import WorkspaceContext


def merge_members(session: Session, ctx: WorkspaceContext, survivor_customer_id: int,
                  absorbed_customer_id: int) -> None:
    programme = repository.programme(session, ctx.id)
    if programme is None:
        return
    ids = repository.members_of_customers(session, ctx.id, [survivor_customer_id, absorbed_customer_id])
    locked = repository.lock_members(session, ctx.id, ids.values())
    absorbed = locked.get(ids.get(absorbed_customer_id, 0))
    if absorbed is None or absorbed.status == "merged":
        return
    survivor = locked.get(ids.get(survivor_customer_id, 0))
    now = clock.now()
    if survivor is None:
        absorbed.customer_id, absorbed.updated_at = survivor_customer_id, now
        session.flush()
        return
    for model in (PointsEntry, PointsLot, Activity):
        session.execute(update(model).where(model.member_id == absorbed.id).values(member_id=survivor.id)
                        .execution_options(synchronize_session=False))
    theirs = aliased(BenefitGrant)
    session.execute(update(BenefitGrant).where(
        BenefitGrant.member_id == absorbed.id,
        ~exists(select(theirs.id).where(and_(theirs.member_id == survivor.id, theirs.benefit == BenefitGrant.benefit,
                                             theirs.period == BenefitGrant.period))))
        .values(member_id=survivor.id).execution_options(synchronize_session=False))
    moved = (absorbed.points_balance, absorbed.points_pending, absorbed.points_debt)
    repository.apply_balance_deltas(session, {survivor.id: moved, absorbed.id: (-moved[0], -moved[1], -moved[2])},
                                    now)
    absorbed.status, absorbed.merged_into_id, absorbed.updated_at = "merged", survivor.id, now
    if survivor.dedicated_staff_id is None:
        survivor.dedicated_staff_id = absorbed.dedicated_staff_id
    session.flush()
    session.refresh(survivor)
    _settle(session, ctx.id, survivor, programme.allow_negative_balance, absorbed.id)
    _keep_higher_tier(session, ctx, survivor, absorbed)


def _settle(session: Session, workspace_id: int, member: Member, allow_negative: bool, absorbed_id: int) -> None:
    plan = LedgerPlan(session, workspace_id, {member.id: member}, allow_negative)
    plan.repay_debt(member.id, f"merge:{absorbed_id}:repay", "debt repaid from the merged points")
    plan.trim_lots(member.id)
    plan.write()
    session.refresh(member)


def _keep_higher_tier(session: Session, ctx: WorkspaceContext, survivor: Member, absorbed: Member) -> None:
    from siyu.loyalty.service.programme import get_programme

    tiers = ladder(session, ctx.id)
    mine, theirs = tiers.by_id(survivor.tier_id), tiers.by_id(absorbed.tier_id)
    changes = []
    current = mine
    if theirs.rank > mine.rank:
        changes.append(TierChangePlan(survivor, mine, theirs, "merged", f"merged with member {absorbed.member_number}",
                                      0, f"merge:{absorbed.id}:tier", clock.now(), absorbed.tier_valid_until,
                                      reached_at=absorbed.tier_reached_at))
        current = theirs
    programme = get_programme(session, ctx.id)
    value = metric_values(session, programme, [survivor.id], clock.now(), ctx.timezone)[survivor.id]
    rank = rules.qualifying_rank(tiers.thresholds, value)
    if rank > current.rank:
        reached = tiers.tiers[rank]
        now = clock.now()
        changes.append(TierChangePlan(survivor, current, reached, "up",
                                      f"merged activity brings {programme.tier_metric} to {value}", value,
                                      f"merge:{absorbed.id}:up", now, valid_until(reached, now, zone(ctx.timezone))))
    apply_tier_changes(session, ctx, changes)
