"""Earning from events, one ingested batch at a time (the per-type domain events `order_paid`, `check_in`,
…), in bulk: a handful of queries per batch,
not per event).

- `order_paid`: floor(yuan paid × points per ¥ × tier multiplier × member-day multiplier) points,
  pending until the return window closes (available at once when it already has), and growth and
  spend toward tiers. Points use the tier held before the order; the order may then upgrade.
- `check_in`, `share`: fixed points and growth, capped per member per local day and month.
- `order_refunded`: what the order earned is scaled down to what its net amount still deserves;
  pending points are cancelled, spent ones come back from the balance (see `ledger`).

Every effect is keyed by its cause (`order:<order id>`, `check_in:<event id>`, `refund:<event id>`),
so replaying events changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.events.service import EventRecord, OrderRecord
from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.kit.errors import ValidationFailed
from siyu.kit.timefmt import zone
from siyu.loyalty import repository, rules
from siyu.loyalty.models import Activity, PointsEntry, Programme, Tier
from siyu.loyalty.repository import MemberRow
from siyu.loyalty.service.ledger import LedgerPlan
from siyu.loyalty.service.programme import ladder
from siyu.loyalty.service.tiers import TierTracker, apply_tier_changes
from siyu.workspaces.service import WorkspaceContext

RELEVANT = frozenset({"order_paid", "order_refunded", "check_in", "share"})
ACTIONS = ("check_in", "share")
DEDUCTION_RETURN = "deduct_return"  # the ledger kind (and cause prefix) of deducted points a refund gives back


@dataclass
class EarningSummary:
    events: int = 0
    points_earned: int = 0
    points_reversed: int = 0
    tier_changes: int = 0


def cause_of(event: EventRecord) -> str:
    if event.type == "order_paid":
        return f"order:{event.properties['order_id']}"
    if event.type == "order_refunded":
        return f"refund:{event.event_id}"
    return f"{event.type}:{event.event_id}"


REPLAY_BATCH = 30_000  # events per transaction of a replay: the size of an import's batches


def replay_page(session: Session, ctx: WorkspaceContext, after_id: int,
                batch: int = REPLAY_BATCH) -> tuple[int | None, EarningSummary]:
    """Run the next `batch` stored events (after row id `after_id`) through earning and tiers, as if
    they had just been ingested: for a programme started after its orders were imported, or after an
    outage of the worker. What was already earned is skipped (every effect is keyed by its cause).
    Returns the last row id read (None when there was nothing left) and what changed."""
    from siyu.events.service import event_ids_after

    if not 1 <= batch <= 100_000:
        raise ValidationFailed("a replay batch holds 1 to 100,000 events", field="batch")
    ids = event_ids_after(session, ctx.id, RELEVANT, after_id, batch)
    if not ids:
        return None, EarningSummary()
    return ids[-1], process_events(session, ctx, ids)


def process_events(session: Session, ctx: WorkspaceContext, event_ids: list[int]) -> EarningSummary:
    from siyu.events.service import event_records, order_records

    summary = EarningSummary()
    programme = repository.programme(session, ctx.id)
    if programme is None:
        return summary
    events = event_records(session, ctx.id, event_ids, RELEVANT)
    if not events:
        return summary
    repository.refresh_statistics(session)
    members = repository.lock_member_rows(session, ctx.id, {e.customer_id for e in events})
    events = [e for e in events if e.customer_id in members and members[e.customer_id].status == "active"]
    done = repository.existing_activity_keys(session, ctx.id, [cause_of(e) for e in events])
    fresh: dict[str, EventRecord] = {}
    for event in events:
        fresh.setdefault(cause_of(event), event)
    events = [e for key, e in fresh.items() if key not in done]
    if not events:
        return summary
    orders = order_records(session, ctx.id, [str(e.properties["order_id"]) for e in events
                                                   if e.type in ("order_paid", "order_refunded")])
    earning = [e for e in events if e.type != "order_refunded"]
    refunds = [e for e in events if e.type == "order_refunded"]
    if earning:
        _earn(session, ctx, programme, members, earning, orders, summary)
    if refunds:
        _reverse(session, ctx, programme, members, refunds, orders, summary)
    summary.events = len(events)
    return summary


def _earn(session: Session, ctx: WorkspaceContext, programme: Programme, members: dict[int, MemberRow],
          events: list[EventRecord], orders: dict[str, OrderRecord], summary: EarningSummary) -> None:
    tz = zone(ctx.timezone)
    now = clock.now()
    tiers = ladder(session, ctx.id)
    since = rules.window_start(now, tz, programme.tier_window, programme.tier_window_months)
    member_ids = sorted({members[e.customer_id].id for e in events})
    sums = repository.window_sums(session, member_ids, since)
    caps = _ActionCaps.load(session, programme, [members[e.customer_id].id for e in events if e.type in ACTIONS],
                            [e.occurred_at for e in events if e.type in ACTIONS], tz)
    plan = LedgerPlan(session, ctx.id, {m.id: m for m in members.values()}, programme.allow_negative_balance, now)
    trackers: dict[int, TierTracker] = {}
    activities: list[dict[str, Any]] = []
    terms = _OrderTerms.of(programme, tz, now)
    for event in events:
        member = members[event.customer_id]
        tracker = trackers.get(member.id)
        if tracker is None:
            value = rules.metric_value(programme.tier_metric, *sums.get(member.id, (0, 0, 0)))
            tracker = trackers[member.id] = TierTracker(member, tiers, programme, value, since, tz)
        if event.type == "order_paid":
            activity = _earn_order(plan, terms, tracker, event, orders)
        else:
            activity = _earn_action(plan, programme, caps, member, event, tz)
        if activity is None:
            continue
        activity["workspace_id"], activity["member_id"], activity["created_at"] = ctx.id, member.id, now
        activities.append(activity)
        tracker.add(activity["spend_fen"], activity["orders"], activity["growth"], activity["occurred_at"],
                    activity["cause_key"])
    repository.insert_activities(session, activities)
    plan.write()
    announce = _has_subscribers("points_earned")
    for posting in plan.postings:
        row = posting.row
        earned = row["points"] + row["pending"] - row["debt"]
        summary.points_earned += earned
        if announce:
            publish(session, "points_earned", {"workspace_id": ctx.id, "member_id": row["member_id"],
                                               "customer_id": plan.members[row["member_id"]].customer_id,
                                               "points": earned, "pending": row["pending"] > 0,
                                               "cause_key": row["cause_key"]},
                    workspace_id=ctx.id, key=f"{ctx.id}:{row['cause_key']}")
    summary.tier_changes += apply_tier_changes(session, ctx, [c for t in trackers.values() for c in t.changes])


def _has_subscribers(event: str) -> bool:
    """Whether publishing `event` reaches anyone (a replay would otherwise build a payload per entry)."""
    from siyu.subscriptions import SUBSCRIPTIONS

    return bool(SUBSCRIPTIONS.get(event))


@dataclass(slots=True)
class _OrderTerms:
    """The programme's terms for order earnings, read once per batch (not per event)."""

    points_per_yuan: int
    growth_per_yuan: int
    member_day: int | None
    return_window: timedelta
    expiry: str
    expiry_months: int | None
    tz: ZoneInfo
    now: datetime
    _expiry_by_year: dict[int, datetime | None]
    _member_days: dict[date, bool]
    _rates: dict[tuple[int, bool], tuple[int, int, str]]

    @classmethod
    def of(cls, programme: Programme, tz: ZoneInfo, now: datetime) -> _OrderTerms:
        return cls(programme.points_per_yuan, programme.growth_per_yuan, programme.member_day,
                   timedelta(days=programme.return_window_days), programme.points_expiry,
                   programme.points_expiry_months, tz, now, {}, {}, {})

    def rates(self, tier: Tier, member_day: bool) -> tuple[int, int, str]:
        """(tier multiplier %, member-day multiplier %, the reason's wording after the amount) of a tier."""
        known = self._rates.get((tier.id, member_day))
        if known is None:
            day_percent = tier.member_day_multiplier_percent if member_day else 100
            wording = (f" fen × {self.points_per_yuan}/¥ × {tier.points_multiplier_percent}% ({tier.code})"
                       + (f" × {day_percent}% member day" if member_day else ""))
            known = self._rates[(tier.id, member_day)] = (tier.points_multiplier_percent, day_percent, wording)
        return known

    def is_member_day(self, local: date) -> bool:
        known = self._member_days.get(local)
        if known is None:
            known = self._member_days[local] = rules.is_member_date(local, self.member_day)
        return known

    def expires(self, earned_at: datetime, local: date) -> datetime | None:
        if self.expiry != "end_of_next_year":
            return rules.points_expiry(earned_at, self.tz, self.expiry, self.expiry_months)
        if local.year not in self._expiry_by_year:
            self._expiry_by_year[local.year] = rules.points_expiry(earned_at, self.tz, self.expiry, None)
        return self._expiry_by_year[local.year]


