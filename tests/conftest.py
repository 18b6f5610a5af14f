"""Test fixtures. The suite runs on SQLite by default and on PostgreSQL with
SIYU_TEST_DATABASE=postgresql (CI runs both). Each test session gets its own migrated database
(built by running the migrations); each test starts from empty tables.
Tests marked `pg` always run on PostgreSQL and fail — never skip — when it is unreachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.db.base import Base
from siyu.db.migrate import upgrade
from siyu.db.session import make_engine, session_factory
from siyu.kit.clock import Clock, FrozenClock, set_clock
from siyu.workspaces.service import (
    WorkspaceContext,
    context_of,
    create_api_key,
    create_user,
    create_workspace,
)

PG_ADMIN_URL = os.environ.get("SIYU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


def _create_pg_database() -> tuple[str, Engine]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"siyu_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return name, admin


def _drop_pg_database(name: str, admin: Engine) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("SIYU_TEST_DATABASE", "sqlite") == "postgresql":
        name, admin = _create_pg_database()
        url = _pg_url(name)
        upgrade(url)
        yield url
        _drop_pg_database(name, admin)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'siyu.db'}"
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database for tests that need PostgreSQL itself (concurrency)."""
    name, admin = _create_pg_database()
    url = _pg_url(name)
    upgrade(url)
    yield url
    _drop_pg_database(name, admin)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


def _empty_tables(eng: Engine) -> None:
    # Only tables the migrations created: a model without a migration is caught by
    # tests/test_migrations.py, not by every test failing in teardown.
    existing = set(inspect(eng).get_table_names())
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in existing]
    with eng.begin() as conn:
        if eng.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture(autouse=True)
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(NOW)
    set_clock(frozen)
    yield frozen
    set_clock(Clock())


@pytest.fixture
def clean_engine(engine: Engine) -> Iterator[Engine]:
    yield engine
    _empty_tables(engine)


@pytest.fixture(scope="session")
def look_engine(database_url: str) -> Iterator[Engine]:
    """Deferred transactions on SQLite: a test reading between API calls never blocks the app."""
    eng = make_engine(database_url, immediate=False)
    yield eng
    eng.dispose()


@pytest.fixture
def db(clean_engine: Engine, look_engine: Engine) -> Iterator[Session]:
    """A session for arranging and asserting; commit explicitly to make data visible to the app."""
    session = session_factory(look_engine)()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def workspace(db: Session) -> WorkspaceContext:
    ws = create_workspace(db, "acme", "Acme 母婴")
    db.commit()
    return context_of(ws)


@pytest.fixture
def other_workspace(db: Session) -> WorkspaceContext:
    ws = create_workspace(db, "rival", "Rival Brand")
    db.commit()
    return context_of(ws)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, secret_key="test-secret", embedded_worker=False)


@pytest.fixture
def app(settings: Settings, clean_engine: Engine) -> Any:
    from siyu.web.app import create_app

    return create_app(settings, clean_engine, run_worker=False)


def _key_for(db: Session, workspace: WorkspaceContext, role: str) -> str:
    from siyu.workspaces.service import get_workspace

    _, secret = create_api_key(db, get_workspace(db, workspace.id), f"test-{role}", role)
    db.commit()
    return secret


@pytest.fixture
def api(app: Any, db: Session, workspace: WorkspaceContext) -> Iterator[TestClient]:
    """A client authenticated with an operator API key of `workspace`."""
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {_key_for(db, workspace, 'operator')}"
        yield client


@pytest.fixture
def api_as(app: Any, db: Session, workspace: WorkspaceContext) -> Any:
    def make(role: str, ws: WorkspaceContext | None = None) -> TestClient:
        client = TestClient(app)
        client.headers["Authorization"] = f"Bearer {_key_for(db, ws or workspace, role)}"
        return client

    return make


@pytest.fixture
def owner(db: Session, workspace: WorkspaceContext) -> dict[str, str]:
    from siyu.workspaces.service import get_workspace

    create_user(db, get_workspace(db, workspace.id), "owner@acme.test", "店长", "correct-horse", "owner")
    db.commit()
    return {"email": "owner@acme.test", "password": "correct-horse"}
