"""Bulk writes for the ingestion hot path.

SQLAlchemy's executemany processes every bound value through its type system, which costs more
than the database itself when a batch writes tens of thousands of rows. Here values are converted
once, by hand, to what the driver stores (the same text format SQLAlchemy uses for datetimes on
SQLite), and rows go to the driver's `executemany` in one call. Only plain INSERT/UPDATE
statements over known columns go through this module; everything else uses SQLAlchemy.

On PostgreSQL, plain inserts of many rows go through COPY (`copy`) and lookups of many keys bind
one array (`select_in`): every executemany row is a statement the server plans and runs on its
own, which on a 2-core machine costs more than everything else the ingestion does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

SQLITE_IN_CHUNK = 500  # keys per `IN (...)` on SQLite (far below its 32,766 variables)


def sqlite_time(value: datetime) -> str:
    """A time as SQLite stores it: UTC in SQLAlchemy's text format, "2026-11-01 10:00:00.000000" (naive
    times are UTC)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value.isoformat(" ", "microseconds")[:26]


class Bulk:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"

    # -- values --------------------------------------------------------------------------------
    def ts(self, value: datetime | None) -> Any:
        if value is None:
            return None
        if not self.postgres:
            return sqlite_time(value)
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def read_ts(self, value: Any) -> datetime:
        """A time read at the driver, as an aware UTC datetime (SQLite gives the text `ts` wrote)."""
        if type(value) is str:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        moment: datetime = value
        return moment if moment.tzinfo is UTC else moment.astimezone(UTC)

    def json_text(self, column: str) -> str:
        """`column` (a JSON document) selected as its text, for orjson to read: psycopg would parse
        PostgreSQL's jsonb with the standard library's json, several times slower."""
        return f"{column}::text" if self.postgres else column

    def day(self, value: date | None) -> Any:
        if value is None or self.postgres:
            return value
        return value.isoformat()

    def json(self, value: Any) -> Any:
        if self.postgres:
            from psycopg.types.json import Jsonb

            return Jsonb(value, dumps=_json_text)
        return _json_text(value)

    def json_of_text(self, text: str) -> Any:
        """A JSON document already written as text (an event's properties), as this store takes it."""
        if self.postgres:
            from psycopg.types.json import Jsonb

            return Jsonb(text, dumps=_as_is)
        return text

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
        self.connection.exec_driver_sql(sql, list(rows))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               conflict: str = "") -> None:
        placeholders = ", ".join("?" for _ in columns)
        suffix = f" ON CONFLICT {conflict}" if conflict else ""
        self.run(f'INSERT INTO {table} ({", ".join(columns)}) VALUES ({placeholders}){suffix}', rows)

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows without conflict handling: COPY on PostgreSQL, executemany on SQLite."""
        if not self.postgres:
            self.insert(table, columns, rows)
            return
        if not rows:
            return
        driver: Any = self.connection.connection.driver_connection  # the psycopg connection, same transaction
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert_all(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                   conflict: str = "") -> None:
        """Like `insert`, in one statement on PostgreSQL: each column as one array, unnested. The rows
        must not conflict with one another (one statement cannot update a row twice)."""
        if not self.postgres:
            self.insert(table, columns, rows, conflict=conflict)
            return
        if not rows:
            return
        types = _postgres_types(table)
        suffix = f" ON CONFLICT {conflict}" if conflict else ""
        column_values = list(zip(*rows, strict=True))
        try:
            params: list[Any] = [_json_array(values) for values in column_values]
        except TypeError:  # a value JSON cannot carry: as arrays psycopg builds
            arrays = ", ".join(f"?::{types[column]}[]" for column in columns)
            params = [list(values) for values in column_values]
        else:
            arrays = ", ".join(f"{_ELEMENTS}::{types[column]}[]" for column in columns)
        self.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}){suffix}", params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement with `?` placeholders on the driver's own cursor (rows as plain tuples:
        SQLAlchemy's row objects cost more than the lookup itself); returns the rows, if any."""
        if self.postgres:
            sql = sql.replace("?", "%s")
        driver: Any = self.connection.connection.driver_connection  # same connection, same transaction
        cursor = driver.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()

    def select_in(self, sql: str, params: Sequence[Any], keys: Sequence[Any]) -> list[Any]:
        """The rows of `sql` for many keys: `{keys}` in its WHERE clause becomes the membership test,
        `= ANY(?)` with one array on PostgreSQL (one plan whatever the count), chunked `IN (?, ...)` on
        SQLite. The keys come last, after `params`."""
        if not keys:
            return []
        if self.postgres:
            # %b: the array bound in binary, without psycopg's per-element quoting of text arrays
            return self.execute(sql.replace("{keys}", "= ANY(%b)"), (*params, list(keys)))
        rows: list[Any] = []
        for start in range(0, len(keys), SQLITE_IN_CHUNK):
            chunk = keys[start:start + SQLITE_IN_CHUNK]
            membership = f"IN ({', '.join('?' * len(chunk))})"
            rows.extend(self.execute(sql.replace("{keys}", membership), (*params, *chunk)))
        return rows

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """A WHERE condition (and its parameters) matching `column` against a short list of values."""
        if self.postgres:
            return f"{column} = ANY(?)", (list(values),)
        return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)

    def written_ranges(self, column: str, ranges: Sequence[Sequence[int]]) -> tuple[str, tuple[Any, ...]]:
        """A WHERE condition matching keys in any of these [first, last] ranges (rows several batches of one
        transaction wrote)."""
        if self.postgres and len(ranges) > 100:  # sequences shared with other sessions left many gaps
            return f"{column} = ANY(?)", ([key for first, last in ranges for key in range(first, last + 1)],)
        condition = " OR ".join(f"{column} BETWEEN ? AND ?" for _ in ranges)
        return f"({condition})", tuple(key for first, last in ranges for key in (first, last))

    def write_stamp(self) -> Any:
        """A value that stays the same as long as nobody else writes (see `quiet_stamps`).

        SQLite: the connection's data_version, which changes when another connection commits (its own
        commits leave it alone). PostgreSQL: the current snapshot (`xmin:xmax:running`), which moves
        when any transaction is given an id (every writing one is) or one that was running ends."""
        if self.postgres:
            return self.execute("SELECT pg_current_snapshot()::text")[0][0]
        driver = self.connection.connection.driver_connection
        return id(driver), int(driver.execute("PRAGMA data_version").fetchone()[0])  # type: ignore[union-attr]

    def quiet_stamps(self) -> frozenset[Any]:
        """After this transaction wrote: the values `write_stamp` can read later, in this transaction or
        the next ones of this connection, only if nobody else wrote meanwhile (empty when that cannot be
        told, as when other transactions were running).

        On PostgreSQL this transaction has id X and nobody else may be running: the snapshot is `X:X:` now
        and, once it committed, `X+1:X+1:` until any other transaction is given an id or ends."""
        if not self.postgres:
            return frozenset({self.write_stamp()})
        own, snapshot = self.execute("SELECT pg_current_xact_id()::text, pg_current_snapshot()::text")[0]
        return quiet_snapshots(int(own), snapshot)

    def refresh_statistics(self, tables: Sequence[str]) -> None:
        """ANALYZE `tables` on PostgreSQL when the first of them changed more than it holds since its
        statistics were taken. Autovacuum does it too, but only about once a minute: a bulk load that
        grows a table tenfold in between is planned as if the table were empty (sequential scans)."""
        if not self.postgres:
            return
        stale = self.connection.exec_driver_sql(  # grown fivefold: a handful of times over any load
            "SELECT n_mod_since_analyze > 4 * greatest(c.reltuples, 5000) FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.relid = %s::regclass", (tables[0],)).scalar()
        if stale:
            self.connection.exec_driver_sql(f"ANALYZE {', '.join(tables)}")

    def allocate_ids(self, table: str, count: int) -> list[int]:
        """Reserve primary keys for rows about to be inserted.

        On PostgreSQL from the table's sequence; on SQLite from max(id), which is safe because a
        write transaction there holds the database lock from BEGIN IMMEDIATE on.
        """
        if count == 0:
            return []
        if self.postgres:
            return self._sequence_values(table, count)
        start = int(self.connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one())
        return list(range(start + 1, start + count + 1))

    def _sequence_values(self, table: str, count: int) -> list[int]:
        """`count` values drawn from the table's id sequence. Unless other sessions drew from it meanwhile
        they are consecutive, and only the first and last travel back (not tens of thousands of rows)."""
        sequence = self.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,))[0][0]
        first, last, scattered = self.execute(  # (nextval of a constant: a sequence found per row is ten times slower)
            "SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v ORDER BY v) "
            "END FROM (SELECT nextval(?::regclass) AS v FROM generate_series(1, ?)) AS drawn", (sequence, count))[0]
        return list(range(first, last + 1)) if scattered is None else list(scattered)


