"""Set-wise statements for the hot paths (a broadcast's fill, dispatch), where a batch asks about or
writes thousands of rows at once.

Lists travel as ONE parameter, a JSON document the database unpacks itself (`json_each` on SQLite,
`jsonb_to_recordset` / `jsonb_array_elements_text` on PostgreSQL): bound one by one, or as driver
arrays whose text elements are escaped one by one in Python, the parameters cost more to prepare
than the statements take to run. Serialising with orjson is a single C call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from siyu.kit.clock import ensure_utc


def plan_each_batch(session: Session) -> None:
    """Plan this transaction's statements for their actual parameters. psycopg prepares a statement
    run five times, and PostgreSQL may then keep one generic plan for it; for "these 5,000 ids" a
    generic plan cannot know the list is selective and may scan the whole table on every batch."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def fast_json_results(session: Session) -> None:
    """Decode this connection's JSON results with orjson (psycopg's default is the json module,
    half of dispatch's Python time when a batch reads a thousand message contents)."""
    if session.get_bind().dialect.name == "postgresql":
        from psycopg.types.json import set_json_loads

        dbapi = session.connection().connection.dbapi_connection
        set_json_loads(orjson.loads, dbapi)  # type: ignore[arg-type]


def relaxed_commit(connection: Connection) -> None:
    """Let this transaction's commit return before its WAL reaches the disk (PostgreSQL). Only for
    writes whose loss in a server crash is already covered: dispatch's outcomes (a message left
    `sending` is looked up with the provider) — never for the claim, which must be durable before a
    provider is called."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


def _json(values: Any) -> str:
    return orjson.dumps(values).decode()


def one_of(session: Session, column: Any, values: Sequence[int] | Sequence[str]) -> ColumnElement[bool]:
    """`column IN values`, with `values` sent as a single parameter: on PostgreSQL an array literal
    unnested as a set (`IN (SELECT unnest('{1,2,3}'::bigint[]))`: a semi-join, where `= ANY(array)`
    would compare every row with every element when the planner scans), on SQLite a JSON array."""
    if session.get_bind().dialect.name == "postgresql":
        textual = bool(values) and isinstance(values[0], str)
        items = (_quoted(str(v)) for v in values) if textual else (str(int(v)) for v in values)
        literal = bindparam(None, "{" + ",".join(items) + "}", type_=String())
        array = cast(literal, ARRAY(String() if textual else BigInteger()))
        return column.in_(select(func.unnest(array)))  # type: ignore[no-any-return]
    each = func.json_each(bindparam(None, _json(list(values)), type_=String())).table_valued("value")
    return column.in_(select(literal_column("value")).select_from(each))  # type: ignore[no-any-return]


def text_array(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of texts, to bind as one parameter cast to `text[]`."""
    return "{" + ",".join(_quoted(v) for v in values) + "}"


def _quoted(text: str) -> str:
    """An element of a PostgreSQL array literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def insert_many(connection: Connection, table: str, columns: Sequence[tuple[str, str]],
                rows: Sequence[Sequence[Any]], *, conflict: str = "") -> int:
    """Insert rows in one statement. On PostgreSQL the rows go as one JSON document expanded by
    `jsonb_to_recordset`, so the server runs one insert, not one per row; on SQLite through the
    driver's executemany, which runs in-process. `columns` are (name, PostgreSQL type); values are
    Python values: aware datetimes for timestamptz, dicts and lists for jsonb. Returns how many
    rows were written (fewer than given when the conflict clause skipped some)."""
    if not rows:
        return 0
    names = ", ".join(name for name, _ in columns)
    suffix = f" ON CONFLICT {conflict}" if conflict else ""
    if connection.dialect.name == "postgresql":
        keys = [name for name, _ in columns]
        document = orjson.dumps([dict(zip(keys, row, strict=True)) for row in rows]).decode()
        definition = ", ".join(f"{name} {kind}" for name, kind in columns)
        result = connection.exec_driver_sql(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_to_recordset(%s::jsonb) AS r({definition})"
            f"{suffix}", (document,))
        return int(result.rowcount)
    converters = [_SQLITE_VALUE.get(kind) for _, kind in columns]
    values = [tuple(value if convert is None or value is None else convert(value)
                    for convert, value in zip(converters, row, strict=True)) for row in rows]
    placeholders = ", ".join("?" for _ in columns)
    return int(connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({placeholders}){suffix}",
                                          values).rowcount)


def _sqlite_timestamp(value: datetime) -> str:
    """Stored the way `UTCDateTime` stores it on SQLite: naive UTC text."""
    return ensure_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


_SQLITE_VALUE: dict[str, Callable[[Any], Any]] = {
    "timestamptz": _sqlite_timestamp,
    "jsonb": lambda value: orjson.dumps(value).decode(),
    "boolean": int,
}
