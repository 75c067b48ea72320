"""Candidates keyed by the record's identity at the partner, not by its URL.

OAI records sharing their first link, Atom entries without a link and JSON Feed items without a ``url``
collapsed into one candidate under (source_id, url). The new ``identity_key`` is ``key:<record key>``
where the partner names its records, else ``url:<canonical URL>`` (harvester.dedupe.candidate_key);
existing rows get the same key from their stored record_key or URL, so re-crawls find them. Where two
old rows carry the same record key (a record whose URL changed), the oldest keeps it and the others
keep their URL key: nothing is merged or lost. The URL stays as a field, indexed.

SQLite re-creates the table to drop the old unique constraint: the FTS5 triggers and the DESC queue
indexes of migration 0007 are dropped first and re-created (and the FTS index rebuilt) afterwards.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-07 23:55:00
"""

from alembic import op
import sqlalchemy as sa

from storage.search import create_search_structures, drop_search_structures


revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None

BATCH = 1000


def _derive_keys(bind: sa.engine.Connection) -> None:
    """``key:``/``url:`` keys for the rows already stored, oldest row first, unique per source."""
    rows = bind.execute(sa.text("SELECT id, source_id, url, record_key FROM candidates ORDER BY id")).all()
    taken: set[tuple[str, str]] = set()
    updates: list[dict[str, object]] = []
    for row_id, source_id, url, record_key in rows:
        key = (record_key or "").strip()
        identity = f"key:{key}" if key else f"url:{url}"
        if (source_id, identity) in taken:
            identity = f"url:{url}"  # the URL was unique per source before this migration
        taken.add((source_id, identity))
        updates.append({"id": row_id, "identity_key": identity})
    statement = sa.text("UPDATE candidates SET identity_key = :identity_key WHERE id = :id")
    for start in range(0, len(updates), BATCH):
        bind.execute(statement, updates[start:start + BATCH])


def _queue_indexes(bind: sa.engine.Connection, create: bool) -> None:
    if create:
        bind.execute(sa.text("CREATE INDEX ix_candidates_queue ON candidates (status, score DESC, id)"))
        bind.execute(sa.text("CREATE INDEX ix_candidates_rank ON candidates (score DESC, id)"))
    else:
        bind.execute(sa.text("DROP INDEX IF EXISTS ix_candidates_queue"))
        bind.execute(sa.text("DROP INDEX IF EXISTS ix_candidates_rank"))


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity_key', sa.Text(), nullable=True))
    _derive_keys(bind)
    if sqlite:
        drop_search_structures(bind)
        _queue_indexes(bind, create=False)
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.alter_column('identity_key', existing_type=sa.Text(), nullable=False)
        batch_op.drop_constraint('uq_candidates_source_id_url', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_candidates_identity_key_source_id'),
                                          ['identity_key', 'source_id'])
        batch_op.create_index('ix_candidates_url', ['url'], unique=False)
    if sqlite:
        _queue_indexes(bind, create=True)
        create_search_structures(bind)


def downgrade() -> None:
    """Back to one candidate per URL: fails (unique constraint) while two records share a URL."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        drop_search_structures(bind)
        _queue_indexes(bind, create=False)
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_candidates_url')
        batch_op.drop_constraint('uq_candidates_identity_key_source_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_candidates_source_id_url'), ['source_id', 'url'])
        batch_op.drop_column('identity_key')
    if sqlite:
        _queue_indexes(bind, create=True)
        create_search_structures(bind)
