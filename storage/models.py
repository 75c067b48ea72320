"""SQLAlchemy 2.0 models. Alembic (``storage/migrations``) owns the schema."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, list[dict[str, Any]]: JSON}


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class CandidateStatus(StrEnum):
    PENDING = "pending"
    FILTERED = "filtered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    QUARANTINED = "quarantined"  # new in an over-harvesting run: out of the queue until an admin decides


class Role(StrEnum):
    CURATOR = "curator"
    ADMIN = "admin"


def _now_default() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_default()
    updated_at: Mapped[datetime] = _now_default()


class CrawlRun(Base):
    """One crawl of one source. At most one ``running`` row per source (partial unique index)."""

    __tablename__ = "crawl_runs"
    __table_args__ = (
        Index(
            "uq_crawl_runs_one_running_per_source",
            "source_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.RUNNING)
    started_at: Mapped[datetime] = _now_default()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    replay: Mapped[bool] = mapped_column(Boolean, default=False)
    finish_reason: Mapped[str | None] = mapped_column(String(100))
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Distributed mode: the shared crawl (Redis) this run belongs to; workers with the same key join the run.
    crawl_key: Mapped[str | None] = mapped_column(String(64))
    # Over-harvest quarantine (``harvester.health.quarantine``): null, or held / released / discarded, and why.
    quarantine: Mapped[str | None] = mapped_column(String(20))
    quarantine_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class FetchedPage(Base):
    """HTTP state of one fetched URL, for conditional requests and content-hash skips."""

    __tablename__ = "fetched_pages"
    __table_args__ = (UniqueConstraint("source_id", "url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    url: Mapped[str] = mapped_column(Text)
    canonical_url: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(300))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    http_status: Mapped[int | None] = mapped_column(Integer)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime] = _now_default()
    last_seen: Mapped[datetime] = _now_default()
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    sitemap_lastmod: Mapped[str | None] = mapped_column(String(40))
    snapshot_ref: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class HarvestWindow(Base):
    """A finished OAI-PMH from/until window: a crash resumes after the last one."""

    __tablename__ = "harvest_windows"
    __table_args__ = (UniqueConstraint("source_id", "window_from", "window_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    window_from: Mapped[str] = mapped_column(String(40))
    window_until: Mapped[str] = mapped_column(String(40))
    records: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    completed_at: Mapped[datetime] = _now_default()


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (
        # a candidate is one record at the partner (harvester.dedupe.candidate_key); several may share a URL
        UniqueConstraint("identity_key", "source_id"),  # the selective column first
        Index("ix_candidates_url", "url"),  # a 404 from the partner marks the candidates at that URL
        # a page's records: touched when the page is unchanged, gone when missing from it (once per page)
        Index("ix_candidates_source_fetched_url", "source_id", "fetched_url"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    identity_key: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    record_key: Mapped[str | None] = mapped_column(String(300))
    fetched_url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    organisations: Mapped[list[str]] = mapped_column(JSON, default=list)
    countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    start_date: Mapped[str | None] = mapped_column(String(20))
    end_date: Mapped[str | None] = mapped_column(String(20))
    published: Mapped[str | None] = mapped_column(String(40))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    language: Mapped[str | None] = mapped_column(String(10))
    language_prob: Mapped[float | None] = mapped_column(Float)
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    score: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    classifier_version: Mapped[str | None] = mapped_column(String(40))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # float16 x 512, once per page
    audit_sample: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    status: Mapped[str] = mapped_column(String(20), default=CandidateStatus.PENDING)
    gone_at_source: Mapped[bool] = mapped_column(Boolean, default=False)
    gone_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changed_since_review: Mapped[bool] = mapped_column(Boolean, default=False)
    record_hash: Mapped[str] = mapped_column(String(64))
    text_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    duplicate_cluster: Mapped[str | None] = mapped_column(String(64), index=True)
    curator_edits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    created_at: Mapped[datetime] = _now_default()
    updated_at: Mapped[datetime] = _now_default()
    version_id: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version_id}


# Dialect-specific structures made by migration 0007 in SQL (storage/search.py, the queue index) and left out of
# autogenerate by storage/migrations/env.py: the FTS5 table (and its shadow tables, same prefix), the PostgreSQL
# search column with its GIN index, and the keyset-pagination indexes ([status,] score DESC [NULLS LAST], id).
MIGRATION_ONLY_TABLE_PREFIX = "candidates_fts"
MIGRATION_ONLY_COLUMNS = {("candidates", "search_vector")}
MIGRATION_ONLY_INDEXES = {"ix_candidates_queue", "ix_candidates_rank", "ix_candidates_search_vector"}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _now_default()


class WebSession(Base):
    """A server-side login session: the cookie holds only a random id whose hash is stored here."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now_default()
    last_seen: Mapped[datetime] = _now_default()
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginAttempt(Base):
    """Failed and successful logins, for throttling guessing (per client and account, and per client)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_client_at", "client", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    client: Mapped[str | None] = mapped_column(String(100))
    success: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = _now_default()


class CandidateClaim(Base):
    """A curator's short lease on a candidate they opened (``storage.claims``): advice, not a lock."""

    __tablename__ = "candidate_claims"

    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime] = _now_default()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SecondReview(Base):
    """A blind second review of a sampled curator decision (``storage.second_review``): another curator
    judges the candidate without seeing the first decision; the pair feeds agreement (Cohen's kappa)."""

    __tablename__ = "second_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), unique=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    first_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    first_status: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = _now_default()
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    second_status: Mapped[str | None] = mapped_column(String(20))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccountEvent(Base):
    """Append-only audit of account changes: added, deactivated, reactivated, password reset, sessions ended."""

    __tablename__ = "account_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = _now_default()
    actor: Mapped[str] = mapped_column(String(100))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str | None] = mapped_column(Text)


