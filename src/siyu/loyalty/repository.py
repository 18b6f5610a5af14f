"""Every query of the loyalty tables, scoped by workspace in one place.

Locking order, everywhere: members (ascending id) first, then lots, then anything of other domains
(coupon templates). Every writer of a member's ledger, lots or activity holds that member's row lock,
so a check made under the lock stays true until commit.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.db.binary_copy import copy_rows
from siyu.db.bulk import Bulk
from siyu.db.keyed import restrict
from siyu.kit.pagination import decode_cursor, encode_cursor
from siyu.loyalty.models import (
    Activity,
    BenefitGrant,
    BenefitRun,
    Member,
    PointsEntry,
    PointsLot,
    Programme,
    Tier,
    TierChange,
)

CHUNK = 5000
MEMBERS = cast(Table, Member.__table__)


def insert_for(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def chunked(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


LEDGER_TABLES = ("loyalty_activities", "loyalty_points_ledger", "loyalty_points_lots", "loyalty_members",
                 "loyalty_tier_changes")


def refresh_statistics(session: Session) -> None:
    """Keep PostgreSQL's statistics of the ledger tables current while a replay grows them (see Bulk)."""
    Bulk(session).refresh_statistics(LEDGER_TABLES)


def update_rows(session: Session, table: str, rows: Sequence[Sequence[Any]], *, add: Sequence[str] = (),
                assign: Sequence[tuple[str, str]] = ()) -> None:
    """`UPDATE table SET a = a + ?, ..., b = ? WHERE id = ?` for many rows; each row holds the increments
    (`add`: atomic, never a value read back), the values (`assign`: column and PostgreSQL type), then
    the id. Values as `Bulk` stores them. On PostgreSQL one statement over arrays (`unnest`)."""
    if not rows:
        return
    names = [*add, *(name for name, _ in assign), "id"]
    if not is_postgres(session):
        sets = ", ".join([f"{c} = {c} + ?" for c in add] + [f"{c} = ?" for c, _ in assign])
        Bulk(session).run(f"UPDATE {table} SET {sets} WHERE id = ?", rows)
        return
    types = ["bigint"] * len(add) + [t for _, t in assign] + ["bigint"]
    sets = ", ".join([f"{c} = t.{c} + v.{c}" for c in add] + [f"{c} = v.{c}" for c, _ in assign])
    arrays = ", ".join(f"%b::{t}[]" for t in types)  # binary arrays: no per-element text quoting
    session.connection().exec_driver_sql(
        f"UPDATE {table} AS t SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) WHERE t.id = v.id",
        tuple([row[i] for row in rows] for i in range(len(names))))


# -- programme and tiers -----------------------------------------------------------------------

def programme(session: Session, workspace_id: int) -> Programme | None:
    return session.scalar(select(Programme).where(Programme.workspace_id == workspace_id))


def programmes(session: Session) -> list[Programme]:
    return list(session.scalars(select(Programme).order_by(Programme.workspace_id)))


def take_member_numbers(session: Session, programme_id: int, count: int) -> int:
    """Reserve `count` member numbers atomically; returns the last one reserved."""
    return int(session.execute(update(Programme).where(Programme.id == programme_id)
                               .values(member_seq=Programme.member_seq + count)
                               .returning(Programme.member_seq)).scalar_one())


def tiers(session: Session, workspace_id: int) -> list[Tier]:
    return list(session.scalars(select(Tier).where(Tier.workspace_id == workspace_id).order_by(Tier.rank)))


def tier_holders(session: Session, workspace_id: int, tier_ids: Sequence[int]) -> dict[int, int]:
    rows = session.execute(select(Member.tier_id, func.count()).where(Member.workspace_id == workspace_id,
                                                                      Member.tier_id.in_(tier_ids))
                           .group_by(Member.tier_id))
    return {int(tid): int(n) for tid, n in rows}


# -- members -----------------------------------------------------------------------------------

def member_of_customer(session: Session, workspace_id: int, customer_id: int) -> Member | None:
    return session.scalar(select(Member).where(Member.workspace_id == workspace_id,
                                                Member.customer_id == customer_id)
                          .execution_options(populate_existing=True))


