"""Refunds count their admin retries: each retry is sent to the gateway under a key of its own

A refund the gateway failed is adopted as FAILED; an admin's retry sends a new
gateway refund, which must not be mistaken for the failed one: the gateway key
is the refund_id, suffixed by the number of retries after the first
(persistence/refunds.py gateway_key).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retries', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_column('retries')
