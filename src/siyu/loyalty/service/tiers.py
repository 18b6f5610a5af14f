"""Tier evaluation: upgrades at once on the qualifying event, downgrades only at the end of the
tier's validity period after a retention check (保级), every change recorded with its reason and
emitted as a `tier_changed` event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.jobs.service import publish
from siyu.kit import clock
from siyu.kit.timefmt import zone
from siyu.loyalty import repository, rules
from siyu.loyalty.models import Member, Programme, Tier
from siyu.loyalty.repository import MemberLike
from siyu.loyalty.service.programme import Ladder, ladder
from siyu.workspaces.service import WorkspaceContext

REVIEW_BATCH = 1000


@dataclass
class TierChangePlan:
    member: MemberLike
    from_tier: Tier | None
    to_tier: Tier
    direction: str  # enrolled | up | down | retained | merged
    reason: str
    metric_value: int
    cause_key: str
    at: datetime
    valid_until: datetime | None
    reached_at: datetime | None = None  # when the member reached the tier they hold after; default `at`


def valid_until(tier: Tier, reached_at: datetime, tz: ZoneInfo | str) -> datetime | None:
    return rules.later_by_months(reached_at, tier.validity_months, tz) if tier.validity_months else None


@dataclass
class TierTracker:
    """Follows one member through a batch of their events, in time order, and notes upgrades."""

    member: MemberLike
    tiers: Ladder
    programme: Programme
    value: int
    since: datetime | None
    tz: ZoneInfo
    tier: Tier = field(init=False)
    changes: list[TierChangePlan] = field(default_factory=list)
    _metric: int = field(init=False)  # index of the metric in (spend_fen, orders, growth)
    _next_threshold: int | None = field(init=False)  # of the tier above; None at the top

    def __post_init__(self) -> None:
        self.tier = self.tiers.by_id(self.member.tier_id)
        self._metric = rules.METRICS.index(self.programme.tier_metric)
        self._note_next()

    def _note_next(self) -> None:
        self._next_threshold = self.tiers.next_threshold(self.tier)

    def add(self, spend_fen: int, orders: int, growth: int, occurred_at: datetime, cause_key: str) -> None:
        if self.since is not None and occurred_at < self.since:
            return
        self.value += (spend_fen, orders, growth)[self._metric]
        if self._next_threshold is None or self.value < self._next_threshold:
            return  # the common case: below the next tier, nothing to evaluate
        rank = rules.qualifying_rank(self.tiers.thresholds, self.value)
        if rank <= self.tier.rank:
            return
        reached = self.tiers.tiers[rank]
        at = max(occurred_at, self.member.tier_reached_at)
        self.changes.append(TierChangePlan(
            self.member, self.tier, reached, "up",
            f"{cause_key} brought {_describe(self.programme)} to {self.value} (threshold {reached.threshold})",
            self.value, f"up:{self.member.id}:{cause_key}", at, valid_until(reached, at, self.tz)))
        self.tier = reached
        self._note_next()


def _describe(programme: Programme) -> str:
    window = programme.tier_window if programme.tier_window != "rolling_months" \
        else f"last {programme.tier_window_months} months"
    return f"{programme.tier_metric} ({window})"


def metric_values(session: Session, programme: Programme, member_ids: list[int], at: datetime,
                  tz: ZoneInfo | str) -> dict[int, int]:
    since = rules.window_start(at, tz, programme.tier_window, programme.tier_window_months)
    sums = repository.window_sums(session, member_ids, since)
    return {mid: rules.metric_value(programme.tier_metric, *sums.get(mid, (0, 0, 0))) for mid in member_ids}


def apply_tier_changes(session: Session, ctx: WorkspaceContext, changes: list[TierChangePlan]) -> int:
    """Record history rows, move members, put `tier_changed` on their timelines and publish it."""
    from siyu.events.service import SystemEvent, record_system_events

    if not changes:
        return 0
    now = clock.now()
    new_keys = repository.insert_tier_changes(session, [
        {"workspace_id": ctx.id, "member_id": c.member.id, "from_tier_id": c.from_tier.id if c.from_tier else None,
         "to_tier_id": c.to_tier.id, "direction": c.direction, "reason": c.reason[:300],
         "metric_value": c.metric_value, "cause_key": c.cause_key, "valid_until": c.valid_until,
         "changed_at": c.at} for c in changes])
    fresh = [c for c in changes if c.cause_key in new_keys]
    last: dict[int, TierChangePlan] = {}
    for change in fresh:
        if change.direction != "enrolled":
            last[change.member.id] = change
    repository.set_tiers(session, [{"member_id": mid, "new_tier_id": c.to_tier.id,
                                    "reached_at": c.reached_at or c.at,
                                    "valid_until": c.valid_until, "at": now} for mid, c in sorted(last.items())])
    for change in fresh:
        if isinstance(change.member, Member):
            session.expire(change.member, ["tier_id", "tier_reached_at", "tier_valid_until"])
    record_system_events(session, ctx, [
        SystemEvent(f"tier_changed:{c.cause_key}", "tier_changed", c.member.customer_id, c.at,
                    {"direction": c.direction, "from_tier": c.from_tier.code if c.from_tier else None,
                     "to_tier": c.to_tier.code, "reason": c.reason, "member_number": c.member.member_number})
        for c in fresh if c.direction != "retained"])
    for c in fresh:
        publish(session, "tier_changed", {
            "workspace_id": ctx.id, "customer_id": c.member.customer_id, "member_id": c.member.id,
            "direction": c.direction, "from_tier": c.from_tier.code if c.from_tier else None,
            "to_tier": c.to_tier.code}, workspace_id=ctx.id, key=f"{ctx.id}:{c.cause_key}")
    return len(fresh)


def review_tiers(session: Session, ctx: WorkspaceContext, programme: Programme, members: list[Member]) -> int:
    """The retention check of members whose tier period has ended: keep the tier for another period
    when they still qualify, otherwise drop to the tier they do qualify for."""
    if not members:
        return 0
    tz = zone(ctx.timezone)
    now = clock.now()
    tiers = ladder(session, ctx.id)
    values = metric_values(session, programme, [m.id for m in members], now, tz)
    changes = []
    for member in members:
        assert member.tier_valid_until is not None
        current = tiers.by_id(member.tier_id)
        value = values[member.id]
        rank = rules.qualifying_rank(tiers.thresholds, value)
        key = f"review:{member.id}:{member.tier_valid_until.isoformat()}"
        if rank >= current.rank:
            renewed = valid_until(current, member.tier_valid_until, tz)
            if renewed is not None and renewed <= now:
                renewed = valid_until(current, now, tz)
            changes.append(TierChangePlan(member, current, current, "retained",
                                          f"retention check passed: {_describe(programme)} is {value}", value, key,
                                          now, renewed, reached_at=member.tier_reached_at))
        else:
            lower = tiers.tiers[rank]
            changes.append(TierChangePlan(
                member, current, lower, "down",
                f"period ended; {_describe(programme)} is {value}, below {current.threshold}", value, key, now,
                valid_until(lower, now, tz)))
    return apply_tier_changes(session, ctx, changes)


def review_due_tiers(session: Session, *, limit: int = REVIEW_BATCH) -> int:
    """Retention checks of up to `limit` members whose period has ended, every workspace (locked rows of
    another worker are skipped on PostgreSQL). Returns how many were reviewed (kept or moved)."""
    from siyu.workspaces.service import context_of, get_workspace

    due = repository.members_due_for_review(session, clock.now(), limit)
    by_workspace: dict[int, list[Member]] = {}
    for member in due:
        by_workspace.setdefault(member.workspace_id, []).append(member)
    reviewed = 0
    for workspace_id, members in sorted(by_workspace.items()):
        programme = repository.programme(session, workspace_id)
        if programme is not None:
            reviewed += review_tiers(session, context_of(get_workspace(session, workspace_id)), programme, members)
    return reviewed
