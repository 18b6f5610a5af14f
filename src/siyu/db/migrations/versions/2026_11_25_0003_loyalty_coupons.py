"""loyalty and coupons: programme, tiers, members, points ledger and lots, activity, tier history,
benefit grants and runs; coupon templates, coupons and redemptions

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25 21:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import siyu.db.base

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('loyalty_activities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('cause_key', sa.String(length=300), nullable=False),
    sa.Column('order_id', sa.String(length=200), nullable=True),
    sa.Column('occurred_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('local_day', sa.Integer(), nullable=False),
    sa.Column('spend_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('growth', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('capped', sa.Boolean(), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_activities')),
    sa.UniqueConstraint('workspace_id', 'cause_key', name=op.f('uq_loyalty_activities_workspace_id_cause_key'))
    )
    with op.batch_alter_table('loyalty_activities', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_activities_member_time', ['member_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_loyalty_activities_ws_order', ['workspace_id', 'order_id'], unique=False)

    op.create_table('loyalty_benefit_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('benefit', sa.String(length=20), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('coupons', sa.Integer(), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_benefit_grants')),
    sa.UniqueConstraint('workspace_id', 'member_id', 'benefit', 'period', name=op.f('uq_loyalty_benefit_grants_workspace_id_member_id_benefit_period'))
    )
    op.create_table('loyalty_benefit_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('cursor_member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('members_granted', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('coupons_issued', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('points_awarded', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('started_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_benefit_runs')),
    sa.UniqueConstraint('workspace_id', 'period', name=op.f('uq_loyalty_benefit_runs_workspace_id_period'))
    )
    op.create_table('loyalty_points_ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pending', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('debt', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cause_key', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('order_id', sa.String(length=200), nullable=True),
    sa.Column('amount_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('occurred_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_points_ledger')),
    sa.UniqueConstraint('workspace_id', 'cause_key', name=op.f('uq_loyalty_points_ledger_workspace_id_cause_key'))
    )
    with op.batch_alter_table('loyalty_points_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_points_ledger_member', ['member_id', 'id'], unique=False)
        batch_op.create_index('ix_loyalty_points_ledger_ws_order', ['workspace_id', 'order_id'], unique=False)

    op.create_table('loyalty_points_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.String(length=200), nullable=True),
    sa.Column('points', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('remaining', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('available_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_points_lots')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_loyalty_points_lots_entry_id'))
    )
    with op.batch_alter_table('loyalty_points_lots', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_points_lots_expiry', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_loyalty_points_lots_member_fifo', ['member_id', 'status', 'expires_at', 'id'], unique=False)
        batch_op.create_index('ix_loyalty_points_lots_release', ['status', 'available_at'], unique=False)

    op.create_table('loyalty_tier_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_tier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('to_tier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('metric_value', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cause_key', sa.String(length=300), nullable=False),
    sa.Column('valid_until', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('changed_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_tier_changes')),
    sa.UniqueConstraint('workspace_id', 'cause_key', name=op.f('uq_loyalty_tier_changes_workspace_id_cause_key'))
    )
    with op.batch_alter_table('loyalty_tier_changes', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_tier_changes_member', ['member_id', 'id'], unique=False)

    op.create_table('coupon_templates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('amount_off_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('threshold_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('percent_off', sa.Integer(), nullable=True),
    sa.Column('max_discount_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('gift_name', sa.String(length=200), nullable=True),
    sa.Column('valid_from', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('valid_until', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('valid_days', sa.Integer(), nullable=True),
    sa.Column('total_stock', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('issued_count', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('per_customer_limit', sa.Integer(), nullable=True),
    sa.Column('categories', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('skus', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('points_cost', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('restore_on_refund', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_coupon_templates_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_templates'))
    )
    with op.batch_alter_table('coupon_templates', schema=None) as batch_op:
        batch_op.create_index('ix_coupon_templates_ws_status', ['workspace_id', 'status'], unique=False)

    op.create_table('loyalty_programmes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('points_per_yuan', sa.Integer(), nullable=False),
    sa.Column('return_window_days', sa.Integer(), nullable=False),
    sa.Column('points_expiry', sa.String(length=20), nullable=False),
    sa.Column('points_expiry_months', sa.Integer(), nullable=True),
    sa.Column('allow_negative_balance', sa.Boolean(), nullable=False),
    sa.Column('check_in_points', sa.Integer(), nullable=False),
    sa.Column('check_in_daily_cap', sa.Integer(), nullable=False),
    sa.Column('check_in_monthly_cap', sa.Integer(), nullable=False),
    sa.Column('share_points', sa.Integer(), nullable=False),
    sa.Column('share_daily_cap', sa.Integer(), nullable=False),
    sa.Column('share_monthly_cap', sa.Integer(), nullable=False),
    sa.Column('growth_per_yuan', sa.Integer(), nullable=False),
    sa.Column('growth_per_check_in', sa.Integer(), nullable=False),
    sa.Column('growth_per_share', sa.Integer(), nullable=False),
    sa.Column('tier_metric', sa.String(length=20), nullable=False),
    sa.Column('tier_window', sa.String(length=20), nullable=False),
    sa.Column('tier_window_months', sa.Integer(), nullable=True),
    sa.Column('benefit_day', sa.Integer(), nullable=False),
    sa.Column('member_day', sa.Integer(), nullable=True),
    sa.Column('deduction_points_per_yuan', sa.Integer(), nullable=False),
    sa.Column('max_deduction_percent', sa.Integer(), nullable=False),
    sa.Column('member_number_prefix', sa.String(length=8), nullable=False),
    sa.Column('member_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_loyalty_programmes_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_programmes')),
    sa.UniqueConstraint('workspace_id', name=op.f('uq_loyalty_programmes_workspace_id'))
    )
    op.create_table('loyalty_tiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('validity_months', sa.Integer(), nullable=True),
    sa.Column('points_multiplier_percent', sa.Integer(), nullable=False),
    sa.Column('member_day_multiplier_percent', sa.Integer(), nullable=False),
    sa.Column('shop_discount_percent', sa.Integer(), nullable=False),
    sa.Column('monthly_coupon_template_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('monthly_coupon_quantity', sa.Integer(), nullable=False),
    sa.Column('birthday_coupon_template_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('birthday_points', sa.Integer(), nullable=False),
    sa.Column('dedicated_service', sa.Boolean(), nullable=False),
    sa.Column('created_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_loyalty_tiers_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_tiers')),
    sa.UniqueConstraint('workspace_id', 'code', name=op.f('uq_loyalty_tiers_workspace_id_code'))
    )
    op.create_table('coupons',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('template_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('cause_key', sa.String(length=300), nullable=False),
    sa.Column('issued_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_from', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_until', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('redeemed_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['template_id'], ['coupon_templates.id'], name=op.f('fk_coupons_template_id_coupon_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code')),
    sa.UniqueConstraint('workspace_id', 'cause_key', name=op.f('uq_coupons_workspace_id_cause_key'))
    )
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.create_index('ix_coupons_state_valid_until', ['state', 'valid_until'], unique=False)
        batch_op.create_index('ix_coupons_template_customer', ['template_id', 'customer_id'], unique=False)
        batch_op.create_index('ix_coupons_ws_customer_state', ['workspace_id', 'customer_id', 'state'], unique=False)

    op.create_table('loyalty_members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_number', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('tier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tier_reached_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tier_valid_until', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('points_balance', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('points_pending', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('points_debt', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('consent_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consent_channel', sa.String(length=50), nullable=False),
    sa.Column('consent_text_version', sa.String(length=50), nullable=False),
    sa.Column('dedicated_staff_id', sa.String(length=100), nullable=True),
    sa.Column('enrolled_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('left_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('merged_into_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('updated_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tier_id'], ['loyalty_tiers.id'], name=op.f('fk_loyalty_members_tier_id_loyalty_tiers')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_loyalty_members_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_members')),
    sa.UniqueConstraint('workspace_id', 'customer_id', name=op.f('uq_loyalty_members_workspace_id_customer_id')),
    sa.UniqueConstraint('workspace_id', 'member_number', name=op.f('uq_loyalty_members_workspace_id_member_number'))
    )
    with op.batch_alter_table('loyalty_members', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_members_valid_until', ['tier_valid_until'], unique=False)
        batch_op.create_index('ix_loyalty_members_ws_status_id', ['workspace_id', 'status', 'id'], unique=False)

    op.create_table('coupon_redemptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('coupon_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('template_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.String(length=200), nullable=False),
    sa.Column('order_amount_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('discount_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('redeemed_at', siyu.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('restored_at', siyu.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_coupon_redemptions_coupon_id_coupons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_redemptions')),
    sa.UniqueConstraint('workspace_id', 'coupon_id', 'order_id', name=op.f('uq_coupon_redemptions_workspace_id_coupon_id_order_id'))
    )
    with op.batch_alter_table('coupon_redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_coupon_redemptions_template', ['template_id', 'restored_at'], unique=False)
        batch_op.create_index('ix_coupon_redemptions_ws_order', ['workspace_id', 'order_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('coupon_redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_coupon_redemptions_ws_order')
        batch_op.drop_index('ix_coupon_redemptions_template')

    op.drop_table('coupon_redemptions')
    with op.batch_alter_table('loyalty_members', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_members_ws_status_id')
        batch_op.drop_index('ix_loyalty_members_valid_until')

    op.drop_table('loyalty_members')
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_coupons_ws_customer_state')
        batch_op.drop_index('ix_coupons_template_customer')
        batch_op.drop_index('ix_coupons_state_valid_until')

    op.drop_table('coupons')
    op.drop_table('loyalty_tiers')
    op.drop_table('loyalty_programmes')
    with op.batch_alter_table('coupon_templates', schema=None) as batch_op:
        batch_op.drop_index('ix_coupon_templates_ws_status')

    op.drop_table('coupon_templates')
    with op.batch_alter_table('loyalty_tier_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_tier_changes_member')

    op.drop_table('loyalty_tier_changes')
    with op.batch_alter_table('loyalty_points_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_points_lots_release')
        batch_op.drop_index('ix_loyalty_points_lots_member_fifo')
        batch_op.drop_index('ix_loyalty_points_lots_expiry')

    op.drop_table('loyalty_points_lots')
    with op.batch_alter_table('loyalty_points_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_points_ledger_ws_order')
        batch_op.drop_index('ix_loyalty_points_ledger_member')

    op.drop_table('loyalty_points_ledger')
    op.drop_table('loyalty_benefit_runs')
    op.drop_table('loyalty_benefit_grants')
    with op.batch_alter_table('loyalty_activities', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_activities_ws_order')
        batch_op.drop_index('ix_loyalty_activities_member_time')

    op.drop_table('loyalty_activities')