def _earn_order(plan: LedgerPlan, terms: _OrderTerms, tracker: TierTracker, event: EventRecord,
                orders: dict[str, OrderRecord]) -> dict[str, Any] | None:
    order = orders.get(str(event.properties["order_id"]))
    if order is None:
        return None
    net = max(0, order.total_fen - order.refunded_fen)
    paid_at = order.paid_at
    local = paid_at.astimezone(terms.tz).date()
    tier_percent, day_percent, wording = terms.rates(tracker.tier, terms.is_member_day(local))
    points = rules.order_points(net, terms.points_per_yuan, tier_percent, day_percent)
    key = f"order:{order.order_id}"
    if points > 0:
        reason = f"order {order.order_id}: {net}{wording}"
        expires = terms.expires(paid_at, local)
        available_at = paid_at + terms.return_window
        if available_at <= terms.now:
            plan.credit(tracker.member.id, points, "earn", key, reason, paid_at, expires_at=expires,
                        order_id=order.order_id, amount_fen=net)
        else:
            plan.credit_pending(tracker.member.id, points, key, reason, paid_at, available_at=available_at,
                                expires_at=expires, order_id=order.order_id, amount_fen=net)
    return {"kind": "order", "cause_key": key, "order_id": order.order_id, "occurred_at": paid_at,
            "local_day": rules.day_key(local), "spend_fen": net, "orders": 1 if net else 0,
            "growth": rules.growth_for_order(net, terms.growth_per_yuan), "capped": False}


