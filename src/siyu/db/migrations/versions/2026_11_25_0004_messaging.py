"""messaging: outbox, attempts and events, templates, broadcasts, contact preferences, usage
inventory, platform quotas (with the WeCom default), holdout, sandbox inbox, settings

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25 21:00:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import siyu.db.base

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TS = siyu.db.base.UTCDateTime(timezone=True)
DUE = sa.text("state IN ('queued', 'deferred')")
SENDING = sa.text("state = 'sending'")
PROVIDER = sa.text("provider_message_id IS NOT NULL")

# Platform quotas are data: the defaults every workspace gets until it adds its own row.
DEFAULT_QUOTAS = [
    {"workspace_id": None, "channel": "wecom", "name": "group_send_per_customer_day", "scope": "customer",
     "period": "day", "max_count": 1, "purposes": ["marketing", "service"], "active": True,
     "note": "WeCom: each customer receives at most one group-send (群发) message a day, "
             "from the enterprise or a staff member"},
]


def upgrade() -> None:
    op.create_table('broadcast_audience',
    sa.Column('broadcast_id', ID, nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.PrimaryKeyConstraint('broadcast_id', 'customer_id', name=op.f('pk_broadcast_audience'))
    )
    op.create_table('broadcasts',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('audience', JSON, nullable=False),
    sa.Column('variants', JSON, nullable=False),
    sa.Column('context', JSON, nullable=False),
    sa.Column('send_at', TS, nullable=True),
    sa.Column('rate_per_minute', sa.Integer(), nullable=True),
    sa.Column('droppable', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('audience_size', sa.Integer(), nullable=False),
    sa.Column('filled_count', sa.Integer(), nullable=False),
    sa.Column('fill_cursor', ID, nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('started_at', TS, nullable=True),
    sa.Column('finished_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts'))
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.create_index('ix_broadcasts_ws', ['workspace_id', 'id'], unique=False)

    op.create_table('contact_preferences',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('updated_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_preferences')),
    sa.UniqueConstraint('workspace_id', 'customer_id', 'channel', 'purpose',
                        name=op.f('uq_contact_preferences_workspace_id_customer_id_channel_purpose'))
    )
    op.create_table('contact_usage',
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=False),
    sa.Column('limit_key', sa.String(length=100), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('workspace_id', 'subject', 'limit_key', 'period_start', name=op.f('pk_contact_usage'))
    )
    op.create_table('holdout_members',
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('draw', sa.String(length=64), nullable=False),
    sa.Column('assigned_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('workspace_id', 'customer_id', name=op.f('pk_holdout_members'))
    )
    op.create_table('message_attempts',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('outbox_id', ID, nullable=False),
    sa.Column('attempt_id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('error_code', sa.String(length=100), nullable=True),
    sa.Column('error_message', sa.String(length=1000), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_attempts'))
    )
    with op.batch_alter_table('message_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_attempts_outbox_id'), ['outbox_id'], unique=False)

    op.create_table('message_events',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('outbox_id', ID, nullable=False),
    sa.Column('type', sa.String(length=30), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=True),
    sa.Column('details', JSON, nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_events'))
    )
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_events_outbox_id'), ['outbox_id'], unique=False)

    op.create_table('message_templates',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('payload', JSON, nullable=False),
    sa.Column('variables', JSON, nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.Column('archived_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_templates')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_message_templates_workspace_id_name'))
    )
    op.create_table('messaging_settings',
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('policy', JSON, nullable=False),
    sa.Column('channels', JSON, nullable=False),
    sa.Column('signing_secret', sa.String(length=64), nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('workspace_id', name=op.f('pk_messaging_settings'))
    )
    op.create_table('one_time_consents',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('granted_at', TS, nullable=False),
    sa.Column('outbox_id', ID, nullable=True),
    sa.Column('used_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_one_time_consents'))
    )
    with op.batch_alter_table('one_time_consents', schema=None) as batch_op:
        batch_op.create_index('ix_one_time_consents_customer', ['workspace_id', 'customer_id', 'channel'], unique=False)

    op.create_table('outbox',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('template_id', ID, nullable=True),
    sa.Column('broadcast_id', ID, nullable=True),
    sa.Column('variant', sa.String(length=20), nullable=True),
    sa.Column('staff_id', sa.String(length=100), nullable=True),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.Column('content', JSON, nullable=False),
    sa.Column('droppable', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('due_at', TS, nullable=False),
    sa.Column('reservations', JSON, nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.String(length=36), nullable=True),
    sa.Column('locked_until', TS, nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('sent_at', TS, nullable=True),
    sa.Column('delivered_at', TS, nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('click_count', sa.Integer(), nullable=False),
    sa.Column('clicked_at', TS, nullable=True),
    sa.Column('replied_at', TS, nullable=True),
    sa.Column('engaged_at', TS, nullable=True),
    sa.Column('attributed_order_id', sa.String(length=200), nullable=True),
    sa.Column('attributed_fen', ID, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('workspace_id', 'idempotency_key', name=op.f('uq_outbox_workspace_id_idempotency_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_broadcast', ['broadcast_id', 'state'], unique=False)
        batch_op.create_index('ix_outbox_customer', ['workspace_id', 'customer_id', 'id'], unique=False)
        batch_op.create_index('ix_outbox_due', ['due_at'], unique=False, sqlite_where=DUE, postgresql_where=DUE)
        batch_op.create_index('ix_outbox_sending', ['locked_until'], unique=False, sqlite_where=SENDING,
                              postgresql_where=SENDING)
        batch_op.create_index('ix_outbox_provider', ['workspace_id', 'provider_message_id'], unique=False,
                              sqlite_where=PROVIDER, postgresql_where=PROVIDER)

    op.create_table('platform_quotas',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=True),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scope', sa.String(length=12), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('max_count', sa.Integer(), nullable=False),
    sa.Column('purposes', JSON, nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_quotas'))
    )
    with op.batch_alter_table('platform_quotas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_quotas_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('sandbox_messages',
    sa.Column('id', ID, nullable=False),
    sa.Column('workspace_id', ID, nullable=False),
    sa.Column('outbox_id', ID, nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('customer_id', ID, nullable=False),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.Column('content', JSON, nullable=False),
    sa.Column('received_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_messages'))
    )
    with op.batch_alter_table('sandbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_sandbox_messages_key', ['workspace_id', 'idempotency_key'], unique=False)

    quotas = sa.table("platform_quotas", sa.column("workspace_id", sa.BigInteger()), sa.column("channel", sa.String()),
                      sa.column("name", sa.String()), sa.column("scope", sa.String()), sa.column("period", sa.String()),
                      sa.column("max_count", sa.Integer()), sa.column("purposes", JSON),
                      sa.column("active", sa.Boolean()), sa.column("note", sa.String()),
                      sa.column("created_at", siyu.db.base.UTCDateTime()))
    op.bulk_insert(quotas, [{**q, "created_at": datetime(2026, 11, 25, tzinfo=UTC)} for q in DEFAULT_QUOTAS])


def downgrade() -> None:
    with op.batch_alter_table('sandbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_sandbox_messages_key')

    op.drop_table('sandbox_messages')
    with op.batch_alter_table('platform_quotas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_platform_quotas_workspace_id'))

    op.drop_table('platform_quotas')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_provider', sqlite_where=PROVIDER, postgresql_where=PROVIDER)
        batch_op.drop_index('ix_outbox_sending', sqlite_where=SENDING, postgresql_where=SENDING)
        batch_op.drop_index('ix_outbox_due', sqlite_where=DUE, postgresql_where=DUE)
        batch_op.drop_index('ix_outbox_customer')
        batch_op.drop_index('ix_outbox_broadcast')

    op.drop_table('outbox')
    with op.batch_alter_table('one_time_consents', schema=None) as batch_op:
        batch_op.drop_index('ix_one_time_consents_customer')

    op.drop_table('one_time_consents')
    op.drop_table('messaging_settings')
    op.drop_table('message_templates')
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_events_outbox_id'))

    op.drop_table('message_events')
    with op.batch_alter_table('message_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_attempts_outbox_id'))

    op.drop_table('message_attempts')
    op.drop_table('holdout_members')
    op.drop_table('contact_usage')
    op.drop_table('contact_preferences')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_index('ix_broadcasts_ws')

    op.drop_table('broadcasts')
    op.drop_table('broadcast_audience')
