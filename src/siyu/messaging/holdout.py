"""The global holdout: a configurable share of customers who never receive marketing, so that the
uplift of messaging can be measured against them.

Membership is a deterministic draw (a hash of the draw name and the customer id), so the policy
decides it without a query and a new customer is in or out from their first message. The refresh
job records the members in `holdout_members` for analysis and, when `rotate_days` is set, starts a
new draw once the current one is that old.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from siyu.audit.service import record_audit
from siyu.kit import clock
from siyu.messaging import audiences
from siyu.messaging.models import HoldoutMember, MessagingSettings
from siyu.messaging.policy import in_holdout
from siyu.messaging.settings import load_policy, save_policy

BATCH = 10_000


def refresh_holdout(session: Session, workspace_id: int) -> int:
    """Rotate the draw when due, then make `holdout_members` match it; returns the member count."""
    from siyu.customers.service import live_customer_ids

    policy = load_policy(session, workspace_id)
    holdout = policy.holdout
    now = clock.now()
    if holdout.share > 0 and (holdout.drawn_at is None or (
            holdout.rotate_days is not None and now - holdout.drawn_at >= timedelta(days=holdout.rotate_days))):
        previous = holdout.draw
        if holdout.drawn_at is not None:
            holdout.draw = secrets.token_hex(8)
        holdout.drawn_at = now
        save_policy(session, workspace_id, policy)
        record_audit(session, workspace_id, "system", "holdout.drawn", "workspace", workspace_id,
                     {"draw": holdout.draw, "previous": previous, "share": holdout.share})
    session.execute(delete(HoldoutMember).where(HoldoutMember.workspace_id == workspace_id,
                                                HoldoutMember.draw != holdout.draw))
    ids_select = live_customer_ids(workspace_id)
    cursor = 0
    while True:
        ids = audiences.next_batch(session, ids_select, cursor, BATCH)
        if not ids:
            break
        cursor = ids[-1]
        members = {i for i in ids if in_holdout(policy, workspace_id, i)}
        recorded = set(session.scalars(select(HoldoutMember.customer_id).where(
            HoldoutMember.workspace_id == workspace_id, HoldoutMember.customer_id.in_(ids))))
        stale = recorded - members
        if stale:
            session.execute(delete(HoldoutMember).where(HoldoutMember.workspace_id == workspace_id,
                                                        HoldoutMember.customer_id.in_(sorted(stale))))
        fresh = members - recorded
        if fresh:
            session.execute(insert(HoldoutMember), [{"workspace_id": workspace_id, "customer_id": cid,
                                                     "draw": holdout.draw, "assigned_at": now}
                                                    for cid in sorted(fresh)])
    return holdout_size(session, workspace_id)


def holdout_size(session: Session, workspace_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(HoldoutMember)
                              .where(HoldoutMember.workspace_id == workspace_id)) or 0)


def refresh_all_holdouts(session: Session) -> None:
    """Every workspace with messaging settings (a workspace without any has no holdout)."""
    workspaces = session.scalars(select(MessagingSettings.workspace_id).order_by(MessagingSettings.workspace_id))
    for workspace_id in list(workspaces):
        refresh_holdout(session, workspace_id)
