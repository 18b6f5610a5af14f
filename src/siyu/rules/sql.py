"""The few SQL expressions that differ between SQLite and PostgreSQL, in one place.

Everything returned here is two-valued where the rule semantics need it (see `siyu.rules.tree`):
a JSON value of the wrong type gives NULL from the `text` / `number` accessors, and callers pair
them with a type test so the condition is false, never unknown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, and_, case, cast, func, literal_column, not_
from sqlalchemy.sql.elements import ColumnElement

MISSING = "missing"


def text_constant(value: str) -> ColumnElement[str]:
    """A fixed word of siyu's own (a state, a JSON type name) written into the SQL — never input."""
    assert value.replace("_", "").isalnum(), value
    return literal_column(f"'{value}'")


def number(value: float) -> ColumnElement[Any]:
    """A number of a rule written into the SQL: parsed and finite, so safe; fewer parameters, and
    PostgreSQL's generic plans see the value."""
    return literal_column(str(value) if isinstance(value, int) else repr(float(value)))


ONE: ColumnElement[Any] = literal_column("1")
ZERO: ColumnElement[Any] = literal_column("0")


def contains(dialect: str, haystack: Any, needle: str) -> ColumnElement[bool]:
    """Case-sensitive substring test on both stores (SQLite's LIKE ignores ASCII case)."""
    position = func.strpos(haystack, needle) if dialect == "postgresql" else func.instr(haystack, needle)
    return position > 0


def starts_with(haystack: Any, prefix: str) -> ColumnElement[bool]:
    return func.substr(haystack, ONE, number(len(prefix))) == prefix


def month_day(dialect: str, column: Any) -> ColumnElement[str]:
    """'MM-DD' of a date column."""
    if dialect == "postgresql":
        return func.to_char(column, "MM-DD")
    return func.strftime("%m-%d", column)


def epoch_seconds(dialect: str, column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a stored UTC timestamp (naive text on SQLite, timestamptz on PostgreSQL)."""
    if dialect == "postgresql":
        return func.extract("epoch", column)  # type: ignore[return-value]
    return (func.julianday(column) - 2440587.5) * 86400.0


class JsonValue:
    """One key of a JSON document column, read within its JSON type."""

    def __init__(self, dialect: str, column: Any, key: str) -> None:
        self.postgres = dialect == "postgresql"
        self.column = column
        self.key = key
        # Keys are letters, digits, _ and - (checked when the rule is parsed): safe to write in the SQL.
        if self.postgres:
            quoted: ColumnElement[str] = literal_column(f"'{key}'")
            self._type = func.jsonb_typeof(column.op("->")(quoted))
            self._text: Any = column.op("->>")(quoted)
        else:
            path: ColumnElement[str] = literal_column(f"""'$."{key}"'""")
            self._type = func.json_type(column, path)
            self._text = func.json_extract(column, path)
        # Never NULL: a missing key reads as 'missing'.
        self.type_tag = func.coalesce(self._type, text_constant(MISSING))

    @property
    def is_text(self) -> ColumnElement[bool]:
        return self.type_tag == text_constant("string" if self.postgres else "text")

    @property
    def is_number(self) -> ColumnElement[bool]:
        if self.postgres:
            return self.type_tag == text_constant("number")
        return self.type_tag.in_((text_constant("integer"), text_constant("real")))

    @property
    def text(self) -> ColumnElement[Any]:
        return case((self.is_text, self._text), else_=None)

    @property
    def number(self) -> ColumnElement[Any]:
        # A CASE, so PostgreSQL never casts a string that is not a number.
        value = cast(self._text, Numeric) if self.postgres else self._text
        return case((self.is_number, value), else_=None)

    def is_bool(self, value: bool) -> ColumnElement[bool]:
        word = text_constant("true" if value else "false")
        if self.postgres:
            return and_(self.type_tag == text_constant("boolean"), self._text == word)
        return self.type_tag == word

    @property
    def is_set(self) -> ColumnElement[bool]:
        """Present, not null and not the empty string."""
        blank_text = and_(self.is_text, self._text == literal_column("''"))
        return and_(self.type_tag.not_in((text_constant(MISSING), text_constant("null"))), not_(blank_text))
