"""loyalty: room on every page of loyalty_members for in-place (HOT) updates on PostgreSQL

Every earning moves a member's balance (`points_balance = points_balance + d`). Those columns are not
indexed, so PostgreSQL can write the new row version on the same page without touching the table's
five indexes — when the page has room. At the default fillfactor (100) it rarely has, and each batch
of earnings rewrites an index entry per member per index. SQLite updates rows in place: nothing to do.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 23:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE loyalty_members SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE loyalty_members RESET (fillfactor)")
