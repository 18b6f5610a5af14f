from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from siyu.db import models  # noqa: F401
from siyu.db.base import Base
from siyu.db.migrate import heads


def test_migration_history_has_one_head() -> None:
    assert len(heads()) == 1, heads()


def test_migrations_create_every_model(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    missing = [d for d in diff if d[0] in ("add_table", "add_column", "remove_table")]
    assert missing == []
