"""CHM feed: per-realm submission state (payload, attempts, errors, pending remote step) and curator choices.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 12:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chm_submissions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_chm_submissions_identifier', type_='unique')
        batch_op.add_column(sa.Column('realm', sa.String(length=40), server_default='', nullable=False))
        batch_op.add_column(sa.Column('api_base', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('payload', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('pushed_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('document_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('errors', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('permanent_error', sa.Boolean(), server_default=sa.text('false'),
                                      nullable=False))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('pending_step', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('requested_action', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_chm_submissions_candidate_id_realm'),
                                          ['candidate_id', 'realm'])
        batch_op.create_unique_constraint(batch_op.f('uq_chm_submissions_identifier_realm'), ['identifier', 'realm'])

    op.create_table('chm_curations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('candidate_id', sa.Integer(), nullable=False),
    sa.Column('schema', sa.String(length=50), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidates.id'], name=op.f('fk_chm_curations_candidate_id_candidates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chm_curations')),
    sa.UniqueConstraint('candidate_id', name=op.f('uq_chm_curations_candidate_id'))
    )


def downgrade() -> None:
    op.drop_table('chm_curations')
    with op.batch_alter_table('chm_submissions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_chm_submissions_identifier_realm'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_chm_submissions_candidate_id_realm'), type_='unique')
        for column in ('last_attempt_at', 'requested_action', 'pending_step', 'attempts', 'permanent_error',
                       'errors', 'document_id', 'pushed_hash', 'payload', 'api_base', 'realm'):
            batch_op.drop_column(column)
        batch_op.create_unique_constraint('uq_chm_submissions_identifier', ['identifier'])
