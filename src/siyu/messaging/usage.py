"""Inventory of frequency caps and platform quotas: read, reserve with a conditional increment,
refund. A reservation is (limit_key, subject, period_start); the counter never passes its limit,
whatever the number of concurrent writers, because the increment itself carries the condition."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date

from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from siyu.db.base import table_of
from siyu.messaging.models import ContactUsage

UsageKey = tuple[str, str, date]  # limit_key, subject, period_start
CHUNK = 2000


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
                                      ContactUsage.subject.in_(subject_list[start:start + CHUNK]),
                                      ContactUsage.period_start.in_(period_list)))
        found.update({(key, subject, period): used for key, subject, period, used in rows})
    return found


def reserve(session: Session, workspace_id: int, wanted: dict[UsageKey, int]) -> set[UsageKey]:
    """Take one unit of each key, unless that passes its limit (`wanted` maps key → limit).
    Returns the keys taken. One statement per distinct limit; concurrent writers serialise on the row."""
    by_limit: dict[int, list[UsageKey]] = defaultdict(list)
    for key, limit in wanted.items():
        if limit >= 1:
            by_limit[limit].append(key)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    taken: set[UsageKey] = set()
    for limit, keys in by_limit.items():
        values = insert(ContactUsage).values(workspace_id=workspace_id, subject=bindparam("s"),
                                             limit_key=bindparam("k"), period_start=bindparam("p"), used=1)
        stmt = values.on_conflict_do_update(
            index_elements=["workspace_id", "subject", "limit_key", "period_start"],
            set_={"used": ContactUsage.used + 1}, where=ContactUsage.used < limit,
        ).returning(ContactUsage.limit_key, ContactUsage.subject, ContactUsage.period_start)
        for start in range(0, len(keys), CHUNK):
            params = [{"k": k, "s": s, "p": p} for k, s, p in keys[start:start + CHUNK]]
            for row in session.execute(stmt, params):
                taken.add((row[0], row[1], row[2]))
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