@lru_cache(maxsize=64)
def _postgres_types(table: str) -> dict[str, str]:
    from sqlalchemy.dialects import postgresql

    from siyu.db.base import Base

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return {column.name: column.type.compile(dialect=dialect) for column in Base.metadata.tables[table].columns}


# Columns of many rows go to PostgreSQL as JSON texts, unpacked by the server: psycopg dumps a list
# parameter element by element in Python (testing each string for quoting with a regular expression),
# which for the tens of thousands of rows of an ingestion batch costs several times more. (Lookups keep
# array parameters: the planner sizes a plan by the array, not by a subquery it cannot see into.)
_ELEMENTS = "ARRAY(SELECT json_array_elements_text(?::json))"


def _json_array(values: Sequence[Any]) -> str:
    return orjson.dumps(values if isinstance(values, list | tuple) else list(values)).decode()


def _as_is(text: str) -> str:
    return text


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def quiet_snapshots(own: int, snapshot: str) -> frozenset[str]:
    """PostgreSQL snapshots that show nobody but transaction `own` wrote since `snapshot` was taken in it:
    none unless it was the only one running (then `own:own:`), and after it committed `own+1:own+1:`."""
    if snapshot != f"{own}:{own}:":
        return frozenset()
    return frozenset({snapshot, f"{own + 1}:{own + 1}:"})
