"""The contact policy (不打扰): the one gate every outbound message passes.

`ContactPolicy.decide` takes a batch of candidates and answers each with send, defer or suppress
and the rule that decided. It loads what it needs for the whole batch in a few set-wise queries
(preferences, recent marketing messages, inventory), so a broadcast to a million customers costs
the same per recipient as one message. The rules, first match wins:

 1. no_address       the channel needs an identity the customer does not have
 2. blocked          an explicit block — applies to service messages too
 3. opted_out        opt-out for this channel/purpose ('*' rows match every channel or purpose)
 4. no_consent       the workspace requires an opt-in for this channel:purpose and there is none
 5. holdout          marketing only: the customer is in the global holdout
 6. fatigue          marketing only: the last N marketing messages were all ignored
 7. no_subscription_consent   a one-time-consent channel without an unused consent
 8. quiet_hours / blackout:<name>   deferred to the next allowed time (suppressed if droppable)
 9. frequency_cap:<purpose>:<channel>:<period> / platform_quota:<channel>:<name>
                     the inventory of the (possibly deferred) send time is used up

Modes: `preview` reads and counts only; `reserve` (enqueue, broadcast fill) takes inventory with
conditional increments; `verify` (dispatch) re-checks rules 1–8 at the moment of sending and only
moves inventory when the send moves to another period.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from siyu.db.base import UTCDateTime
from siyu.kit.timefmt import zone
from siyu.messaging import usage
from siyu.messaging.calendar import cap_multiplier, next_allowed, period_start
from siyu.messaging.models import ContactPreference, OneTimeConsent, OutboxMessage
from siyu.messaging.quotas import QuotaRule, active_quotas
from siyu.messaging.settings import PolicySettings, load_policy
from siyu.messaging.sql import one_of
from siyu.messaging.usage import UsageKey

Mode = Literal["preview", "reserve", "verify"]
Outcome = Literal["send", "defer", "suppress"]
CHUNK = 10_000
SPECIFICITY = {("exact", "exact"): 3, ("exact", "*"): 2, ("*", "exact"): 1, ("*", "*"): 0}


@dataclass(slots=True)
class Candidate:
    customer_id: int
    channel: str
    purpose: str
    due_at: datetime
    droppable: bool = False
    staff_id: str | None = None
    address_missing: bool = False
    topic: str = ""
    outbox_id: int | None = None
    reservations: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Limit:
    """One unit of inventory a send takes: its counter, the limit, the rule that refuses it."""

    key: UsageKey
    limit: int
    rule: str
    reservation: list[str]  # as stored on the outbox row


@dataclass(slots=True)
class Decision:
    outcome: Outcome
    due_at: datetime
    rule: str | None = None
    reservations: list[list[str]] = field(default_factory=list)


def in_holdout(policy: PolicySettings, workspace_id: int, customer_id: int) -> bool:
    share = policy.holdout.share
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{policy.holdout.draw}:{workspace_id}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


class ContactPolicy:
    def __init__(self, workspace_id: int, timezone: str, settings: PolicySettings, quotas: list[QuotaRule]) -> None:
        self.workspace_id = workspace_id
        self.tz: ZoneInfo = zone(timezone)
        self.settings = settings
        self.quotas = quotas
        self._one_time = frozenset(settings.one_time_consent_channels)
        self._require_opt_in = frozenset(settings.require_opt_in)
        self._timing_memo: dict[tuple[datetime, str], tuple[datetime, str | None]] = {}
        self._limits_memo: dict[tuple[datetime, str, str], list[tuple[str, str, date, str, int, str]]] = {}

    @classmethod
    def load(cls, session: Session, workspace_id: int, timezone: str) -> ContactPolicy:
        return cls(workspace_id, timezone, load_policy(session, workspace_id), active_quotas(session, workspace_id))

    # -- the decision ---------------------------------------------------------------------------
    def decide(self, session: Session, candidates: list[Candidate], mode: Mode) -> list[Decision]:
        if not candidates:
            return []
        customers = sorted({c.customer_id for c in candidates})
        preferences = self._preferences(session, customers)
        marketing = [c.customer_id for c in candidates if c.purpose == "marketing"]
        fatigued = self._fatigued_until(session, marketing) if marketing else {}
        one_time = self._one_time_available(session, candidates) if mode != "verify" else {}
        decisions: list[Decision] = []
        for candidate in candidates:
            rule = (self._gate(candidate, preferences.get(candidate.customer_id, ()), fatigued)
                    or self._one_time_rule(candidate, one_time, mode))
            if rule is not None:
                decisions.append(Decision("suppress", candidate.due_at, rule))
                continue
            due_at, timing = self._next_allowed(candidate.due_at, candidate.purpose)
            if timing is not None and candidate.droppable:
                decisions.append(Decision("suppress", candidate.due_at, timing))
                continue
            decisions.append(Decision("defer" if timing else "send", due_at, timing))
        self._inventory(session, candidates, decisions, mode)
        return decisions

    def _next_allowed(self, due_at: datetime, purpose: str) -> tuple[datetime, str | None]:
        """Quiet hours and calendar windows, remembered per send time (a batch shares a few)."""
        memo_key = (due_at, purpose)
        found = self._timing_memo.get(memo_key)
        if found is None:
            if len(self._timing_memo) > 10_000:
                self._timing_memo.clear()
            found = self._timing_memo[memo_key] = next_allowed(due_at, purpose, self.settings, self.tz)
        return found

    def _gate(self, candidate: Candidate, preferences: tuple[tuple[str, str, str], ...] | list[tuple[str, str, str]],
              fatigued: dict[int, datetime]) -> str | None:
        if candidate.address_missing:
            return "no_address"
        decisive: tuple[int, str] | None = None
        for channel, purpose, status in preferences:
            if channel not in (candidate.channel, "*") or purpose not in (candidate.purpose, "*"):
                continue
            if status == "blocked":
                return "blocked"
            rank = SPECIFICITY[("exact" if channel != "*" else "*", "exact" if purpose != "*" else "*")]
            if decisive is None or rank > decisive[0]:
                decisive = (rank, status)
        if decisive is not None and decisive[1] == "opted_out":
            return "opted_out"
        if self._require_opt_in and (decisive is None or decisive[1] != "opted_in") and (
                f"{candidate.channel}:{candidate.purpose}" in self._require_opt_in
                or f"*:{candidate.purpose}" in self._require_opt_in):
            return "no_consent"
        if candidate.purpose == "marketing":
            if in_holdout(self.settings, self.workspace_id, candidate.customer_id):
                return "holdout"
            until = fatigued.get(candidate.customer_id)
            if until is not None and candidate.due_at < until:
                return "fatigue"
        return None

    def _one_time_rule(self, candidate: Candidate, available: dict[tuple[int, str, str], int],
                       mode: Mode) -> str | None:
        if mode == "verify" or candidate.channel not in self._one_time:
            return None
        key = (candidate.customer_id, candidate.channel, candidate.topic)
        if available.get(key, 0) <= 0:
            return "no_subscription_consent"
        available[key] -= 1
        return None

    # -- inventory ------------------------------------------------------------------------------
    def limits_for(self, candidate: Candidate, due_at: datetime) -> list[Limit]:
        """Every inventory unit a send at `due_at` takes."""
        subject = str(candidate.customer_id)
        limits = []
        for key, scope, period, period_iso, limit, rule in self._limits_at(due_at, candidate.channel,
                                                                            candidate.purpose):
            who = subject if scope == "customer" else ("*" if scope == "workspace" else candidate.staff_id)
            if who is not None:
                limits.append(Limit((key, who, period), limit, rule, [key, who, period_iso]))
        return limits

    def _limits_at(self, due_at: datetime, channel: str, purpose: str) -> list[tuple[str, str, date, str, int, str]]:
        """The caps and quotas of a send time, channel and purpose (remembered: a broadcast asks for the
        same few send times a million times): (key, scope, period start, as text, limit, rule)."""
        memo_key = (due_at, channel, purpose)
        found = self._limits_memo.get(memo_key)
        if found is not None:
            return found
        local = due_at.astimezone(self.tz)
        day = local.date()
        multiplier = cap_multiplier(local, self.settings, purpose)
        found = []
        for cap in self.settings.frequency_caps:
            if cap.purpose == purpose and cap.channel in ("*", channel):
                start = period_start(day, cap.period)
                found.append((cap.key, "customer", start, start.isoformat(), cap.max * multiplier,
                              f"frequency_cap:{cap.purpose}:{cap.channel}:{cap.period}"))
        for quota in self.quotas:
            if quota.channel == channel and (not quota.purposes or purpose in quota.purposes):
                start = period_start(day, quota.period)
                found.append((quota.key, quota.scope, start, start.isoformat(), quota.max_count,
                              f"platform_quota:{quota.channel}:{quota.name}"))
        if len(self._limits_memo) > 10_000:
            self._limits_memo.clear()
        self._limits_memo[memo_key] = found
        return found

    def _inventory(self, session: Session, candidates: list[Candidate], decisions: list[Decision], mode: Mode) -> None:
        """Take (or, in preview, count) inventory for every send and deferral, in candidate order."""
        asks: list[tuple[int, list[Limit]]] = []
        refunds: list[UsageKey] = []
        for index, (candidate, decision) in enumerate(zip(candidates, decisions, strict=True)):
            if decision.outcome == "suppress":
                continue
            limits = self.limits_for(candidate, decision.due_at)
            if mode == "verify":
                if candidate.reservations == [limit.reservation for limit in limits]:  # the usual case
                    decision.reservations = candidate.reservations
                    continue
                held = {usage.as_key(r) for r in candidate.reservations}
                if held == {limit.key for limit in limits}:
                    decision.reservations = candidate.reservations
                    continue
                refunds.extend(held)
            if limits:
                asks.append((index, limits))
            else:
                decision.reservations = []
        if mode != "preview" and refunds:
            usage.refund(session, self.workspace_id, refunds)
        if asks:
            self._take(session, asks, decisions, mode)

    def _take(self, session: Session, asks: list[tuple[int, list[Limit]]], decisions: list[Decision],
              mode: Mode) -> None:
        """Check every ask against the stored counters plus what earlier asks of the batch took."""
        keys = {limit.key for _, limits in asks for limit in limits}
        used = usage.read_usage(session, self.workspace_id, {k[1] for k in keys}, {k[2] for k in keys})
        granted: list[tuple[int, list[Limit]]] = []
        for index, limits in asks:
            refused = None
            for limit in limits:
                if used.get(limit.key, 0) >= limit.limit:
                    refused = limit.rule
                    break
            if refused is not None:
                decisions[index] = Decision("suppress", decisions[index].due_at, refused)
                continue
            for limit in limits:
                used[limit.key] = used.get(limit.key, 0) + 1
            granted.append((index, limits))
        if mode != "preview":
            self._write_reservations(session, granted, decisions)

    def _write_reservations(self, session: Session, granted: list[tuple[int, list[Limit]]],
                            decisions: list[Decision]) -> None:
        """Conditional increments in rounds (a key appears once per statement). A unit a concurrent
        writer took first makes that message suppressed, and its other units are given back."""
        rounds: list[list[tuple[int, list[Limit]]]] = []
        seen: dict[UsageKey, int] = {}
        for index, limits in granted:
            number = max(seen.get(limit.key, 0) for limit in limits)
            for limit in limits:
                seen[limit.key] = seen.get(limit.key, 0) + 1
            if number == len(rounds):
                rounds.append([])
            rounds[number].append((index, limits))
        give_back: list[UsageKey] = []
        for asks in rounds:
            wanted = {limit.key: limit.limit for _, limits in asks for limit in limits}
            taken = usage.reserve(session, self.workspace_id, wanted)
            for index, limits in asks:
                missing = next((limit for limit in limits if limit.key not in taken), None)
                if missing is None:
                    decisions[index].reservations = [limit.reservation for limit in limits]
                    continue
                decisions[index] = Decision("suppress", decisions[index].due_at, missing.rule)
                give_back += [limit.key for limit in limits if limit.key in taken]
        if give_back:
            usage.refund(session, self.workspace_id, give_back)

    # -- facts, set-wise ------------------------------------------------------------------------
    def _preferences(self, session: Session, customers: list[int]) -> dict[int, list[tuple[str, str, str]]]:
        found: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
        for start in range(0, len(customers), CHUNK):
            chunk = customers[start:start + CHUNK]
            rows = session.execute(select(ContactPreference.customer_id, ContactPreference.channel,
                                          ContactPreference.purpose, ContactPreference.status)
                                   .where(ContactPreference.workspace_id == self.workspace_id,
                                          one_of(session, ContactPreference.customer_id, chunk)))
            for customer_id, channel, purpose, status in rows:
                found[customer_id].append((channel, purpose, status))
        return found

    def _fatigued_until(self, session: Session, customers: list[int]) -> dict[int, datetime]:
        """Customers whose last N marketing messages were all ignored → the end of their cool-down."""
        fatigue = self.settings.fatigue
        if fatigue is None:
            return {}
        unique = sorted(set(customers))
        result: dict[int, datetime] = {}
        for start in range(0, len(unique), CHUNK):
            seen: dict[int, list[tuple[datetime | None, datetime | None]]] = defaultdict(list)
            for customer_id, sent_at, engaged_at in self._recent_marketing(session, unique[start:start + CHUNK],
                                                                           fatigue.ignored_messages):
                seen[customer_id].append((sent_at, engaged_at))
            for customer_id, messages in seen.items():
                if len(messages) == fatigue.ignored_messages and all(e is None for _, e in messages):
                    last = max(s for s, _ in messages if s is not None)
                    result[customer_id] = last + timedelta(days=fatigue.cooldown_days)
        return result

    def _recent_marketing(self, session: Session, customers: list[int], last: int) -> Any:
        """(customer_id, sent_at, engaged_at) of each customer's last `last` marketing messages sent."""
        if session.get_bind().dialect.name == "postgresql":
            # One index probe per customer, whatever the planner believes about the table's size.
            return session.execute(text(
                "SELECT c.id, m.sent_at, m.engaged_at FROM unnest(CAST(:ids AS bigint[])) AS c(id) "
                "CROSS JOIN LATERAL (SELECT sent_at, engaged_at FROM outbox WHERE workspace_id = :ws "
                "AND customer_id = c.id AND purpose = 'marketing' AND state IN ('sent', 'delivered') "
                "ORDER BY id DESC LIMIT :last) AS m").columns(
                    sent_at=UTCDateTime(), engaged_at=UTCDateTime()),
                {"ids": "{" + ",".join(map(str, customers)) + "}", "ws": self.workspace_id, "last": last})
        recent = (select(OutboxMessage.customer_id, OutboxMessage.sent_at, OutboxMessage.engaged_at,
                         func.row_number().over(partition_by=OutboxMessage.customer_id,
                                                order_by=OutboxMessage.id.desc()).label("rn"))
                  .where(OutboxMessage.workspace_id == self.workspace_id,
                         one_of(session, OutboxMessage.customer_id, customers),
                         OutboxMessage.purpose == "marketing", OutboxMessage.state.in_(("sent", "delivered")))
                  .subquery())
        return session.execute(select(recent.c.customer_id, recent.c.sent_at, recent.c.engaged_at)
                               .where(recent.c.rn <= last))

    def _one_time_available(self, session: Session, candidates: list[Candidate]) -> dict[tuple[int, str, str], int]:
        wanted = sorted({c.customer_id for c in candidates if c.channel in self._one_time})
        available: dict[tuple[int, str, str], int] = defaultdict(int)
        for start in range(0, len(wanted), CHUNK):
            rows = session.execute(select(OneTimeConsent.customer_id, OneTimeConsent.channel, OneTimeConsent.topic)
                                   .where(OneTimeConsent.workspace_id == self.workspace_id,
                                          one_of(session, OneTimeConsent.customer_id, wanted[start:start + CHUNK]),
                                          OneTimeConsent.outbox_id.is_(None)))
            for customer_id, channel, topic in rows:
                available[(customer_id, channel, topic)] += 1
        return available

