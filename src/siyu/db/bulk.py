"""Bulk writes for the ingestion hot path.

SQLAlchemy's executemany processes every bound value through its type system, which costs more
than the database itself when a batch writes tens of thousands of rows. Here values are converted
once, by hand, to what the driver stores (the same text format SQLAlchemy uses for datetimes on
SQLite), and rows go to the driver's `executemany` in one call. Only plain INSERT/UPDATE
statements over known columns go through this module; everything else uses SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session


class Bulk:
    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"

    # -- values --------------------------------------------------------------------------------
    def ts(self, value: datetime | None) -> Any:
        if value is None:
            return None
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return utc if self.postgres else utc.replace(tzinfo=None).isoformat(" ", "microseconds")

    def day(self, value: date | None) -> Any:
        if value is None or self.postgres:
            return value
        return value.isoformat()

    def json(self, value: Any) -> Any:
        if self.postgres:
            from psycopg.types.json import Jsonb

            return Jsonb(value)
        return orjson.dumps(value).decode()

    def flag(self, value: bool) -> Any:
        return value if self.postgres else int(value)

    # -- SQL -----------------------------------------------------------------------------------
    def least(self, a: str, b: str) -> str:
        """The smaller of two nullable values (null only when both are). Placeholders appear twice."""
        return f"{'least' if self.postgres else 'min'}(coalesce({a}, {b}), coalesce({b}, {a}))"

    def greatest(self, a: str, b: str) -> str:
        return f"{'greatest' if self.postgres else 'max'}(coalesce({a}, {b}), coalesce({b}, {a}))"

    def run(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute `sql` (with `?` placeholders) once per row, in one driver call."""
        if not rows:
            return
        if self.postgres:
            sql = sql.replace("?", "%s")
        self.connection.exec_driver_sql(sql, list(rows))  # type: ignore[arg-type]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               conflict: str = "") -> None:
        placeholders = ", ".join("?" for _ in columns)
        suffix = f" ON CONFLICT {conflict}" if conflict else ""
        self.run(f'INSERT INTO {table} ({", ".join(columns)}) VALUES ({placeholders}){suffix}', rows)

    def allocate_ids(self, table: str, count: int) -> list[int]:
        """Reserve primary keys for rows about to be inserted.

        On PostgreSQL from the table's sequence; on SQLite from max(id), which is safe because a
        write transaction there holds the database lock from BEGIN IMMEDIATE on.
        """
        if count == 0:
            return []
        if self.postgres:
            rows = self.connection.execute(
                text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
                {"n": count})
            return [int(r[0]) for r in rows]
        start = int(self.connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one())
        return list(range(start + 1, start + count + 1))


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
