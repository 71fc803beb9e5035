"""Refunds: money the gateway captured that bought no booking, one per provider payment

A capture refused because its payment is no longer PENDING requests a refund
of that provider payment in the same transaction (SPEC §1). The unique
provider_payment_id makes it one, whatever path the capture came by.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('refunds',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('transaction_id', sa.String(length=15), nullable=False),
    sa.Column('provider_payment_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider_refund_id', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('REQUESTED', 'SUCCEEDED', 'FAILED')", name=op.f('ck_refunds_status_valid')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_refunds_amount_not_negative')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_refunds_attempts_not_negative')),
    sa.ForeignKeyConstraint(['transaction_id'], ['payments.transaction_id'], name=op.f('fk_refunds_transaction_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('provider_payment_id', name=op.f('uq_refunds_provider_payment_id'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index('ix_refunds_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_transaction_id'), ['transaction_id'], unique=False)



def downgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_transaction_id'))
        batch_op.drop_index('ix_refunds_status_next_attempt_at')

    op.drop_table('refunds')
