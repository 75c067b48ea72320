"""Review app: an audit of account changes, login attempts indexed by client for throttling, and curators'
short leases on the candidates they open, and blind second reviews of sampled decisions.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 23:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_account_events_actor_id_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_account_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_events'))
    )
    with op.batch_alter_table('account_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_events_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempts_client_at', ['client', 'at'], unique=False)
    op.create_table('candidate_claims',
    sa.Column('candidate_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidates.id'], name=op.f('fk_candidate_claims_candidate_id_candidates')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_candidate_claims_user_id_users')),
    sa.PrimaryKeyConstraint('candidate_id', name=op.f('pk_candidate_claims'))
    )

    op.create_table('second_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('candidate_id', sa.Integer(), nullable=False),
    sa.Column('first_user_id', sa.Integer(), nullable=False),
    sa.Column('first_status', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('second_status', sa.String(length=20), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['candidate_id'], ['candidates.id'], name=op.f('fk_second_reviews_candidate_id_candidates')),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_second_reviews_decision_id_decisions')),
    sa.ForeignKeyConstraint(['first_user_id'], ['users.id'], name=op.f('fk_second_reviews_first_user_id_users')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_second_reviews_reviewer_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_second_reviews')),
    sa.UniqueConstraint('decision_id', name=op.f('uq_second_reviews_decision_id'))
    )
    with op.batch_alter_table('second_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_second_reviews_candidate_id'), ['candidate_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('second_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_second_reviews_candidate_id'))
    op.drop_table('second_reviews')
    op.drop_table('candidate_claims')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_client_at')
    with op.batch_alter_table('account_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_events_user_id'))
    op.drop_table('account_events')