def members_of_customers(session: Session, workspace_id: int, customer_ids: Sequence[int]) -> dict[int, int]:
    """customer_id → member id, without locking."""
    found: dict[int, int] = {}
    for part in chunked(sorted(set(customer_ids))):
        found.update({int(c): int(m) for c, m in session.execute(
            select(Member.customer_id, Member.id).where(Member.workspace_id == workspace_id,
                                                        Member.customer_id.in_(part)))})
    return found


def insert_members(session: Session, rows: list[dict[str, Any]]) -> list[Member]:
    members: list[Member] = []
    for part in chunked(rows):
        members.extend(session.scalars(insert(Member).returning(Member, sort_by_parameter_order=True), list(part)))
    return members


def lock_members(session: Session, workspace_id: int, member_ids: Iterable[int]) -> dict[int, Member]:
    """Row-lock members in ascending id order (no deadlocks) and load their current balances."""
    found: dict[int, Member] = {}
    for part in chunked(sorted(set(member_ids))):
        stmt = (select(Member).where(Member.workspace_id == workspace_id, Member.id.in_(part))
                .order_by(Member.id).with_for_update().execution_options(populate_existing=True))
        found.update({m.id: m for m in session.scalars(stmt)})
    return found


class MemberLike(Protocol):
    """A member as the ledger and tier paths read it: an ORM `Member` or a locked `MemberRow`."""

    @property
    def id(self) -> int: ...
    @property
    def customer_id(self) -> int: ...
    @property
    def member_number(self) -> str: ...
    @property
    def tier_id(self) -> int: ...
    @property
    def tier_reached_at(self) -> datetime: ...
    @property
    def points_balance(self) -> int: ...
    @property
    def points_pending(self) -> int: ...
    @property
    def points_debt(self) -> int: ...


class MemberRow(NamedTuple):
    """What the batch paths need of a locked member, without the cost of an ORM object."""

    id: int
    customer_id: int
    member_number: str
    status: str
    tier_id: int
    tier_reached_at: datetime
    points_balance: int
    points_pending: int
    points_debt: int


def lock_member_rows(session: Session, workspace_id: int, customer_ids: Iterable[int]) -> dict[int, MemberRow]:
    """customer_id → member, row-locked in ascending member id order, in one query per 5,000."""
    from siyu.kit.clock import ensure_utc

    found: dict[int, MemberRow] = {}
    if not is_postgres(session):  # no row locks: the transaction holds the database's write lock
        for row in Bulk(session).select_in(
                "SELECT id, customer_id, member_number, status, tier_id, tier_reached_at, points_balance, "
                "points_pending, points_debt FROM loyalty_members WHERE workspace_id = ? AND customer_id {keys}",
                (workspace_id,), sorted(set(customer_ids))):
            found[row[1]] = MemberRow(row[0], row[1], row[2], row[3], row[4], _sqlite_time(row[5]), row[6], row[7],
                                      row[8])
        return found
    for part in chunked(sorted(set(customer_ids))):
        # The keys as one binary array joined by unnest (see `siyu.db.keyed.restrict`), rows as plain tuples.
        rows = session.connection().exec_driver_sql(
            "SELECT m.id, m.customer_id, m.member_number, m.status, m.tier_id, m.tier_reached_at, m.points_balance, "
            "m.points_pending, m.points_debt FROM loyalty_members m JOIN unnest(%b::bigint[]) AS k(key) "
            "ON m.customer_id = k.key WHERE m.workspace_id = %s ORDER BY m.id FOR UPDATE OF m",
            (list(part), workspace_id))
        for row in rows:
            member = MemberRow(int(row[0]), int(row[1]), row[2], row[3], int(row[4]), ensure_utc(row[5]), int(row[6]),
                               int(row[7]), int(row[8]))
            found[member.customer_id] = member
    return found


