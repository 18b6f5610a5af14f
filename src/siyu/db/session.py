"""Engines and sessions. The boundary (request, job, CLI command) owns the transaction."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from siyu.config import Settings, get_settings


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-200000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    # Checkpoint every ~40 MB of log, not SQLite's 4 MB: jobs that each touch thousands of rows (a batch of
    # earnings, a segment refresh) dirty many of the same pages again and again; with the smaller log
    # nearly every commit also copied its pages into the database file and waited on fsync.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Writers take the lock at BEGIN so two writers queue instead of failing on upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, immediate: bool = True) -> Engine:
    """An engine with siyu's connection settings.

    On SQLite every transaction starts with BEGIN IMMEDIATE (`immediate=True`), so two writers queue
    on the lock instead of one failing when it upgrades from reading to writing. An engine used
    only to look (tests' assertions and arrangements) passes `immediate=False`: it runs each statement
    in SQLite's autocommit mode, so it never holds a lock or a stale snapshot between statements.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **_JSON_CODEC)
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_tx(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        if immediate:
            event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **_JSON_CODEC)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns written and read with orjson: the standard library's encoder is the slowest part of
# enqueueing a batch's jobs (each payload carries the batch's tens of thousands of event ids).
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _engine_for(settings.resolved_database_url)


_factories: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """The engine's session factory, made once: building a sessionmaker costs more than a small unit
    of work (every job and checkout opens one). Kept only as long as the engine lives."""
    factory = _factories.get(engine)
    if factory is None:
        factory = _factories[engine] = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
    return factory


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


BULK_CACHE_KIB = 96 * 1024


@contextmanager
def bulk_loading(engine: Engine) -> Iterator[tuple[Engine, Callable[[], None]]]:
    """An engine for a long run of large write transactions (an import), and a function to call after
    each commit.

    SQLite copies its write-ahead log into the database file (a checkpoint) on the committing thread,
    once the log holds 1,000 pages: for a bulk load a fifth of its time, waiting on fsync. Here the
    loading connections never checkpoint; a thread with its own connection does, after each commit,
    while the load goes on. On PostgreSQL: the engine itself, and nothing to call.
    """
    if engine.dialect.name != "sqlite" or not engine.url.database:
        yield engine, lambda: None
        return
    loader = make_engine(engine.url.render_as_string(hide_password=False))
    event.listen(loader, "connect", _no_checkpoints)
    committed, done = threading.Event(), threading.Event()
    worker = threading.Thread(target=_checkpoint_after_commits, args=(engine.url.database, committed, done),
                              name="siyu-checkpoints", daemon=True)
    worker.start()
    try:
        yield loader, committed.set
    finally:
        done.set()
        committed.set()
        worker.join()
        loader.dispose()


def _no_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
    # Every row an import writes references a workspace it runs in and customers or orders it resolved
    # or wrote in the same transaction of SQLite's single writer: checking each reference again is a
    # lookup per row and foreign key for nothing. (PostgreSQL, and every other connection, still check.)
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    # A smaller page cache than the server's, as the import's batches need memory too (< 500 MB in all):
    # 96 MB holds most of what random inserts into the events indexes touch (a 1M-event import: 48 MB
    # 32.2 s, 96 MB 30.6–31.5 s, 128 MB 30.7–30.9 s; both processes' peak 317, 375 and 402 MB).
    dbapi_connection.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")


def _checkpoint_after_commits(database: str, committed: threading.Event, done: threading.Event) -> None:
    connection = sqlite3.connect(database, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        while not done.is_set():
            committed.wait()
            committed.clear()
            # PASSIVE copies what it can without waiting for the writer, which keeps writing meanwhile.
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        connection.close()
