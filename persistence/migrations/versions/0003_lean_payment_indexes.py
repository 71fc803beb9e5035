"""Leaner payment indexes: the (status, created_at) index holds open payments only; no user_id index

Every payment write (a confirm, and the sweep's thousands of cancellations a
second) pays for every index of the table. No query finds payments by
user_id alone, and only open payments are ever looked up by status and age.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must keep meaning what it meant when it was written.
OPEN_PAYMENTS = sa.text("status IN ('INITIATED', 'PENDING')")


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_user_id')
        batch_op.drop_index('ix_payments_status_created_at')
        batch_op.create_index('ix_payments_status_created_at', ['status', 'created_at'], unique=False,
                              postgresql_where=OPEN_PAYMENTS, sqlite_where=OPEN_PAYMENTS)


def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_status_created_at')
        batch_op.create_index('ix_payments_status_created_at', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_payments_user_id', ['user_id'], unique=False)
