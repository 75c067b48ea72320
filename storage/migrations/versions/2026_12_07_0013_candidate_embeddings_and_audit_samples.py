"""Candidate embeddings and recall-audit samples.

``embedding``: the candidate's multilingual sentence embedding (512 float16, 1 KiB), computed once in
the crawl's CPU stages and read by re-ranking and near-duplicate checks. ``audit_sample``: a filtered
candidate a crawl put into the queue at random, so curators' decisions on it estimate the recall of
auto-exclusion.

SQLite: plain ALTER TABLE (no batch rebuild), which keeps the indexes and triggers of 0007.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:59:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN on both dialects: a batch table rebuild on SQLite would drop the queue indexes'
    # DESC order and the full-text triggers of 0007
    op.add_column('candidates', sa.Column('embedding', sa.LargeBinary(), nullable=True))
    op.add_column('candidates', sa.Column('audit_sample', sa.Boolean(), server_default=sa.text('false'),
                                          nullable=False))


def downgrade() -> None:
    # SQLite >= 3.35 drops a column in place (no rebuild, see upgrade)
    op.execute('ALTER TABLE candidates DROP COLUMN audit_sample')
    op.execute('ALTER TABLE candidates DROP COLUMN embedding')
