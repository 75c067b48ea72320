"""Curator decisions: every change is one appended Decision row; the candidate row holds the result.

Optimistic locking: a decision names the candidate version the curator saw; if another curator
changed it meanwhile the decision is refused with ``DecisionConflict`` instead of overwriting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from storage.models import Candidate, CandidateStatus, Decision, ReasonCode
from storage.queue import QueueFilter, filtered_query
from storage.runs import now

EDITABLE_FIELDS = ("title", "summary", "organisations", "countries", "start_date", "end_date", "published")
ACTIONS = {
    "accept": CandidateStatus.ACCEPTED,
    "reject": CandidateStatus.REJECTED,
    "defer": CandidateStatus.DEFERRED,
    "reopen": CandidateStatus.PENDING,
}
BULK_BATCH = 500


class DecisionError(ValueError):
    """A decision that cannot be applied (unknown candidate, bad reason, bad edit)."""


class DecisionConflict(DecisionError):
    """The candidate changed since the curator loaded it."""


@dataclass(frozen=True)
class Actor:
    name: str
    user_id: int | None = None


def _check_action(action: str, reason: str | None) -> None:
    if action == "reject":
        if reason not in {r.value for r in ReasonCode}:
            raise DecisionError(f"a reject needs a reason code, one of: {', '.join(r.value for r in ReasonCode)}")
    elif action not in ACTIONS and action != "note":
        raise DecisionError(f"unknown action {action!r}")


def _candidate(session: Session, candidate_id: int) -> Candidate:
    row = session.scalars(select(Candidate).where(Candidate.id == candidate_id).with_for_update()).one_or_none()
    if row is None:
        raise DecisionError(f"no candidate {candidate_id}")
    if row.status == CandidateStatus.QUARANTINED:
        raise DecisionError(
            f"candidate {candidate_id} is held with a quarantined run: an admin releases or "
            "discards the run first (harvester runs release|discard RUN_ID)"
        )
    return row


def _check_version(row: Candidate, expected_version: int | None) -> None:
    if expected_version is not None and row.version_id != expected_version:
        raise DecisionConflict(
            f"candidate {row.id} was changed by someone else (version {row.version_id}, you saw "
            f"{expected_version}); reload it and decide again"
        )


def _well_typed(name: str, value: Any) -> bool:
    """Text fields take a string or nothing; list fields also a list of strings (or one separated string)."""
    if value is None or isinstance(value, str):
        return True
    return name in ("organisations", "countries") and isinstance(value, list) and all(isinstance(v, str) for v in value)


def _clean_edits(row: Candidate, edits: dict[str, Any]) -> dict[str, Any]:
    unknown = set(edits) - set(EDITABLE_FIELDS)
    if unknown:
        raise DecisionError(f"fields not editable: {', '.join(sorted(unknown))}")
    wrong = sorted(name for name, value in edits.items() if not _well_typed(name, value))
    if wrong:
        raise DecisionError(f"edits of the wrong type: {', '.join(wrong)} (text, or a list of texts)")
    diff = {}
    for name, value in edits.items():
        if name in ("organisations", "countries") and value is None:
            value = []
        if name in ("organisations", "countries") and isinstance(value, str):
            value = [v.strip() for v in value.split(";" if name == "organisations" else ",") if v.strip()]
        if name == "countries":
            value = sorted({v.upper() for v in value})
        if isinstance(value, str):
            value = value.strip() or None
        if value != getattr(row, name):
            diff[name] = {"from": getattr(row, name), "to": value}
    return diff


def decide(
    session: Session,
    candidate_id: int,
    action: str,
    actor: Actor,
    *,
    reason: str | None = None,
    note: str | None = None,
    edits: dict[str, Any] | None = None,
    expected_version: int | None = None,
) -> Decision:
    """Apply accept / reject (with a reason code) / defer / reopen, or a note alone (``action="note"``)."""
    row = _candidate(session, candidate_id)
    _check_version(row, expected_version)
    _check_action(action, reason)
    diff = _clean_edits(row, edits or {})
    from_status = row.status
    to_status = ACTIONS[action].value if action in ACTIONS else row.status
    for name, change in diff.items():
        setattr(row, name, change["to"])
    if diff:
        row.curator_edits = {**(row.curator_edits or {}), **{k: v["to"] for k, v in diff.items()}}
    row.status, row.updated_at = to_status, now()
    if action in ("accept", "reject"):
        row.changed_since_review = False
    decision = Decision(
        candidate_id=row.id,
        user_id=actor.user_id,
        actor=actor.name,
        from_status=from_status,
        to_status=to_status,
        reason_code=reason if action == "reject" else None,
        note=note,
        field_diff=diff,
        model_version=row.classifier_version,
        score_shown=row.score,
    )
    session.add(decision)
    session.flush()
    _feedback(session, from_status, to_status)
    return decision


def _feedback(session: Session, *statuses: str) -> None:
    """When the accepted or rejected set changed, the zero-shot ranking moves at once (``storage.feedback``)."""
    if any(s in (CandidateStatus.ACCEPTED.value, CandidateStatus.REJECTED.value) for s in statuses):
        from storage.feedback import refresh_ranking

        refresh_ranking(session)


def undo_last(session: Session, candidate_id: int, actor: Actor, *, expected_version: int | None = None) -> Decision:
    """Revert the candidate's latest decision (status and edits), itself recorded as a decision;
    undoing an undo re-applies what it undid. Like a decision, an undo names the version the curator saw:
    a stale undo is a ``DecisionConflict`` and never reverts someone else's newer decision."""
    row = _candidate(session, candidate_id)
    _check_version(row, expected_version)
    last = session.scalars(
        select(Decision)
        .where(Decision.candidate_id == candidate_id, Decision.reason_code.is_distinct_from("gone_at_source"))
        .order_by(Decision.id.desc())
        .limit(1)
    ).one_or_none()
    if last is None:
        raise DecisionError(f"candidate {candidate_id} has no curator decision to undo")
    diff = {name: {"from": change["to"], "to": change["from"]} for name, change in (last.field_diff or {}).items()}
    for name, change in diff.items():
        setattr(row, name, change["to"])
    from_status = row.status
    row.status = last.from_status or CandidateStatus.PENDING
    row.updated_at = now()
    undo = Decision(
        candidate_id=row.id,
        user_id=actor.user_id,
        actor=actor.name,
        from_status=from_status,
        to_status=row.status,
        reason_code="undo",
        note=f"undo of decision {last.id}",
        field_diff=diff,
        model_version=row.classifier_version,
        score_shown=row.score,
    )
    session.add(undo)
    session.flush()
    _feedback(session, from_status, row.status)
    return undo


