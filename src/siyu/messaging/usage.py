"""Inventory of frequency caps and platform quotas: read, reserve with a conditional increment,
refund. A reservation is (limit_key, subject, period_start); the counter never passes its limit,
whatever the number of concurrent writers, because the increment itself carries the condition."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date

import orjson
from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.messaging.models import ContactUsage
from siyu.messaging.sql import one_of

UsageKey = tuple[str, str, date]  # limit_key, subject, period_start
CHUNK = 10_000


def as_key(reservation: Sequence[str]) -> UsageKey:
    return reservation[0], reservation[1], date.fromisoformat(reservation[2])


def as_reservation(key: UsageKey) -> list[str]:
    return [key[0], key[1], key[2].isoformat()]


def read_usage(session: Session, workspace_id: int, subjects: Iterable[str], periods: Iterable[date]
               ) -> dict[UsageKey, int]:
    subject_list = sorted(set(subjects))
    period_list = sorted(set(periods))
    found: dict[UsageKey, int] = {}
    if not subject_list or not period_list:
        return found
    for start in range(0, len(subject_list), CHUNK):
        rows = session.execute(select(ContactUsage.limit_key, ContactUsage.subject, ContactUsage.period_start,
                                      ContactUsage.used)
                               .where(ContactUsage.workspace_id == workspace_id,
                                      one_of(session, ContactUsage.subject, subject_list[start:start + CHUNK]),
                                      ContactUsage.period_start.in_(period_list)))
        found.update({(key, subject, period): used for key, subject, period, used in rows})
    return found


def reserve(session: Session, workspace_id: int, wanted: dict[UsageKey, int]) -> set[UsageKey]:
    """Take one unit of each key unless that passes its limit (`wanted` maps key → limit); returns the
    keys taken. The increment carries the condition, so concurrent writers never pass a limit: on
    PostgreSQL one statement per distinct limit reports what it took; on SQLite the transaction holds
    the database's write lock from BEGIN IMMEDIATE, so the counts the caller checked are still exact."""
    by_limit: dict[int, list[UsageKey]] = defaultdict(list)
    for key, limit in wanted.items():
        if limit >= 1:
            by_limit[limit].append(key)
    connection = session.connection()
    taken: set[UsageKey] = set()
    for limit, keys in by_limit.items():
        if connection.dialect.name == "postgresql":
            document = orjson.dumps([{"s": s, "k": k, "p": p} for k, s, p in keys]).decode()
            rows = connection.exec_driver_sql(
                "INSERT INTO contact_usage (workspace_id, subject, limit_key, period_start, used) "
                "SELECT %s, s, k, p, 1 FROM jsonb_to_recordset(%s::jsonb) AS r(s text, k text, p date) "
                "ON CONFLICT (workspace_id, subject, limit_key, period_start) "
                "DO UPDATE SET used = contact_usage.used + 1 WHERE contact_usage.used < %s "
                "RETURNING limit_key, subject, period_start",
                (workspace_id, document, limit))
            taken.update((k, s, p) for k, s, p in rows)
        else:
            connection.exec_driver_sql(
                "INSERT INTO contact_usage (workspace_id, subject, limit_key, period_start, used) "
                "VALUES (?, ?, ?, ?, 1) ON CONFLICT (workspace_id, subject, limit_key, period_start) "
                "DO UPDATE SET used = used + 1 WHERE used < ?",
                [(workspace_id, s, k, p.isoformat(), limit) for k, s, p in keys])
            taken.update(keys)
    return taken


def refund(session: Session, workspace_id: int, keys: Iterable[UsageKey]) -> None:
    """Give units back (a message that will not go); a counter never goes below zero."""
    counts = Counter(keys)
    if not counts:
        return
    table = table_of(ContactUsage)
    remaining = table.c.used - bindparam("n")
    stmt = (update(table)
            .where(table.c.workspace_id == workspace_id, table.c.limit_key == bindparam("k"),
                   table.c.subject == bindparam("s"), table.c.period_start == bindparam("p"))
            .values(used=case((remaining < 0, 0), else_=remaining)))
    session.execute(stmt, [{"k": k, "s": s, "p": p, "n": n} for (k, s, p), n in counts.items()])


def move_usage(session: Session, workspace_id: int, from_subject: str, to_subject: str) -> None:
    """Add one subject's counters to another's (after a merge the survivor has used both)."""
    table = table_of(ContactUsage)
    rows = session.execute(select(table.c.limit_key, table.c.period_start, table.c.used)
                           .where(table.c.workspace_id == workspace_id, table.c.subject == from_subject)).all()
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(workspace_id=workspace_id, subject=to_subject, limit_key=bindparam("k"),
                                period_start=bindparam("p"), used=bindparam("u"))
    session.execute(stmt.on_conflict_do_update(index_elements=["workspace_id", "subject", "limit_key", "period_start"],
                                               set_={"used": table.c.used + stmt.excluded.used}),
                    [{"k": k, "p": p, "u": u} for k, p, u in rows])
    session.execute(delete(table).where(table.c.workspace_id == workspace_id, table.c.subject == from_subject))
