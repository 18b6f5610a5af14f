"""A membership test against a long list as one bound parameter: a JSON array on SQLite, an array
on PostgreSQL. A broadcast batch asks about thousands of customers per query; bound one by one,
the parameters cost more to prepare than the query takes to run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ARRAY, BigInteger, ColumnElement, String, bindparam, func, literal_column, select
from sqlalchemy.orm import Session


def one_of(session: Session, column: Any, values: Sequence[int] | Sequence[str]) -> ColumnElement[bool]:
    """`column IN values`, with `values` sent as a single parameter."""
    textual = bool(values) and isinstance(values[0], str)
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=ARRAY(String() if textual else BigInteger()))
        return column == func.any(array)  # type: ignore[no-any-return]
    each = func.json_each(bindparam(None, orjson.dumps(list(values)).decode(), type_=String())).table_valued("value")
    return column.in_(select(literal_column("value")).select_from(each))  # type: ignore[no-any-return]
