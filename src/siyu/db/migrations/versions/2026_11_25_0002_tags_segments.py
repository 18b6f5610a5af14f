"""tags, segments and customer layering

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import siyu.db.base

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT = "exited_at IS NULL"


def _id() -> sa.BigInteger:
    return sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _time() -> siyu.db.base.UTCDateTime:
    return siyu.db.base.UTCDateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    name = op.f(f'fk_{table}_workspace_id_workspaces')
    return sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=name, ondelete='CASCADE')


def _rule_target_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    """Columns shared by auto tags and dynamic segments: the rule and the state of its refresh."""
    return [
        sa.Column('rule', _json(), nullable=True),
        sa.Column('rule_version', sa.Integer(), nullable=False),
        sa.Column('refresh_minutes', sa.Integer(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('last_refreshed_at', _time(), nullable=True),
        sa.Column('last_refresh_status', sa.String(length=10), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', _time(), nullable=False),
        sa.Column('updated_at', _time(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        'tag_groups',
        sa.Column('id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('created_at', _time(), nullable=False),
        _workspace_fk('tag_groups'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tag_groups')),
        sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_tag_groups_workspace_id_name')),
    )
    op.create_table(
        'tags',
        sa.Column('id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('group_id', _id(), nullable=True),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('external_key', sa.String(length=64), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('preset', sa.String(length=50), nullable=True),
        *_rule_target_columns(),
        sa.ForeignKeyConstraint(['group_id'], ['tag_groups.id'], name=op.f('fk_tags_group_id_tag_groups'),
                                ondelete='SET NULL'),
        _workspace_fk('tags'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
        sa.UniqueConstraint('workspace_id', 'external_key', name=op.f('uq_tags_workspace_id_external_key')),
        sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_tags_workspace_id_name')),
    )
    op.create_index(op.f('ix_tags_group_id'), 'tags', ['group_id'], unique=False)
    op.create_table(
        'customer_tags',
        sa.Column('tag_id', _id(), nullable=False),
        sa.Column('customer_id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('added_by', sa.String(length=200), nullable=False),
        sa.Column('added_at', _time(), nullable=False),
        sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_customer_tags_tag_id_tags'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tag_id', 'customer_id', name=op.f('pk_customer_tags')),
    )
    op.create_index('ix_customer_tags_customer', 'customer_tags', ['customer_id', 'tag_id'], unique=False)
    op.create_table(
        'tag_history',
        sa.Column('id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('tag_id', _id(), nullable=False),
        sa.Column('tag_name', sa.String(length=100), nullable=False),
        sa.Column('customer_id', _id(), nullable=False),
        sa.Column('action', sa.String(length=10), nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('at', _time(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tag_history')),
    )
    op.create_index('ix_tag_history_customer', 'tag_history', ['workspace_id', 'customer_id', 'id'], unique=False)
    op.create_table(
        'segments',
        sa.Column('id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('builtin_key', sa.String(length=50), nullable=True),
        sa.Column('last_refresh_ms', sa.Integer(), nullable=True),
        *_rule_target_columns(),
        _workspace_fk('segments'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
        sa.UniqueConstraint('workspace_id', 'builtin_key', name=op.f('uq_segments_workspace_id_builtin_key')),
        sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_segments_workspace_id_name')),
    )
    op.create_table(
        'segment_memberships',
        sa.Column('id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('segment_id', _id(), nullable=False),
        sa.Column('customer_id', _id(), nullable=False),
        sa.Column('entered_at', _time(), nullable=False),
        sa.Column('exited_at', _time(), nullable=True),
        sa.ForeignKeyConstraint(['segment_id'], ['segments.id'],
                                name=op.f('fk_segment_memberships_segment_id_segments'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_memberships')),
    )
    op.create_index('ix_segment_memberships_current', 'segment_memberships', ['segment_id', 'customer_id'],
                    unique=True, sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
    op.create_index('ix_segment_memberships_customer', 'segment_memberships', ['customer_id', 'segment_id'],
                    unique=False, sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
    op.create_table(
        'segment_sizes',
        sa.Column('segment_id', _id(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_sizes_segment_id_segments'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('segment_id', 'day', name=op.f('pk_segment_sizes')),
    )
    op.create_table(
        'customer_lifecycle',
        sa.Column('customer_id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('stage', sa.String(length=20), nullable=False),
        sa.Column('previous_stage', sa.String(length=20), nullable=True),
        sa.Column('since', _time(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_lifecycle')),
    )
    op.create_index('ix_customer_lifecycle_ws_stage', 'customer_lifecycle', ['workspace_id', 'stage'], unique=False)
    op.create_table(
        'customer_rfm',
        sa.Column('customer_id', _id(), nullable=False),
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('recency_days', sa.Float(), nullable=False),
        sa.Column('frequency', sa.Integer(), nullable=False),
        sa.Column('monetary_fen', _id(), nullable=False),
        sa.Column('r_score', sa.SmallInteger(), nullable=False),
        sa.Column('f_score', sa.SmallInteger(), nullable=False),
        sa.Column('m_score', sa.SmallInteger(), nullable=False),
        sa.Column('r_high', sa.Boolean(), nullable=False),
        sa.Column('f_high', sa.Boolean(), nullable=False),
        sa.Column('m_high', sa.Boolean(), nullable=False),
        sa.Column('rfm_class', sa.String(length=30), nullable=False),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_rfm')),
    )
    op.create_index('ix_customer_rfm_ws_class', 'customer_rfm', ['workspace_id', 'rfm_class'], unique=False)
    op.create_table(
        'layering_runs',
        sa.Column('workspace_id', _id(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('last_run_at', _time(), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('summary', _json(), nullable=False),
        sa.PrimaryKeyConstraint('workspace_id', 'kind', name=op.f('pk_layering_runs')),
    )
    # Windowed order conditions ("≥ 2 orders in the last 90 days") and RFM over a window read the
    # workspace's orders by payment time: this index holds every column they read, so they read
    # only the window, from the index alone.
    op.create_index('ix_orders_ws_paid_segments', 'orders',
                    ['workspace_id', 'paid_at', 'customer_id', 'status', 'total_fen', 'refunded_fen'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_orders_ws_paid_segments', table_name='orders')
    for table in ("layering_runs", "customer_rfm", "customer_lifecycle", "segment_sizes", "segment_memberships",
                  "segments", "tag_history", "customer_tags", "tags", "tag_groups"):
        op.drop_table(table)
