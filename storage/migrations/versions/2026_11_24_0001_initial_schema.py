"""Initial schema: sources, crawl runs, fetched pages, harvest windows, candidates, decisions, users, CHM submissions.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 08:15:51.648000
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sources',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('crawl_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('replay', sa.Boolean(), nullable=False),
    sa.Column('finish_reason', sa.String(length=100), nullable=True),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_crawl_runs_source_id_sources')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crawl_runs'))
    )
    with op.batch_alter_table('crawl_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crawl_runs_source_id'), ['source_id'], unique=False)
        batch_op.create_index('uq_crawl_runs_one_running_per_source', ['source_id'], unique=True, sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))

    op.create_table('candidates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('record_key', sa.String(length=300), nullable=True),
    sa.Column('fetched_url', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('organisations', sa.JSON(), nullable=False),
    sa.Column('countries', sa.JSON(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('start_date', sa.String(length=20), nullable=True),
    sa.Column('end_date', sa.String(length=20), nullable=True),
    sa.Column('published', sa.String(length=40), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('provenance', sa.JSON(), nullable=False),
    sa.Column('language', sa.String(length=10), nullable=True),
    sa.Column('language_prob', sa.Float(), nullable=True),
    sa.Column('criteria', sa.JSON(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('classifier_version', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('gone_at_source', sa.Boolean(), nullable=False),
    sa.Column('gone_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('changed_since_review', sa.Boolean(), nullable=False),
    sa.Column('record_hash', sa.String(length=64), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=True),
    sa.Column('duplicate_cluster', sa.String(length=64), nullable=True),
    sa.Column('curator_edits', sa.JSON(), nullable=False),
    sa.Column('first_run_id', sa.Integer(), nullable=True),
    sa.Column('last_run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['first_run_id'], ['crawl_runs.id'], name=op.f('fk_candidates_first_run_id_crawl_runs')),
    sa.ForeignKeyConstraint(['last_run_id'], ['crawl_runs.id'], name=op.f('fk_candidates_last_run_id_crawl_runs')),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_candidates_source_id_sources')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_candidates')),
    sa.UniqueConstraint('source_id', 'url', name=op.f('uq_candidates_source_id_url'))
    )
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_candidates_duplicate_cluster'), ['duplicate_cluster'], unique=False)
        batch_op.create_index(batch_op.f('ix_candidates_source_id'), ['source_id'], unique=False)
        batch_op.create_index('ix_candidates_status_score', ['status', 'score'], unique=False)
        batch_op.create_index(batch_op.f('ix_candidates_text_hash'), ['text_hash'], unique=False)

    op.create_table('fetched_pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('canonical_url', sa.Text(), nullable=False),
    sa.Column('etag', sa.String(length=300), nullable=True),
    sa.Column('last_modified', sa.String(length=100), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('last_run_id', sa.Integer(), nullable=True),
    sa.Column('sitemap_lastmod', sa.String(length=40), nullable=True),
    sa.Column('snapshot_ref', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['last_run_id'], ['crawl_runs.id'], name=op.f('fk_fetched_pages_last_run_id_crawl_runs')),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_fetched_pages_source_id_sources')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fetched_pages')),
    sa.UniqueConstraint('source_id', 'url', name=op.f('uq_fetched_pages_source_id_url'))
    )
    op.create_table('harvest_windows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('window_from', sa.String(length=40), nullable=False),
    sa.Column('window_until', sa.String(length=40), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['crawl_runs.id'], name=op.f('fk_harvest_windows_run_id_crawl_runs')),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_harvest_windows_source_id_sources')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_harvest_windows')),
    sa.UniqueConstraint('source_id', 'window_from', 'window_until', name=op.f('uq_harvest_windows_source_id_window_from_window_until'))
    )
    with op.batch_alter_table('harvest_windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_harvest_windows_source_id'), ['source_id'], unique=False)

    op.create_table('chm_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('candidate_id', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.String(length=100), nullable=False),
    sa.Column('schema', sa.String(length=50), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('workflow_id', sa.String(length=100), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidates.id'], name=op.f('fk_chm_submissions_candidate_id_candidates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chm_submissions')),
    sa.UniqueConstraint('identifier', name=op.f('uq_chm_submissions_identifier'))
    )
    with op.batch_alter_table('chm_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chm_submissions_candidate_id'), ['candidate_id'], unique=False)

    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('candidate_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('reason_code', sa.String(length=50), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('field_diff', sa.JSON(), nullable=False),
    sa.Column('model_version', sa.String(length=40), nullable=True),
    sa.Column('score_shown', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidates.id'], name=op.f('fk_decisions_candidate_id_candidates')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_decisions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_candidate_id'), ['candidate_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_candidate_id'))

    op.drop_table('decisions')
    with op.batch_alter_table('chm_submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chm_submissions_candidate_id'))

    op.drop_table('chm_submissions')
    with op.batch_alter_table('harvest_windows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_harvest_windows_source_id'))

    op.drop_table('harvest_windows')
    op.drop_table('fetched_pages')
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_candidates_text_hash'))
        batch_op.drop_index('ix_candidates_status_score')
        batch_op.drop_index(batch_op.f('ix_candidates_source_id'))
        batch_op.drop_index(batch_op.f('ix_candidates_duplicate_cluster'))

    op.drop_table('candidates')
    with op.batch_alter_table('crawl_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_crawl_runs_one_running_per_source', sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_index(batch_op.f('ix_crawl_runs_source_id'))

    op.drop_table('crawl_runs')
    op.drop_table('users')
    op.drop_table('sources')