def history(session: Session, candidate_id: int) -> list[Decision]:
    return list(session.scalars(select(Decision).where(Decision.candidate_id == candidate_id).order_by(Decision.id)))


@dataclass(frozen=True)
class BulkMark:
    """What a curator confirmed a bulk action on: the candidates up to ``last_candidate`` as they were after
    decision ``last_decision``. A candidate decided by anyone since is a conflict and is left alone."""

    last_candidate: int
    last_decision: int

    @classmethod
    def now(cls, session: Session) -> BulkMark:
        return cls(
            session.scalar(select(func.max(Candidate.id))) or 0, session.scalar(select(func.max(Decision.id))) or 0
        )


@dataclass
class BulkResult:
    decided: int = 0
    conflicts: list[int] = field(default_factory=list)


def decide_all(
    session: Session,
    f: QueueFilter,
    action: str,
    actor: Actor,
    mark: BulkMark,
    *,
    reason: str | None = None,
    note: str | None = None,
    batch: int = BULK_BATCH,
) -> BulkResult:
    """Apply one decision to every candidate matching ``f``, in batches, one audited Decision row per candidate.

    No cap: the whole result is walked by id. Candidates harvested after the confirmation are not touched;
    those decided by someone else since (``mark``) are skipped and reported as conflicts.
    """
    if action not in ACTIONS:
        raise DecisionError(f"a bulk action is one of: {', '.join(ACTIONS)}")
    _check_action(action, reason)
    to_status = ACTIONS[action].value
    query = (
        filtered_query(f, session.get_bind().dialect.name)
        .with_only_columns(
            Candidate.id,
            Candidate.status,
            Candidate.classifier_version,
            Candidate.score,
        )
        .where(Candidate.id <= mark.last_candidate, Candidate.status != CandidateStatus.QUARANTINED.value)
        .order_by(Candidate.id)
        .limit(batch)
    )
    result, last = BulkResult(), 0
    while rows := session.execute(query.where(Candidate.id > last).with_for_update()).all():
        last = rows[-1].id
        ids = [r.id for r in rows]
        touched = set(
            session.scalars(
                select(Decision.candidate_id).where(
                    Decision.candidate_id.in_(ids),
                    Decision.id > mark.last_decision,
                    Decision.reason_code.is_distinct_from("gone_at_source"),
                )
            )
        )
        todo = [r for r in rows if r.id not in touched]
        result.conflicts += sorted(touched)
        if not todo:
            continue
        values: dict[str, Any] = {"status": to_status, "updated_at": now(), "version_id": Candidate.version_id + 1}
        if action in ("accept", "reject"):
            values["changed_since_review"] = False
        session.execute(
            update(Candidate)
            .where(Candidate.id.in_([r.id for r in todo]))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(Decision),
            [
                {
                    "candidate_id": r.id,
                    "user_id": actor.user_id,
                    "actor": actor.name,
                    "from_status": r.status,
                    "to_status": to_status,
                    "reason_code": reason if action == "reject" else None,
                    "note": note,
                    "field_diff": {},
                    "model_version": r.classifier_version,
                    "score_shown": r.score,
                }
                for r in todo
            ],
        )
        result.decided += len(todo)
    if result.decided:
        _feedback(session, to_status)
    return result


