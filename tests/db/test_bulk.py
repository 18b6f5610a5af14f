"""Bulk writes: times in the text SQLite stores; primary keys reserved on PostgreSQL ahead of COPY
(SQLite takes them from max(id))."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.dialects import sqlite

from siyu.db.base import UTCDateTime
from siyu.db.bulk import Bulk, sqlite_time
from siyu.db.session import transaction

_SQLITE = sqlite.dialect()
_offsets = st.none() | st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=_offsets))
def test_a_time_is_written_as_the_text_sqlalchemy_stores_on_sqlite(moment: datetime) -> None:
    write = UTCDateTime().dialect_impl(_SQLITE).bind_processor(_SQLITE)
    assert write is not None
    assert sqlite_time(moment) == write(moment)


@pytest.mark.pg
def test_reserved_ids_are_consecutive_and_new(pg_engine: Engine) -> None:
    with transaction(pg_engine) as session:
        first = Bulk(session).allocate_ids("events", 1000)
        second = Bulk(session).allocate_ids("events", 3)
    assert first == list(range(first[0], first[0] + 1000))
    assert second[0] > first[-1] and len(second) == 3


@pytest.mark.pg
def test_ids_drawn_with_gaps_are_read_one_by_one(pg_engine: Engine) -> None:
    """Other sessions drawing from the sequence meanwhile leave gaps: the values drawn are still returned."""
    with transaction(pg_engine) as session:
        session.execute(text("ALTER SEQUENCE tags_id_seq INCREMENT BY 3"))
        try:
            ids = Bulk(session).allocate_ids("tags", 4)
        finally:
            session.execute(text("ALTER SEQUENCE tags_id_seq INCREMENT BY 1"))
    assert len(ids) == 4 and all(b - a == 3 for a, b in pairwise(ids))