def _sqlite_time(stored: str) -> datetime:
    """A time as SQLite stores it (naive UTC text, see `Bulk.ts`), back as an aware datetime."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC)


def apply_balance_deltas(session: Session, deltas: dict[int, tuple[int, int, int]], at: datetime) -> None:
    """balance += d, pending += d, debt += d — never a value read back and written."""
    if not deltas:
        return
    stamp = Bulk(session).ts(at)
    update_rows(session, "loyalty_members", [(p, q, d, stamp, mid) for mid, (p, q, d) in sorted(deltas.items())],
                add=("points_balance", "points_pending", "points_debt"), assign=[("updated_at", "timestamptz")])


def set_tiers(session: Session, rows: list[dict[str, Any]]) -> None:
    ts = _stored_time(session)
    update_rows(session, "loyalty_members",
                [(r["new_tier_id"], ts(r["reached_at"]), ts(r["valid_until"]), ts(r["at"]), r["member_id"])
                 for r in rows],
                assign=[("tier_id", "bigint"), ("tier_reached_at", "timestamptz"), ("tier_valid_until", "timestamptz"),
                        ("updated_at", "timestamptz")])


def list_members(session: Session, workspace_id: int, *, tier_id: int | None = None, status: str | None = None,
                 cursor: str | None = None, limit: int = 50) -> tuple[list[Member], str | None]:
    stmt = select(Member).where(Member.workspace_id == workspace_id)
    if tier_id is not None:
        stmt = stmt.where(Member.tier_id == tier_id)
    if status:
        stmt = stmt.where(Member.status == status)
    if cursor:
        (last_id,) = decode_cursor(cursor)
        stmt = stmt.where(Member.id < int(last_id))
    rows = list(session.scalars(stmt.order_by(Member.id.desc()).limit(limit + 1)))
    return rows[:limit], (encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None)


def count_members_by_tier(session: Session, workspace_id: int) -> dict[int, int]:
    rows = session.execute(select(Member.tier_id, func.count()).where(Member.workspace_id == workspace_id,
                                                                      Member.status == "active")
                           .group_by(Member.tier_id))
    return {int(tid): int(n) for tid, n in rows}


def active_members_after(session: Session, workspace_id: int, after_id: int, limit: int) -> list[tuple[int, int, int]]:
    """(member id, customer id, tier id) of active members after a cursor, in id order."""
    rows = session.execute(select(Member.id, Member.customer_id, Member.tier_id)
                           .where(Member.workspace_id == workspace_id, Member.status == "active",
                                  Member.id > after_id).order_by(Member.id).limit(limit))
    return [(int(a), int(b), int(c)) for a, b, c in rows]


def members_due_for_review(session: Session, at: datetime, limit: int) -> list[Member]:
    stmt = (select(Member).where(Member.status == "active", Member.tier_valid_until.is_not(None),
                                 Member.tier_valid_until <= at)
            .order_by(Member.id).limit(limit).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True))
    return list(session.scalars(stmt))


# -- ledger and lots ---------------------------------------------------------------------------

def existing_entry_keys(session: Session, workspace_id: int, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunked(sorted(set(keys))):
        found.update(session.scalars(restrict(session, select(PointsEntry.cause_key)
                                              .where(PointsEntry.workspace_id == workspace_id),
                                              PointsEntry.cause_key, part)))
    return found


def entry_by_key(session: Session, workspace_id: int, key: str) -> PointsEntry | None:
    return session.scalar(select(PointsEntry).where(PointsEntry.workspace_id == workspace_id,
                                                    PointsEntry.cause_key == key))


ENTRY_COLUMNS = ("id", "workspace_id", "member_id", "kind", "points", "pending", "debt", "cause_key", "reason",
                 "order_id", "amount_fen", "lot_id", "actor", "occurred_at", "created_at")
LOT_COLUMNS = ("workspace_id", "member_id", "entry_id", "order_id", "points", "remaining", "status", "available_at",
               "expires_at", "created_at")
ACTIVITY_COLUMNS = ("workspace_id", "member_id", "kind", "cause_key", "order_id", "occurred_at", "local_day",
                    "spend_fen", "orders", "growth", "capped", "created_at")


def _stored_time(session: Session) -> Any:
    """`Bulk.ts`, remembered per value: a batch repeats the same few instants (its clock, expiries)."""
    return functools.lru_cache(maxsize=4096)(Bulk(session).ts)


def _stored_rows(session: Session, rows: Sequence[dict[str, Any]], columns: Sequence[str],
                 times: Sequence[str] = (), flags: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Dict rows as value lists in `columns` order, times and flags as `Bulk` stores them (the columns
    picked in C by one itemgetter: a replay converts millions of values)."""
    bulk, ts = Bulk(session), _stored_time(session)
    get = operator.itemgetter(*columns)
    convert = [(i, ts) for i, c in enumerate(columns) if c in times] + \
              [(i, bulk.flag) for i, c in enumerate(columns) if c in flags]
    out = []
    for row in rows:
        values = list(get(row))
        for i, how in convert:
            values[i] = how(values[i])
        out.append(tuple(values))
    return out


