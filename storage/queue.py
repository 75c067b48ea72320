"""Queue operations: idempotent candidate upsert, gone-at-source marking, the filtered and ranked listing.

The queue is ranked by ``score DESC NULLS LAST, id`` and paged by keyset (a cursor names the last row
shown), which the index ``ix_candidates_queue`` (status, score DESC [NULLS LAST], id) serves as a range
scan on SQLite and PostgreSQL: a deep page costs what the first one does. Counts are capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, String, func, or_, select, update
from sqlalchemy.orm import Session

from harvester.dedupe import candidate_key
from storage.models import Candidate, CandidateStatus, Decision
from storage.runs import now
from storage.search import match_clause
from storage.upsert import dialect_of, statement_cache

_candidates = Candidate.__table__  # Core inserts: the ORM's bulk-insert path costs a third more per row
REVIEWED = {CandidateStatus.ACCEPTED, CandidateStatus.REJECTED}
HARVESTED_COLUMNS = (
    "url",
    "record_key",
    "fetched_url",
    "title",
    "summary",
    "text",
    "organisations",
    "countries",
    "regions",
    "keywords",
    "start_date",
    "end_date",
    "published",
    "extra",
    "provenance",
    "language",
    "language_prob",
    "criteria",
    "score",
    "tags",
    "classifier_version",
    "text_hash",
    "duplicate_cluster",
    "embedding",
)


class Outcome(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    NOT_MODIFIED = "not_modified"


@dataclass(frozen=True)
class UpsertResult:
    outcome: Outcome
    candidate_id: int


@statement_cache
def _insert_new(insert: Any) -> Any:
    return (
        insert(_candidates)
        .on_conflict_do_nothing(index_elements=["source_id", "identity_key"])
        .returning(_candidates.c.id)
    )


def upsert_candidate(
    session: Session,
    *,
    source_id: str,
    url: str,
    record_hash: str,
    run_id: int | None,
    initial_status: str,
    values: dict[str, Any],
    identity_key: str | None = None,
) -> UpsertResult:
    """Insert a new candidate, update a changed one, or only touch an unchanged one.

    The row is keyed by (source_id, identity_key): the record's identity at the partner
    (``harvester.dedupe.candidate_key`` of ``values["record_key"]`` and ``url`` unless given); its URL is a
    field, updated when the partner moves the record.
    Curator state (status, edits, decisions) is never overwritten; a reviewed record whose content
    changed is flagged ``changed_since_review``.
    """
    identity_key = identity_key or candidate_key(values.get("record_key"), url)
    harvested = {**{k: values[k] for k in HARVESTED_COLUMNS if k in values}, "url": url}
    inserted = session.execute(
        _insert_new(dialect_of(session)),
        {
            "source_id": source_id,
            "identity_key": identity_key,
            "record_hash": record_hash,
            "status": initial_status,
            "first_run_id": run_id,
            "last_run_id": run_id,
            "curator_edits": {},
            "version_id": 1,
            **harvested,
        },
    ).scalar_one_or_none()
    if inserted is not None:
        return UpsertResult(Outcome.NEW, inserted)
    current = session.execute(
        select(Candidate.id, Candidate.record_hash, Candidate.url, Candidate.gone_at_source)
        .where(Candidate.source_id == source_id, Candidate.identity_key == identity_key)
        .with_for_update()
    ).one()
    if current.record_hash == record_hash and current.url == url and not current.gone_at_source:
        # seen again, unchanged: a Core update, so the row's version (optimistic locking) stays as it is
        session.execute(update(Candidate).where(Candidate.id == current.id).values(last_run_id=run_id))
        return UpsertResult(Outcome.NOT_MODIFIED, current.id)
    row = session.get_one(Candidate, current.id)
    row.last_run_id = run_id
    row.gone_at_source, row.gone_since = False, None
    for key, value in harvested.items():
        setattr(row, key, value)
    row.record_hash, row.updated_at = record_hash, now()
    if row.status in REVIEWED:
        row.changed_since_review = True
    session.flush()
    return UpsertResult(Outcome.UPDATED, row.id)


def touch_page_candidates(session: Session, source_id: str, fetched_url: str, run_id: int | None) -> int:
    """An unchanged multi-record page: its candidates were seen again in this run."""
    result = session.execute(
        update(Candidate)
        .where(
            Candidate.source_id == source_id, Candidate.fetched_url == fetched_url, Candidate.gone_at_source.is_(False)
        )
        .values(last_run_id=run_id)
    )
    return int(result.rowcount or 0)


def mark_gone(session: Session, source_id: str, urls: list[str], reason: str, run_id: int | None) -> int:
    """Flag the candidates at these URLs as gone at the source (the partner answered 404/410); never delete them."""
    return _mark_gone_where(session, source_id, Candidate.url.in_(urls), reason, run_id) if urls else 0


def mark_gone_keys(session: Session, source_id: str, identity_keys: list[str], reason: str, run_id: int | None) -> int:
    """Flag the candidates with these identity keys as gone (an OAI deleted header, a row missing from an export)."""
    if not identity_keys:
        return 0
    return _mark_gone_where(session, source_id, Candidate.identity_key.in_(identity_keys), reason, run_id)


def _mark_gone_where(session: Session, source_id: str, which: Any, reason: str, run_id: int | None) -> int:
    rows = session.scalars(
        select(Candidate).where(Candidate.source_id == source_id, which, Candidate.gone_at_source.is_(False))
    ).all()
    for row in rows:
        row.gone_at_source, row.gone_since, row.last_run_id = True, now(), run_id
        session.add(
            Decision(
                candidate_id=row.id,
                actor="harvester",
                from_status=row.status,
                to_status=row.status,
                reason_code="gone_at_source",
                note=reason,
                field_diff={},
            )
        )
    return len(rows)


def mark_missing_gone(
    session: Session, source_id: str, fetched_url: str, seen_keys: set[str], run_id: int | None
) -> int:
    """After a complete export was parsed completely, its records not seen this time (by identity key) are gone."""
    known = session.scalars(
        select(Candidate.identity_key).where(
            Candidate.source_id == source_id, Candidate.fetched_url == fetched_url, Candidate.gone_at_source.is_(False)
        )
    ).all()
    missing = [k for k in known if k not in seen_keys]
    return mark_gone_keys(session, source_id, missing, f"no longer in {fetched_url}", run_id)


def count_by_source_status(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(Candidate.source_id, Candidate.status, func.count()).group_by(Candidate.source_id, Candidate.status)
    )
    return {(r[0], r[1]): r[2] for r in rows}


def candidate_json(c: Candidate, with_text: bool = False) -> dict[str, Any]:
    """The public JSON shape of a candidate (``queue --json``, ``extract --json``)."""
    from harvester.classify.zero_shot import score_basis

    out = {
        "id": c.id,
        "url": c.url,
        "title": c.title,
        "source": c.source_id,
        "language": c.language,
        "language_probability": c.language_prob,
        "status": c.status,
        "score": c.score,
        "organisations": c.organisations,
        "countries": c.countries,
        "regions": c.regions,
        "start_date": c.start_date,
        "end_date": c.end_date,
        "published": c.published,
        "summary": c.summary,
        "criteria": c.criteria,
        "tags": c.tags,
        "gone_at_source": c.gone_at_source,
        "duplicate_cluster": c.duplicate_cluster,
        "record_key": c.record_key,
        "classifier_version": c.classifier_version,
        "score_basis": score_basis(c.classifier_version),
        "audit_sample": bool(c.audit_sample),
    }
    if with_text:
        out["text"] = c.text
        out["provenance"] = c.provenance
    return out


@dataclass(frozen=True)
class QueueFilter:
    """Server-side queue filters; every one is optional and they combine with AND."""

    status: str | None = None
    source_id: str | None = None
    language: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    criterion: str | None = None
    criterion_min: float | None = None
    support_type: str | None = None
    country: str | None = None
    published_from: str | None = None
    published_to: str | None = None
    reviewer: str | None = None
    q: str | None = None


CRITERIA = ("support_type", "cbd_relevance", "active", "international")
COUNT_CAP = 10_000
MAX_KEY = 2**31 - 1  # the largest INTEGER key on PostgreSQL
RANK = (Candidate.score.desc().nulls_last(), Candidate.id)


class CursorError(ValueError):
    """A page cursor that this app did not make."""


@dataclass(frozen=True)
class Cursor:
    """A position in the ranked queue: the (score, id) of a row; pages start after or end before it."""

    score: float | None
    id: int

    def encode(self) -> str:
        return f"{'none' if self.score is None else repr(self.score)}_{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        score, _, ident = raw.partition("_")
        try:
            value = None if score == "none" else float(score)
            if value is not None and value != value:  # NaN
                raise ValueError
            if not 0 <= int(ident) <= MAX_KEY:  # PostgreSQL would refuse it in the query: a 500
                raise ValueError
            return cls(value, int(ident))
        except ValueError:
            raise CursorError(f"bad page cursor {raw!r}") from None

    @classmethod
    def of(cls, row: Candidate) -> Cursor:
        return cls(row.score, row.id)


@dataclass(frozen=True)
class QueuePage:
    rows: list[Candidate]
    next: Cursor | None
    prev: Cursor | None


def filtered_query(f: QueueFilter, dialect: str) -> Select[Any]:
    """The candidates matching every given filter (unordered); ``dialect`` picks the full-text flavour."""
    query = select(Candidate)
    if f.status:
        query = query.where(Candidate.status == f.status)
    if f.source_id:
        query = query.where(Candidate.source_id == f.source_id)
    if f.language:
        query = query.where(Candidate.language == f.language)
    if f.min_score is not None:
        query = query.where(Candidate.score >= f.min_score)
    if f.max_score is not None:
        query = query.where(Candidate.score <= f.max_score)
    if f.published_from:
        query = query.where(Candidate.published >= f.published_from)
    if f.published_to:
        query = query.where(Candidate.published <= f.published_to + "\uffff")
    if f.q and f.q.strip():
        query = query.where(match_clause(dialect, f.q))
    if f.reviewer:
        reviewed = select(Decision.candidate_id).where(Decision.actor == f.reviewer)
        query = query.where(Candidate.id.in_(reviewed))
    if f.country:
        query = query.where(func.cast(Candidate.countries, String).like(f'%"{f.country.strip().upper()}"%'))
    if f.support_type:
        query = query.where(func.cast(Candidate.tags, String).like(f'%"{f.support_type}"%'))
    if f.criterion in CRITERIA and f.criterion_min is not None:
        score = Candidate.criteria[f.criterion]["score"].as_float()
        query = query.where(score >= f.criterion_min)
    return query


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _after(session: Session, query: Select[Any], cursor: Cursor | None, limit: int) -> list[Any]:
    """Up to ``limit`` rows following ``cursor`` in rank order (scored rows first, then the unscored)."""
    score, ident = Candidate.score, Candidate.id
    if cursor is None:
        return list(session.scalars(query.order_by(*RANK).limit(limit)))
    if cursor.score is None:
        return list(session.scalars(query.where(score.is_(None), ident > cursor.id).order_by(ident).limit(limit)))
    rows = list(
        session.scalars(
            query.where(score <= cursor.score, or_(score < cursor.score, ident > cursor.id))
            .order_by(*RANK)
            .limit(limit)
        )
    )
    if len(rows) < limit:
        rows += session.scalars(query.where(score.is_(None)).order_by(ident).limit(limit - len(rows)))
    return rows


def _before(session: Session, query: Select[Any], cursor: Cursor, limit: int) -> list[Any]:
    """Up to ``limit`` rows preceding ``cursor``, nearest first (the index read backwards)."""
    score, ident = Candidate.score, Candidate.id
    backwards = (score.asc().nulls_first(), ident.desc())
    rows: list[Any] = []
    if cursor.score is None:
        rows = list(
            session.scalars(query.where(score.is_(None), ident < cursor.id).order_by(ident.desc()).limit(limit))
        )
        if len(rows) < limit:
            rows += session.scalars(query.where(score.is_not(None)).order_by(*backwards).limit(limit - len(rows)))
        return rows
    return list(
        session.scalars(
            query.where(score >= cursor.score, or_(score > cursor.score, ident < cursor.id))
            .order_by(*backwards)
            .limit(limit)
        )
    )


def queue_page(
    session: Session, f: QueueFilter, limit: int = 50, after: Cursor | None = None, before: Cursor | None = None
) -> QueuePage:
    """One page of the ranked, filtered queue: the first, the one after ``after`` or the one before ``before``."""
    query = filtered_query(f, _dialect(session))
    if before is not None:
        rows = _before(session, query, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit][::-1]
        return QueuePage(rows, Cursor.of(rows[-1]) if rows else None, Cursor.of(rows[0]) if more and rows else None)
    rows = _after(session, query, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return QueuePage(
        rows, Cursor.of(rows[-1]) if more else None, Cursor.of(rows[0]) if after is not None and rows else None
    )


def neighbours(session: Session, f: QueueFilter, row: Candidate) -> tuple[int | None, int | None]:
    """The ids before and after ``row`` in the ranked queue of filter ``f`` (unscored rows included)."""
    query = filtered_query(f, _dialect(session)).with_only_columns(Candidate.id, Candidate.score)
    here = Cursor.of(row)
    prev = _before(session, query, here, 1)
    nxt = _after(session, query, here, 1)
    return (prev[0] if prev else None), (nxt[0] if nxt else None)


def count_candidates(session: Session, f: QueueFilter, cap: int | None = COUNT_CAP) -> int:
    """How many candidates match ``f``; with ``cap``, counting stops at ``cap + 1`` (show it as "more than cap")."""
    query = filtered_query(f, _dialect(session)).with_only_columns(Candidate.id)
    if cap is not None:
        query = query.limit(cap + 1)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def search_candidates(session: Session, f: QueueFilter, limit: int | None = 50) -> tuple[list[Candidate], int]:
    """The first ``limit`` rows of the ranked, filtered queue (``limit=None``: all of it) and the exact count."""
    query = filtered_query(f, _dialect(session))
    rows = session.scalars(query.order_by(*RANK).limit(limit)).all()
    return list(rows), count_candidates(session, f, cap=None)