class ReasonCode(StrEnum):
    """Why a curator rejected a candidate; each ties to a criterion so it can train the model."""

    NOT_SUPPORT_TYPE = "not_support_type"
    NOT_CBD_RELEVANT = "not_cbd_relevant"
    INACTIVE = "inactive"
    NOT_INTERNATIONAL = "not_international"
    DUPLICATE = "duplicate"
    OTHER = "other"


class Decision(Base):
    """Append-only audit of every status change a curator (or the system) makes."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = _now_default()
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason_code: Mapped[str | None] = mapped_column(String(50))
    note: Mapped[str | None] = mapped_column(Text)
    field_diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version: Mapped[str | None] = mapped_column(String(40))
    score_shown: Mapped[float | None] = mapped_column(Float)


class ClassifierModel(Base):
    """A learned re-ranker trained on curator decisions (``harvester classify retrain``).

    ``blob`` is the joblib-pickled ``harvester.classify.learn.RelevanceModel``; it is only ever
    written and read by this project (unpickling runs code: never load a blob from elsewhere).
    ``metrics`` holds the cross-validated figures and the training-set composition.
    """

    __tablename__ = "classifier_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = _now_default()
    n_train: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    library_version: Mapped[str] = mapped_column(String(40))
    blob: Mapped[bytes] = mapped_column(LargeBinary)


class DuplicateKey(Base):
    """Index keys of a candidate's near-duplicate fingerprint (normalised URL, title, text, MinHash
    LSH bands): candidates sharing a key are compared, confirmed pairs share ``duplicate_cluster``."""

    __tablename__ = "duplicate_keys"
    __table_args__ = (
        UniqueConstraint("candidate_id", "key"),
        # covering: the candidates sharing a key are read from the index alone, not from each row
        Index("ix_duplicate_keys_key_candidate", "key", "candidate_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))


class ChmStatus(StrEnum):
    """Where one accepted candidate's CHM document is (``storage.submissions``, ``harvester.chm.push``)."""

    EXPORTED = "exported"
    INVALID = "invalid"
    DRAFT_SAVED = "draft_saved"
    PUBLISH_REQUESTED = "publish_requested"
    PUBLISHED = "published"
    REJECTED = "rejected"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


class ChmSubmission(Base):
    """One candidate's document in one CHM realm. ``pending_step`` is written (and committed) before a
    non-idempotent KM API call and cleared after it, so a killed push knows to look before repeating it."""

    __tablename__ = "chm_submissions"
    __table_args__ = (UniqueConstraint("candidate_id", "realm"), UniqueConstraint("identifier", "realm"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    identifier: Mapped[str] = mapped_column(String(100))
    schema: Mapped[str] = mapped_column(String(50))
    payload_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    workflow_id: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_default()
    updated_at: Mapped[datetime] = _now_default()
    realm: Mapped[str] = mapped_column(String(40), server_default="")
    api_base: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pushed_hash: Mapped[str | None] = mapped_column(String(64))
    document_id: Mapped[str | None] = mapped_column(String(100))
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=list)
    permanent_error: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    pending_step: Mapped[str | None] = mapped_column(String(20))
    requested_action: Mapped[str | None] = mapped_column(String(20))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChmCuration(Base):
    """A curator's CHM choices for one candidate: the target schema (``resource``,
    ``capacityBuildingInitiative``, ``organization``) and field values merged over the mapped document."""

    __tablename__ = "chm_curations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), unique=True)
    schema: Mapped[str] = mapped_column(String(50))
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = _now_default()


class AlertKind(StrEnum):
    """What source-health monitoring (``harvester.health.checks``) and the scheduler raise."""

    ZERO_ITEMS = "zero_items"
    ERROR_SPIKE = "error_spike"
    NOT_MODIFIED_COLLAPSE = "not_modified_collapse"
    ITEM_COUNT_DROP = "item_count_drop"
    ITEM_COUNT_JUMP = "item_count_jump"
    FIELD_EMPTY = "field_empty"
    STUCK_RUN = "stuck_run"
    REPEATED_FAILURES = "repeated_failures"
    JOB_ERROR = "job_error"
    JOB_MISSED = "job_missed"
    RUN_QUARANTINED = "run_quarantined"  # an over-harvest waits for an admin (harvester.health.quarantine)
    STORE_FAILED = "store_failed"  # records a run could not store (the database failed); read again next crawl
    REGISTRY_ERROR = "registry_error"  # a registry file the scheduler cannot load (its source is not crawled)


class Alert(Base):
    """A source-health alert. At most one open alert per (source, kind, subject): a re-check refreshes
    ``last_seen_at`` instead of adding a row; ``resolved_at`` is set when the condition clears.
    ``subject`` narrows the kind (the field of a ``field_empty`` alert, the job of a ``job_error``);
    ``source_id`` is a registry id (no foreign key: a source may alert before its first run row)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_one_open_per_source_kind",
            "source_id",
            "kind",
            "subject",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = _now_default()
    last_seen_at: Mapped[datetime] = _now_default()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # sent by mail/webhook (once)
    notify_error: Mapped[str | None] = mapped_column(Text)


class SchedulerJob(Base):
    """APScheduler 3's ``SQLAlchemyJobStore`` table, created by Alembic instead of by APScheduler so the
    schema has one owner. Jobs reference module-level functions (``schedules.jobs:crawl_source``) with
    plain-string args: APScheduler deletes a row it cannot unpickle."""

    __tablename__ = "apscheduler_jobs"

    id: Mapped[str] = mapped_column(String(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)