@dataclass(frozen=True)
class AuditFilter:
    """Filters of the audit page and its CSV export; all optional, combined with AND."""

    actor: str | None = None
    candidate_id: int | None = None
    to_status: str | None = None
    reason: str | None = None
    since: date | None = None
    until: date | None = None


def audit_query(f: AuditFilter) -> Any:
    """Decisions matching ``f``, newest first (days in UTC; ``until`` includes its whole day)."""
    query = select(Decision).order_by(Decision.id.desc())
    if f.actor:
        query = query.where(Decision.actor == f.actor)
    if f.candidate_id is not None:
        query = query.where(Decision.candidate_id == f.candidate_id)
    if f.to_status:
        query = query.where(Decision.to_status == f.to_status)
    if f.reason:
        query = query.where(Decision.reason_code == f.reason)
    if f.since:
        query = query.where(Decision.at >= datetime.combine(f.since, time.min, UTC))
    if f.until:
        query = query.where(Decision.at < datetime.combine(f.until + timedelta(days=1), time.min, UTC))
    return query


@dataclass(frozen=True)
class Progress:
    """A curator's session counter: candidates they decided today (UTC) and what is left pending."""

    decided_today: int
    pending: int


def progress(session: Session, user_id: int) -> Progress:
    start = datetime.combine(now().date(), time.min, UTC)
    decided = (
        session.scalar(
            select(func.count(func.distinct(Decision.candidate_id))).where(
                Decision.user_id == user_id,
                Decision.at >= start,
                Decision.from_status != Decision.to_status,
                Decision.reason_code.is_distinct_from("undo"),
            )
        )
        or 0
    )
    pending = (
        session.scalar(
            select(func.count()).select_from(Candidate).where(Candidate.status == CandidateStatus.PENDING.value)
        )
        or 0
    )
    return Progress(decided, pending)


@dataclass(frozen=True)
class HistoryRow:
    """One of a curator's own decisions, with what an undo of it needs: is it still the candidate's latest
    decision, and the candidate version to undo against."""

    decision: Decision
    title: str | None
    version: int
    latest: bool


def personal_history(
    session: Session, user_id: int, *, before: int | None = None, limit: int = 100
) -> list[HistoryRow]:
    """The curator's decisions, newest first (``before``: decision ids below it)."""
    query = (
        select(Decision, Candidate.title, Candidate.version_id)
        .join(Candidate, Candidate.id == Decision.candidate_id)
        .where(Decision.user_id == user_id)
        .order_by(Decision.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Decision.id < before)
    rows = session.execute(query).all()
    ids = {d.candidate_id for d, _, _ in rows}
    latest = (
        dict(
            session.execute(
                select(Decision.candidate_id, func.max(Decision.id))
                .where(Decision.candidate_id.in_(ids), Decision.reason_code.is_distinct_from("gone_at_source"))
                .group_by(Decision.candidate_id)
            ).all()
        )
        if ids
        else {}
    )
    return [HistoryRow(d, title, version, latest.get(d.candidate_id) == d.id) for d, title, version in rows]


UNDECIDED = (CandidateStatus.PENDING.value, CandidateStatus.DEFERRED.value, CandidateStatus.FILTERED.value)


def open_cluster_members(session: Session, row: Candidate) -> list[Candidate]:
    """The candidate's near-duplicates (same ``duplicate_cluster``) that no curator has accepted or rejected."""
    if not row.duplicate_cluster:
        return []
    return list(
        session.scalars(
            select(Candidate)
            .where(
                Candidate.duplicate_cluster == row.duplicate_cluster,
                Candidate.id != row.id,
                Candidate.status.in_(UNDECIDED),
            )
            .order_by(Candidate.id)
        )
    )


def decide_cluster(
    session: Session,
    row: Candidate,
    action: str,
    actor: Actor,
    *,
    reason: str | None = None,
    note: str | None = None,
    skip: set[int] | frozenset[int] = frozenset(),
) -> list[Decision]:
    """Give the candidate's undecided near-duplicates the decision just taken on it, one audited decision
    each (noted as a cluster decision). Members decided meanwhile, or in ``skip`` (e.g. open by another
    curator), are left alone. Edits are never copied: each record keeps its own fields."""
    if action not in ("accept", "reject", "defer"):
        raise DecisionError("only accept, reject and defer apply to a cluster")
    label = f"cluster decision with #{row.id}" + (f": {note}" if note else "")
    decided = []
    for member in open_cluster_members(session, row):
        if member.id in skip:
            continue
        locked = _candidate(session, member.id)
        if locked.status not in UNDECIDED:
            continue
        decided.append(
            decide(session, member.id, action, actor, reason=reason, note=label, expected_version=locked.version_id)
        )
    return decided