@dataclass
class _ActionCaps:
    """Rewarded check-ins and shares per member per local day and month, kept current in the batch."""

    daily: dict[tuple[int, str, int], int]
    monthly: dict[tuple[int, str, int], int]

    @classmethod
    def load(cls, session: Session, programme: Programme, member_ids: list[int], times: list[datetime],
             tz: ZoneInfo) -> _ActionCaps:
        if not member_ids:
            return cls({}, {})
        first = min(rules.local_date(t, tz) for t in times)
        counts = repository.action_counts(session, member_ids, ACTIONS, rules.day_key(date(first.year, first.month, 1)))
        monthly: dict[tuple[int, str, int], int] = defaultdict(int)
        for (member_id, kind, day), count in counts.items():
            monthly[(member_id, kind, day // 100)] += count
        return cls(defaultdict(int, counts), monthly)

    def allows(self, programme: Programme, member_id: int, kind: str, day: int) -> bool:
        daily_cap = getattr(programme, f"{kind}_daily_cap")
        monthly_cap = getattr(programme, f"{kind}_monthly_cap")
        month = (member_id, kind, day // 100)
        if self.daily[(member_id, kind, day)] >= daily_cap or self.monthly[month] >= monthly_cap:
            return False
        self.daily[(member_id, kind, day)] += 1
        self.monthly[(member_id, kind, day // 100)] += 1
        return True


def _earn_action(plan: LedgerPlan, programme: Programme, caps: _ActionCaps, member: MemberRow, event: EventRecord,
                 tz: ZoneInfo) -> dict[str, Any]:
    kind = event.type
    day = rules.day_key(rules.local_date(event.occurred_at, tz))
    key = f"{kind}:{event.event_id}"
    allowed = caps.allows(programme, member.id, kind, day)
    points = getattr(programme, f"{kind}_points") if allowed else 0
    if points > 0:
        plan.credit(member.id, points, kind, key, kind.replace("_", "-"), event.occurred_at,
                    expires_at=rules.points_expiry(event.occurred_at, tz, programme.points_expiry,
                                                   programme.points_expiry_months))
    return {"kind": kind, "cause_key": key, "order_id": None, "occurred_at": event.occurred_at, "local_day": day,
            "spend_fen": 0, "orders": 0, "growth": getattr(programme, f"growth_per_{kind}") if allowed else 0,
            "capped": not allowed}


# -- refunds -----------------------------------------------------------------------------------

@dataclass
class _OrderState:
    base: Activity | None = None
    spend: int = 0
    orders: int = 0
    growth: int = 0
    earn: PointsEntry | None = None
    earned: int = 0
    reversed: int = 0
    deducted: int = 0  # points the member paid with on this order (`deduct_points`)
    deduction_returned: int = 0


def _order_states(session: Session, workspace_id: int, order_ids: list[str]) -> dict[str, _OrderState]:
    states: dict[str, _OrderState] = defaultdict(_OrderState)
    for activity in repository.order_activity(session, workspace_id, order_ids):
        state = states[activity.order_id or ""]
        if activity.kind == "order":
            state.base = activity
        state.spend += activity.spend_fen
        state.orders += activity.orders
        state.growth += activity.growth
    for entry in repository.order_entries(session, workspace_id, order_ids):
        state = states[entry.order_id or ""]
        if entry.kind == "earn":
            state.earn = entry
            state.earned += entry.points + entry.pending - entry.debt
        elif entry.kind == "reverse":
            state.reversed += -(entry.points + entry.pending) + entry.debt
        elif entry.kind == "deduct":
            state.deducted += -entry.points
        elif entry.kind == DEDUCTION_RETURN:
            state.deduction_returned += entry.points - entry.debt
    return states


def _reverse(session: Session, ctx: WorkspaceContext, programme: Programme, members: dict[int, MemberRow],
             events: list[EventRecord], orders: dict[str, OrderRecord], summary: EarningSummary) -> None:
    now = clock.now()
    tz = zone(ctx.timezone)
    order_ids = sorted({str(e.properties["order_id"]) for e in events})
    states = _order_states(session, ctx.id, order_ids)
    own_lots = repository.lots_by_entry(session, [s.earn.id for s in states.values() if s.earn is not None])
    plan = LedgerPlan(session, ctx.id, {m.id: m for m in members.values()}, programme.allow_negative_balance, now)
    activities = []
    for event in events:
        order_id = str(event.properties["order_id"])
        order, state = orders.get(order_id), states[order_id]
        if order is None:
            continue  # not stored yet: the order's own event applies the refund when it comes
        member = members[event.customer_id]
        net = max(0, order.total_fen - order.refunded_fen)
        _return_deduction(plan, programme, member.id, order_id, order.total_fen, net, state, event, tz)
        if state.base is None:
            continue  # the order earned nothing here (paid before enrolment)
        base = state.base
        spend = min(net, base.spend_fen)
        orders_count = 1 if spend and base.orders else 0
        growth = rules.still_deserved(base.growth, base.spend_fen, net)
        key = f"refund:{event.event_id}"
        activities.append({"workspace_id": ctx.id, "member_id": member.id, "kind": "refund", "cause_key": key,
                           "order_id": order_id, "occurred_at": base.occurred_at, "local_day": base.local_day,
                           "spend_fen": spend - state.spend, "orders": orders_count - state.orders,
                           "growth": growth - state.growth, "capped": False, "created_at": now})
        state.spend, state.orders, state.growth = spend, orders_count, growth
        if state.earn is None or state.earn.amount_fen is None:
            continue
        target = rules.still_deserved(state.earned, state.earn.amount_fen, net)
        to_reverse = state.earned - state.reversed - target
        if to_reverse > 0:
            plan.reverse(member.id, to_reverse, key, f"refund of order {order_id}: {net} fen left",
                         event.occurred_at, order_id=order_id, own_lot=own_lots.get(state.earn.id))
            state.reversed += to_reverse
            summary.points_reversed += to_reverse
    repository.insert_activities(session, activities)
    plan.write()


def _return_deduction(plan: LedgerPlan, programme: Programme, member_id: int, order_id: str, total_fen: int,
                      net_fen: int, state: _OrderState, event: EventRecord, tz: ZoneInfo) -> None:
    """Points that paid for part of an order come back in the share the refund takes: a full refund
    returns them all, a half refund half (rounded so the member never gets back more than they paid
    with). They come back as a new lot expiring by the programme's rule counted from the refund."""
    if state.deducted <= 0:
        return
    kept = rules.still_deserved(state.deducted, total_fen, net_fen)
    to_return = state.deducted - kept - state.deduction_returned
    if to_return <= 0:
        return
    plan.credit(member_id, to_return, DEDUCTION_RETURN, f"{DEDUCTION_RETURN}:{event.event_id}",
                f"refund of order {order_id}: {to_return} deducted points returned", event.occurred_at,
                expires_at=rules.points_expiry(event.occurred_at, tz, programme.points_expiry,
                                               programme.points_expiry_months), order_id=order_id)
    state.deduction_returned += to_return
