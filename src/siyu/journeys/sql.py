"""Inserting many rows and learning which went in, in one statement per chunk at the driver.

The engine writes runs and staff tasks in batches of hundreds; SQLAlchemy's per-row parameter
processing costs more than the insert itself. On PostgreSQL the rows go as one JSON document
expanded by `jsonb_to_recordset` (serialised in one C call, planned once); on SQLite as multi-row
VALUES. Conflicts are skipped and RETURNING tells which rows were written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from siyu.db.bulk import Bulk

SQLITE_VARIABLES = 30_000  # under SQLite's 32,766 bound variables a statement


def insert_returning(bulk: Bulk, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], *,
                     conflict: str, returning: str) -> list[tuple[Any, ...]]:
    """Insert `rows` (plain Python values: aware datetimes, dicts for JSON) into `table`, skipping
    the ones `ON CONFLICT {conflict}` refuses; returns the `returning` columns of the rows written.
    `columns` are (name, PostgreSQL type). The rows must not conflict with one another."""
    if not rows:
        return []
    names = ", ".join(name for name, _ in columns)
    if bulk.postgres:
        keys = [name for name, _ in columns]
        document = orjson.dumps([dict(zip(keys, row, strict=True)) for row in rows]).decode()
        definition = ", ".join(f"{name} {kind}" for name, kind in columns)
        return bulk.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_to_recordset(?::jsonb) "
                            f"AS r({definition}) ON CONFLICT {conflict} RETURNING {returning}", (document,))
    one = "(" + ", ".join("?" for _ in columns) + ")"
    per_statement = max(1, SQLITE_VARIABLES // len(columns))
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        values = [_sqlite_value(bulk, value) for row in chunk for value in row]
        found.extend(bulk.execute(f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(chunk))} "
                                  f"ON CONFLICT {conflict} RETURNING {returning}", values))
    return found


def _sqlite_value(bulk: Bulk, value: Any) -> Any:
    if isinstance(value, datetime):
        return bulk.ts(value)
    if isinstance(value, dict | list):
        return bulk.json(value)
    if isinstance(value, bool):
        return int(value)
    return value
