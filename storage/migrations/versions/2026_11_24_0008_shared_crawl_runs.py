"""Shared crawl runs: several distributed workers join one run through its crawl key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 12:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('crawl_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crawl_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('crawl_runs', schema=None) as batch_op:
        batch_op.drop_column('crawl_key')
