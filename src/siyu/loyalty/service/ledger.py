"""The points ledger's one write path.

Callers lock the members they touch (`repository.lock_members`), plan postings on a `LedgerPlan`,
then `write()` it: entries are inserted keyed by their cause, lots are created and changed with
atomic deltas, and each member's balance, pending points and debt move by the sum of its new
entries in one `UPDATE ... SET x = x + :d`. So the balance always equals the sum of the ledger, and
the available lots always hold max(balance, 0) points.

A plan consumes the lots that existed when it started (kept in memory as it consumes them) and, after
them, the available lots it creates itself (written with what is left of them).

Debt: without `allow_negative_balance`, a reversal that finds the points already spent takes what is
there and records the rest as debt; later credits repay the debt first. With it, the balance goes
negative instead and later credits fill it first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.kit import clock
from siyu.loyalty import repository
from siyu.loyalty.errors import InsufficientPoints
from siyu.loyalty.models import Member, PointsLot
from siyu.loyalty.repository import MemberLike


@dataclass
class _Balances:
    points: int
    pending: int
    debt: int


@dataclass
class _Posting:
    row: dict[str, Any]
    new_lot: dict[str, Any] | None = None


@dataclass
class LedgerPlan:
    session: Session
    workspace_id: int
    members: Mapping[int, MemberLike]
    allow_negative: bool
    now: datetime = field(default_factory=clock.now)
    postings: list[_Posting] = field(default_factory=list)
    lot_changes: list[dict[str, Any]] = field(default_factory=list)
    balances: dict[int, _Balances] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    # member → [[lot id, remaining], ...]; a lot this plan creates has no id yet: [None, remaining, its row]
    _fifo: dict[int, list[list[Any]]] = field(default_factory=dict)
    _created: dict[int, list[list[Any]]] = field(default_factory=dict)  # member → this plan's available lots
    _pending_left: dict[int, int] = field(default_factory=dict)  # pending lot → points not yet cancelled

    def _balance(self, member_id: int) -> _Balances:
        if member_id not in self.balances:
            m = self.members[member_id]
            self.balances[member_id] = _Balances(m.points_balance, m.points_pending, m.points_debt)
        return self.balances[member_id]

    def _post(self, member_id: int, kind: str, cause_key: str, reason: str, occurred_at: datetime, *,
              points: int = 0, pending: int = 0, debt: int = 0, order_id: str | None = None,
              amount_fen: int | None = None, lot_id: int | None = None, actor: str | None = None) -> _Posting:
        if cause_key in self.keys:
            raise ValueError(f"cause {cause_key} planned twice")
        self.keys.add(cause_key)
        state = self._balance(member_id)
        state.points += points
        state.pending += pending
        state.debt += debt
        posting = _Posting({"workspace_id": self.workspace_id, "member_id": member_id, "kind": kind,
                            "points": points, "pending": pending, "debt": debt, "cause_key": cause_key,
                            "reason": reason[:300], "order_id": order_id, "amount_fen": amount_fen,
                            "lot_id": lot_id, "actor": actor, "occurred_at": occurred_at, "created_at": self.now})
        self.postings.append(posting)
        return posting

    # -- credits -------------------------------------------------------------------------------
    def credit(self, member_id: int, points: int, kind: str, cause_key: str, reason: str, occurred_at: datetime, *,
               expires_at: datetime | None, order_id: str | None = None, amount_fen: int | None = None,
               actor: str | None = None) -> None:
        """Available points now: debt and a negative balance are filled first, the rest is a new lot."""
        repaid, absorbed = self._absorb(member_id, points)
        posting = self._post(member_id, kind, cause_key, reason, occurred_at, points=points - repaid, debt=-repaid,
                             order_id=order_id, amount_fen=amount_fen, actor=actor)
        posting.new_lot = self._lot(member_id, order_id, points, points - repaid - absorbed, "available",
                                    occurred_at, expires_at)
        item = [None, posting.new_lot["remaining"], posting.new_lot]
        self._created.setdefault(member_id, []).append(item)
        if member_id in self._fifo:
            self._fifo[member_id].append(item)

    def credit_pending(self, member_id: int, points: int, cause_key: str, reason: str, occurred_at: datetime, *,
                       available_at: datetime, expires_at: datetime | None, order_id: str,
                       amount_fen: int) -> None:
        posting = self._post(member_id, "earn", cause_key, reason, occurred_at, pending=points, order_id=order_id,
                             amount_fen=amount_fen)
        posting.new_lot = self._lot(member_id, order_id, points, points, "pending", available_at, expires_at)

    def release(self, lot: PointsLot, cause_key: str) -> None:
        """A pending lot becomes available once the return window has closed."""
        repaid, absorbed = self._absorb(lot.member_id, lot.remaining)
        self._post(lot.member_id, "release", cause_key, "return window closed", self.now,
                   points=lot.remaining - repaid, pending=-lot.remaining, debt=-repaid, order_id=lot.order_id,
                   lot_id=lot.id)
        self.lot_changes.append({"lot_id": lot.id, "delta": -(repaid + absorbed), "status": "available"})

    def _absorb(self, member_id: int, points: int) -> tuple[int, int]:
        state = self._balance(member_id)
        repaid = min(points, state.debt)
        absorbed = min(points - repaid, max(0, -state.points))
        return repaid, absorbed

    def _lot(self, member_id: int, order_id: str | None, points: int, remaining: int, status: str,
             available_at: datetime, expires_at: datetime | None) -> dict[str, Any]:
        return {"workspace_id": self.workspace_id, "member_id": member_id, "order_id": order_id, "points": points,
                "remaining": remaining, "status": status, "available_at": available_at, "expires_at": expires_at,
                "created_at": self.now}

    # -- debits --------------------------------------------------------------------------------
    def debit(self, member_id: int, points: int, kind: str, cause_key: str, reason: str, *,
              order_id: str | None = None, actor: str | None = None) -> None:
        """Spend available points, oldest lots first; refused beyond the balance."""
        available = self._balance(member_id).points
        if points > available:
            raise InsufficientPoints(f"the member has {max(available, 0)} points available, {points} were asked",
                                     field="points")
        self._consume(member_id, points)
        self._post(member_id, kind, cause_key, reason, self.now, points=-points, order_id=order_id, actor=actor)

    def reverse(self, member_id: int, points: int, cause_key: str, reason: str, occurred_at: datetime, *,
                order_id: str, own_lot: PointsLot | None) -> None:
        """Take back points of a refunded order: from its own pending lot without touching the balance,
        otherwise from the balance (its own lot first), the shortfall as debt or a negative balance."""
        cancelled = 0
        if own_lot is not None and own_lot.status == "pending":
            left = self._pending_left.get(own_lot.id, own_lot.remaining)
            cancelled = min(points, left)
            self._pending_left[own_lot.id] = left - cancelled
            self.lot_changes.append({"lot_id": own_lot.id, "delta": -cancelled,
                                     "status": "cancelled" if left == cancelled else None})
        rest = points - cancelled
        taken = rest if self.allow_negative else min(rest, max(0, self._balance(member_id).points))
        if taken:
            self._consume(member_id, min(taken, max(0, self._balance(member_id).points)), first=own_lot)
        self._post(member_id, "reverse", cause_key, reason, occurred_at, points=-taken, pending=-cancelled,
                   debt=rest - taken, order_id=order_id, lot_id=own_lot.id if own_lot else None)

    def expire(self, lot: PointsLot, cause_key: str) -> None:
        self._post(lot.member_id, "expire", cause_key, "points expired", self.now, points=-lot.remaining,
                   lot_id=lot.id)
        self.lot_changes.append({"lot_id": lot.id, "delta": -lot.remaining, "status": "expired"})
        for item in self._fifo.get(lot.member_id, []):
            if item[0] == lot.id:
                item[1] = 0

    def repay_debt(self, member_id: int, cause_key: str, reason: str) -> None:
        """Settle debt from available points (after two memberships were merged)."""
        state = self._balance(member_id)
        repay = min(state.debt, max(0, state.points))
        if repay:
            self._consume(member_id, repay)
            self._post(member_id, "repay", cause_key, reason, self.now, points=-repay, debt=-repay)

    def trim_lots(self, member_id: int) -> None:
        """Lots hold no more than a positive balance: a negative balance absorbs lot points."""
        held = sum(item[1] for item in self._queue(member_id))
        excess = held - max(0, self._balance(member_id).points)
        if excess > 0:
            self._consume(member_id, excess)

    def _queue(self, member_id: int) -> list[list[Any]]:
        if member_id not in self._fifo:
            self._fifo[member_id] = [[lot.id, lot.remaining] for lot in repository.fifo_lots(self.session, member_id)]
            self._fifo[member_id].extend(self._created.get(member_id, []))
        return self._fifo[member_id]

    def _consume(self, member_id: int, points: int, first: PointsLot | None = None) -> None:
        queue = self._queue(member_id)
        if first is not None and first.status == "available":
            queue.sort(key=lambda item: item[0] != first.id)  # stable: the order's own lot, then FIFO
        left = points
        for item in queue:
            if left == 0:
                break
            take = min(left, item[1])
            if take:
                item[1] -= take
                left -= take
                if item[0] is None:  # created by this plan: written with what is left
                    item[2]["remaining"] -= take
                else:
                    self.lot_changes.append({"lot_id": item[0], "delta": -take, "status": None})
        if left:
            raise RuntimeError(f"member {member_id}: lots hold {points - left} of {points} points to consume")

    # -- writing -------------------------------------------------------------------------------
    def write(self) -> dict[str, int]:
        """Write the plan; returns cause_key → entry id. Every planned cause must be new: callers check
        under the member locks, and the unique key refuses a cause recorded twice."""
        ids: dict[str, int] = {}
        if self.postings:
            ids = repository.insert_entries(self.session, [p.row for p in self.postings])
            lots = []
            for p in self.postings:
                if p.new_lot is not None:
                    p.new_lot["entry_id"] = ids[p.row["cause_key"]]
                    lots.append(p.new_lot)
            repository.insert_lots(self.session, lots)
        repository.change_lots(self.session, [c for c in self.lot_changes if c["delta"] or c["status"]])
        deltas: dict[int, tuple[int, int, int]] = {}
        for p in self.postings:
            row = p.row
            old = deltas.get(row["member_id"], (0, 0, 0))
            deltas[row["member_id"]] = (old[0] + row["points"], old[1] + row["pending"], old[2] + row["debt"])
        repository.apply_balance_deltas(self.session, {m: d for m, d in deltas.items() if any(d)}, self.now)
        for member_id in deltas:
            member = self.members[member_id]
            if isinstance(member, Member):
                self.session.expire(member, ["points_balance", "points_pending", "points_debt"])
        return ids