def insert_entries(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert ledger entries; cause_key → id. A cause already recorded violates the unique key (the
    callers checked under the member locks, so that only happens to a retried unit of work)."""
    ids = Bulk(session).allocate_ids("loyalty_points_ledger", len(rows))
    values = _stored_rows(session, rows, ENTRY_COLUMNS[1:], ("occurred_at", "created_at"))
    copy_rows(session, "loyalty_points_ledger", ENTRY_COLUMNS,
              [(entry_id, *v) for entry_id, v in zip(ids, values, strict=True)])
    return {r["cause_key"]: entry_id for entry_id, r in zip(ids, rows, strict=True)}


def insert_lots(session: Session, rows: list[dict[str, Any]]) -> None:
    copy_rows(session, "loyalty_points_lots", LOT_COLUMNS,
              _stored_rows(session, rows, LOT_COLUMNS, ("available_at", "expires_at", "created_at")))


def change_lots(session: Session, rows: list[dict[str, Any]]) -> None:
    """remaining += delta (atomic), and the status when given."""
    update_rows(session, "loyalty_points_lots", [(r["delta"], r["lot_id"]) for r in rows if r.get("status") is None],
                add=("remaining",))
    update_rows(session, "loyalty_points_lots",
                [(r["delta"], r["status"], r["lot_id"]) for r in rows if r.get("status") is not None],
                add=("remaining",), assign=[("status", "text")])


def fifo_lots(session: Session, member_id: int) -> list[PointsLot]:
    """Available lots with points left, oldest expiry first (never-expiring last), then oldest."""
    return list(session.scalars(
        select(PointsLot).where(PointsLot.member_id == member_id, PointsLot.status == "available",
                                PointsLot.remaining > 0)
        .order_by(PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.id)
        .execution_options(populate_existing=True)))


def lots_by_entry(session: Session, entry_ids: Sequence[int]) -> dict[int, PointsLot]:
    found: dict[int, PointsLot] = {}
    for part in chunked(sorted(set(entry_ids))):
        found.update({lot.entry_id: lot for lot in session.scalars(
            restrict(session, select(PointsLot), PointsLot.entry_id, part)
            .execution_options(populate_existing=True))})
    return found


def order_entries(session: Session, workspace_id: int, order_ids: Sequence[str]) -> list[PointsEntry]:
    found: list[PointsEntry] = []
    for part in chunked(sorted(set(order_ids))):
        found.extend(session.scalars(restrict(session, select(PointsEntry)
                                              .where(PointsEntry.workspace_id == workspace_id),
                                              PointsEntry.order_id, part).order_by(PointsEntry.id)))
    return found


def due_lots(session: Session, status: str, column: Any, at: datetime, limit: int) -> list[PointsLot]:
    stmt = (select(PointsLot).where(PointsLot.status == status, column.is_not(None), column <= at)
            .order_by(column, PointsLot.id).limit(limit))
    if status == "available":
        stmt = stmt.where(PointsLot.remaining > 0)
    return list(session.scalars(stmt))


def ledger_page(session: Session, member_id: int, cursor: str | None,
                limit: int) -> tuple[list[PointsEntry], str | None]:
    stmt = select(PointsEntry).where(PointsEntry.member_id == member_id)
    if cursor:
        (last_id,) = decode_cursor(cursor)
        stmt = stmt.where(PointsEntry.id < int(last_id))
    rows = list(session.scalars(stmt.order_by(PointsEntry.id.desc()).limit(limit + 1)))
    return rows[:limit], (encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None)


def ledger_sums(session: Session, member_id: int) -> tuple[int, int, int]:
    row = session.execute(select(func.coalesce(func.sum(PointsEntry.points), 0),
                                 func.coalesce(func.sum(PointsEntry.pending), 0),
                                 func.coalesce(func.sum(PointsEntry.debt), 0))
                          .where(PointsEntry.member_id == member_id)).one()
    return int(row[0]), int(row[1]), int(row[2])


def expiring_points(session: Session, member_id: int, before: datetime) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
        PointsLot.member_id == member_id, PointsLot.status == "available", PointsLot.expires_at.is_not(None),
        PointsLot.expires_at <= before)) or 0)


# -- activity ----------------------------------------------------------------------------------

def existing_activity_keys(session: Session, workspace_id: int, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    if not is_postgres(session):
        return {row[0] for row in Bulk(session).select_in(
            "SELECT cause_key FROM loyalty_activities WHERE workspace_id = ? AND cause_key {keys}", (workspace_id,),
            sorted(set(keys)))}
    for part in chunked(sorted(set(keys))):
        found.update(key for (key,) in session.connection().exec_driver_sql(
            "SELECT a.cause_key FROM loyalty_activities a JOIN unnest(%b::text[]) AS k(key) ON a.cause_key = k.key "
            "WHERE a.workspace_id = %s", (list(part), workspace_id)))
    return found


def insert_activities(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert qualifying activity (a cause recorded twice violates the unique key, as for entries)."""
    copy_rows(session, "loyalty_activities", ACTIVITY_COLUMNS,
              _stored_rows(session, rows, ACTIVITY_COLUMNS, ("occurred_at", "created_at"), ("capped",)))


def window_sums(session: Session, member_ids: Sequence[int], since: datetime | None) -> dict[int, tuple[int, int, int]]:
    """member → (spend_fen, orders, growth) of activity at or after `since` (all of it when None)."""
    found: dict[int, tuple[int, int, int]] = {}
    if not is_postgres(session):
        bulk = Bulk(session)
        after, params = ("occurred_at >= ? AND ", (bulk.ts(since),)) if since is not None else ("", ())
        rows = bulk.select_in("SELECT member_id, sum(spend_fen), sum(orders), sum(growth) FROM loyalty_activities "
                              f"WHERE {after}member_id {{keys}} GROUP BY member_id", params, sorted(set(member_ids)))
        return {mid: (s or 0, o or 0, g or 0) for mid, s, o, g in rows}
    for part in chunked(sorted(set(member_ids))):
        sums = select(Activity.member_id, func.sum(Activity.spend_fen), func.sum(Activity.orders),
                      func.sum(Activity.growth))
        stmt = restrict(session, sums, Activity.member_id, part).group_by(Activity.member_id)
        if since is not None:
            stmt = stmt.where(Activity.occurred_at >= since)
        found.update({int(mid): (int(s or 0), int(o or 0), int(g or 0)) for mid, s, o, g in session.execute(stmt)})
    return found


def action_counts(session: Session, member_ids: Sequence[int], kinds: Sequence[str],
                  from_day: int) -> dict[tuple[int, str, int], int]:
    """(member, kind, local day) → rewarded actions, for days from `from_day` (YYYYMMDD) on."""
    found: dict[tuple[int, str, int], int] = {}
    for part in chunked(sorted(set(member_ids))):
        stmt = (select(Activity.member_id, Activity.kind, Activity.local_day, func.count())
                .where(Activity.kind.in_(kinds), Activity.local_day >= from_day, Activity.capped.is_(False)))
        rows = session.execute(restrict(session, stmt, Activity.member_id, part)
                               .group_by(Activity.member_id, Activity.kind, Activity.local_day))
        found.update({(int(m), str(k), int(d)): int(n) for m, k, d, n in rows})
    return found


def order_activity(session: Session, workspace_id: int, order_ids: Sequence[str]) -> list[Activity]:
    found: list[Activity] = []
    for part in chunked(sorted(set(order_ids))):
        found.extend(session.scalars(restrict(session, select(Activity).where(Activity.workspace_id == workspace_id),
                                              Activity.order_id, part)))
    return found


# -- tier history and benefits -----------------------------------------------------------------

TIER_CHANGE_COLUMNS = ("workspace_id", "member_id", "from_tier_id", "to_tier_id", "direction", "reason",
                       "metric_value", "cause_key", "valid_until", "changed_at")
_TIER_CHANGE_TYPES = ("bigint", "bigint", "bigint", "bigint", "text", "text", "bigint", "text", "timestamptz",
                      "timestamptz")


def insert_tier_changes(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert tier history rows; returns the cause keys that were new (a cause recorded before is left)."""
    if not rows:
        return set()
    bulk = Bulk(session)
    values = _stored_rows(session, rows, TIER_CHANGE_COLUMNS, ("valid_until", "changed_at"))
    columns = ", ".join(TIER_CHANGE_COLUMNS)
    if bulk.postgres:  # one statement over arrays, whatever the count (no per-row SQL text to build or parse)
        arrays = ", ".join(f"?::{t}[]" for t in _TIER_CHANGE_TYPES)
        return {str(key) for (key,) in bulk.execute(
            f"INSERT INTO loyalty_tier_changes ({columns}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (workspace_id, cause_key) DO NOTHING RETURNING cause_key",
            [list(column) for column in zip(*values, strict=True)])}
    # SQLite: this transaction holds the database's write lock (BEGIN IMMEDIATE), so a key missing now
    # stays missing until the insert.
    key = TIER_CHANGE_COLUMNS.index("cause_key")
    existing = existing_tier_change_keys(session, rows[0]["workspace_id"], [v[key] for v in values])
    fresh, seen = [], set(existing)
    for v in values:
        if v[key] not in seen:
            seen.add(v[key])
            fresh.append(v)
    bulk.insert("loyalty_tier_changes", TIER_CHANGE_COLUMNS, fresh)
    return {v[key] for v in fresh}


def existing_tier_change_keys(session: Session, workspace_id: int, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunked(sorted(set(keys))):
        found.update(session.scalars(restrict(session, select(TierChange.cause_key)
                                              .where(TierChange.workspace_id == workspace_id),
                                              TierChange.cause_key, part)))
    return found


def tier_history(session: Session, member_id: int, limit: int = 100) -> list[TierChange]:
    return list(session.scalars(select(TierChange).where(TierChange.member_id == member_id)
                                .order_by(TierChange.id.desc()).limit(limit)))


GRANT_COLUMNS = ("workspace_id", "member_id", "tier_id", "benefit", "period", "coupons", "points", "created_at")
_GRANT_TYPES = ("bigint", "bigint", "bigint", "text", "text", "integer", "bigint", "timestamptz")


def claim_grants(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert benefit grants; returns the member ids whose grant is new (exactly once per period)."""
    claimed: list[int] = []
    if is_postgres(session):  # one statement over binary arrays per chunk (no per-row SQL to build and parse)
        ts = _stored_time(session)
        columns = ", ".join(GRANT_COLUMNS)
        arrays = ", ".join(f"%b::{t}[]" for t in _GRANT_TYPES)
        for part in chunked(rows):
            claimed.extend(int(m) for (m,) in session.connection().exec_driver_sql(
                f"INSERT INTO loyalty_benefit_grants ({columns}) SELECT * FROM unnest({arrays}) "
                "ON CONFLICT (workspace_id, member_id, benefit, period) DO NOTHING RETURNING member_id",
                tuple([ts(r[c]) if c == "created_at" else r[c] for r in part] for c in GRANT_COLUMNS)))
        return claimed
    stmt = (insert_for(session)(BenefitGrant)
            .on_conflict_do_nothing(index_elements=["workspace_id", "member_id", "benefit", "period"])
            .returning(BenefitGrant.member_id))
    for part in chunked(rows):
        claimed.extend(int(m) for m in session.execute(stmt, list(part)).scalars())
    return claimed


def benefit_run(session: Session, workspace_id: int, period: str, *, lock: bool = False) -> BenefitRun | None:
    stmt = select(BenefitRun).where(BenefitRun.workspace_id == workspace_id, BenefitRun.period == period)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalar(stmt)


def start_benefit_run(session: Session, workspace_id: int, period: str, at: datetime) -> BenefitRun:
    session.execute(insert_for(session)(BenefitRun).on_conflict_do_nothing(index_elements=["workspace_id", "period"]),
                    [{"workspace_id": workspace_id, "period": period, "cursor_member_id": 0, "members_granted": 0,
                      "coupons_issued": 0, "points_awarded": 0, "started_at": at}])
    run = benefit_run(session, workspace_id, period, lock=True)
    assert run is not None
    return run


def benefit_runs(session: Session, workspace_id: int, limit: int = 24) -> list[BenefitRun]:
    return list(session.scalars(select(BenefitRun).where(BenefitRun.workspace_id == workspace_id)
                                .order_by(BenefitRun.period.desc()).limit(limit)))
