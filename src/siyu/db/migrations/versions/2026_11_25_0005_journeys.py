"""journeys: definitions and versions, runs and their step log, staff tasks, consumption cycles

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-25 21:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import siyu.db.base

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('journey_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('journey_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=True),
    sa.Column('due_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('waiting_event', sa.String(length=100), nullable=True),
    sa.Column('holdout', sa.Boolean(), nullable=False),
    sa.Column('entry_key', sa.String(length=200), nullable=False),
    sa.Column('entered_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('exited_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('exit_reason', sa.String(length=30), nullable=True),
    sa.Column('goal_event', sa.String(length=100), nullable=True),
    sa.Column('goal_until', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('converted_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_runs')),
    sa.UniqueConstraint('journey_id', 'customer_id', 'entry_key',
        name=op.f('uq_journey_runs_journey_id_customer_id_entry_key'))
    )
    with op.batch_alter_table('journey_runs', schema=None) as batch_op:
        batch_op.create_index('ix_journey_runs_customer', ['workspace_id', 'customer_id'], unique=False)
        batch_op.create_index('ix_journey_runs_due', ['due_at'], unique=False,
            sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index('ix_journey_runs_journey_status', ['journey_id', 'status', 'step_id'], unique=False)
        batch_op.create_index('ix_journey_runs_one_active', ['journey_id', 'customer_id'], unique=True,
            sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.create_table('journey_step_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('journey_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('due_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('executed_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_step_log')),
    sa.UniqueConstraint('run_id', 'seq', name=op.f('uq_journey_step_log_run_id_seq'))
    )
    with op.batch_alter_table('journey_step_log', schema=None) as batch_op:
        batch_op.create_index('ix_journey_step_log_journey_step', ['journey_id', 'step_id', 'outcome'], unique=False)

    op.create_table('staff_tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('assignee_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=False),
    sa.Column('script', sa.Text(), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('due_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('remind_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('completed_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_by', sa.String(length=200), nullable=True),
    sa.Column('journey_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('step_id', sa.String(length=64), nullable=True),
    sa.Column('cause_key', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_tasks')),
    sa.UniqueConstraint('workspace_id', 'cause_key', name=op.f('uq_staff_tasks_workspace_id_cause_key'))
    )
    with op.batch_alter_table('staff_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_staff_tasks_customer', ['workspace_id', 'customer_id'], unique=False)
        batch_op.create_index('ix_staff_tasks_inbox', ['workspace_id', 'assignee_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_staff_tasks_remind', ['status', 'remind_at'], unique=False)

    op.create_table('consumption_cycles',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('cycle_days', sa.Integer(), nullable=False),
    sa.Column('updated_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
        name=op.f('fk_consumption_cycles_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consumption_cycles')),
    sa.UniqueConstraint('workspace_id', 'scope', 'key', name=op.f('uq_consumption_cycles_workspace_id_scope_key'))
    )
    op.create_table('journeys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('draft', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('published_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('template_key', sa.String(length=50), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_journeys_workspace_id_workspaces'),
        ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journeys')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_journeys_workspace_id_name'))
    )
    with op.batch_alter_table('journeys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journeys_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('journey_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('journey_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
        nullable=False),
    sa.Column('published_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['journey_id'], ['journeys.id'], name=op.f('fk_journey_versions_journey_id_journeys'),
        ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_versions')),
    sa.UniqueConstraint('journey_id', 'number', name=op.f('uq_journey_versions_journey_id_number'))
    )


def downgrade() -> None:
    op.drop_table('journey_versions')
    with op.batch_alter_table('journeys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journeys_workspace_id'))
    op.drop_table('journeys')
    op.drop_table('consumption_cycles')
    with op.batch_alter_table('staff_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_tasks_remind')
        batch_op.drop_index('ix_staff_tasks_inbox')
        batch_op.drop_index('ix_staff_tasks_customer')
    op.drop_table('staff_tasks')
    with op.batch_alter_table('journey_step_log', schema=None) as batch_op:
        batch_op.drop_index('ix_journey_step_log_journey_step')
    op.drop_table('journey_step_log')
    with op.batch_alter_table('journey_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_journey_runs_one_active', sqlite_where=sa.text("status = 'active'"),
                            postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_index('ix_journey_runs_journey_status')
        batch_op.drop_index('ix_journey_runs_due', sqlite_where=sa.text("status = 'active'"),
                            postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_index('ix_journey_runs_customer')
    op.drop_table('journey_runs')
