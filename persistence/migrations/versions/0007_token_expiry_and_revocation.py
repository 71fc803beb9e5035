"""Bearer tokens expire and can be revoked: api_tokens.expires_at and api_tokens.revoked_at

A token works until `expires_at` (TOKEN_TTL_MINUTES after it was issued) and
is refused once `revoked_at` is set (a logout); the row is kept either way.

Tokens issued before this revision never expired. They get the default
lifetime, 1440 minutes after they were issued, written out here rather than
read from the configuration so the migration does the same wherever it runs:
those older than a day stop working when it runs, and their users log in
again. A downgrade drops both columns, and with them every revocation: the
tokens logged out since would work again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""
from datetime import timedelta

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

LEGACY_TTL_MINUTES = 1440


def _give_existing_tokens_the_default_lifetime():
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute(sa.text(f"UPDATE api_tokens SET expires_at = created_at + interval '{LEGACY_TTL_MINUTES} minutes'"))
        return
    # SQLite has no interval arithmetic on the stored text that keeps microseconds: done row by row.
    tokens = sa.table('api_tokens', sa.column('token_hash', sa.String), sa.column('created_at', sa.DateTime()),
                      sa.column('expires_at', sa.DateTime()))
    rows = bind.execute(sa.select(tokens.c.token_hash, tokens.c.created_at)).all()
    for token_hash, created_at in rows:
        bind.execute(tokens.update().where(tokens.c.token_hash == token_hash)
                     .values(expires_at=created_at + timedelta(minutes=LEGACY_TTL_MINUTES)))


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
    _give_existing_tokens_the_default_lifetime()
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('expires_at', existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('expires_at')
