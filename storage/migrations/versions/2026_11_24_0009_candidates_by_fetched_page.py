"""Candidates by fetched page: an unchanged page touches its records, a re-parsed one marks missing ones gone.

Both looked the page's records up among every candidate of the source, once per page, so an unchanged
re-crawl cost grew with the square of the source's size.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 20:30:00
"""

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.create_index('ix_candidates_source_fetched_url', ['source_id', 'fetched_url'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_candidates_source_fetched_url')
