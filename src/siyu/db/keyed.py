"""Selecting rows by many keys at once, with a plan that stays good when it is cached."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def restrict(session: Session, stmt: Any, column: Any, values: Sequence[Any]) -> Any:
    """`stmt` limited to rows whose `column` is one of `values`.

    On PostgreSQL a join with `unnest(:array)`: one index probe per key, whatever plan is cached. (A
    cached generic plan of `IN (...)` or `= ANY($1)` cannot hash the array, and may scan the table
    comparing every row with every key.) On SQLite `IN (...)`; keep chunks under its variable limit.
    """
    if session.get_bind().dialect.name != "postgresql":
        return stmt.where(column.in_(values))
    keys = func.unnest(bindparam(None, list(values), type_=ARRAY(column.type))).table_valued("key").render_derived()
    return stmt.join(keys, column == keys.c.key)
