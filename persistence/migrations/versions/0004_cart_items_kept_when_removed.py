"""Cart items are kept when removed: a removed_at column, and one live line per service

Rows are never hard-deleted (SPEC §1). Removing an item from a cart used to
delete its row; it now sets removed_at. The unique (cart_id, service_id)
constraint becomes a partial unique index over live lines only, so a service
removed and added again gets a new line while the removed one stays.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must keep meaning what it meant when it was written.
LIVE_ITEMS = sa.text("removed_at IS NULL")


def upgrade():
    with op.batch_alter_table('cart_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint('uq_cart_items_cart_id', type_='unique')
        batch_op.create_index('uq_cart_items_live_service', ['cart_id', 'service_id'], unique=True,
                              postgresql_where=LIVE_ITEMS, sqlite_where=LIVE_ITEMS)


def downgrade():
    # Removed lines would break the old constraint (and mean nothing to the old code): they go.
    op.execute("DELETE FROM cart_items WHERE removed_at IS NOT NULL")
    with op.batch_alter_table('cart_items', schema=None) as batch_op:
        batch_op.drop_index('uq_cart_items_live_service')
        batch_op.create_unique_constraint('uq_cart_items_cart_id', ['cart_id', 'service_id'])
        batch_op.drop_column('removed_at')
