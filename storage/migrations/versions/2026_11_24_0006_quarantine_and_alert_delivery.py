"""Over-harvest quarantine on crawl runs; alert delivery and acknowledgement.

``crawl_runs.quarantine`` is null for a normal run, else ``held``, ``released`` or ``discarded``;
``quarantine_details`` says why and who decided. ``alerts`` remember when they were sent (once) and
who acknowledged or resolved them by hand.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 12:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('crawl_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quarantine', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('quarantine_details', sa.JSON(), nullable=True))
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('notify_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('acknowledged_by')
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('notify_error')
        batch_op.drop_column('notified_at')
    with op.batch_alter_table('crawl_runs', schema=None) as batch_op:
        batch_op.drop_column('quarantine_details')
        batch_op.drop_column('quarantine')
