"""Full-text search and the keyset-pagination index of the review queue.

Written by hand: both are dialect-specific and left out of autogenerate (storage/migrations/env.py).
SQLite gets an external-content FTS5 table kept in sync by triggers, PostgreSQL a stored generated
tsvector column with a GIN index (storage/search.py); existing rows are indexed here. The queue index
(status, score DESC [NULLS LAST], id) matches the queue's order so the first page and every keyset
page are an index range scan; it replaces ix_candidates_status_score. ix_candidates_rank (score DESC
[NULLS LAST], id) does the same for the queue of any status and the API's default listing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 12:30:00
"""

from alembic import op
import sqlalchemy as sa

from storage.search import create_search_structures, drop_search_structures


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_candidates_status_score')
    nulls = " NULLS LAST" if bind.dialect.name == "postgresql" else ""  # SQLite sorts NULL first: DESC puts it last
    bind.execute(sa.text(f"CREATE INDEX ix_candidates_queue ON candidates (status, score DESC{nulls}, id)"))
    bind.execute(sa.text(f"CREATE INDEX ix_candidates_rank ON candidates (score DESC{nulls}, id)"))
    create_search_structures(bind)


def downgrade() -> None:
    bind = op.get_bind()
    drop_search_structures(bind)
    bind.execute(sa.text("DROP INDEX ix_candidates_rank"))
    bind.execute(sa.text("DROP INDEX ix_candidates_queue"))
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.create_index('ix_candidates_status_score', ['status', 'score'], unique=False)
