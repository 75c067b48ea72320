"""Candidate embeddings and recall-audit samples.

``embedding``: the candidate's multilingual sentence embedding (512 float16, 1 KiB), computed once in
the crawl's CPU stages and read by re-ranking and near-duplicate checks. ``audit_sample``: a filtered
candidate a crawl put into the queue at random, so curators' decisions on it estimate the recall of
auto-exclusion.

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-07 23:59:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('embedding', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('audit_sample', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_column('audit_sample')
        batch_op.drop_column('embedding')
