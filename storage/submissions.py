"""CHM submission rows: one per (accepted candidate, realm), plus curators' CHM choices.

``harvester.chm.export`` and ``harvester.chm.push`` drive the state machine; these functions only
read and write rows and never call the network.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Candidate, CandidateStatus, ChmCuration, ChmStatus, ChmSubmission, Decision, Source
from storage.runs import now

ACTIONS = ("repush", "withdraw")
EXPORT_STATES = {None, ChmStatus.EXPORTED, ChmStatus.INVALID}
SERVER_PREFIX = "KM API: "
RESUBMIT_STATES = {ChmStatus.FAILED, ChmStatus.REJECTED}


class SubmissionError(ValueError):
    """A CHM request that cannot be applied (unknown candidate, not accepted, unknown action)."""


def accepted_candidates(session: Session, candidate_ids: list[int] | None = None) -> list[Candidate]:
    query = select(Candidate).where(Candidate.status == CandidateStatus.ACCEPTED).order_by(Candidate.id)
    if candidate_ids:
        query = query.where(Candidate.id.in_(candidate_ids))
    return list(session.scalars(query))


def last_accept(session: Session, candidate_id: int) -> Decision | None:
    return session.scalars(
        select(Decision)
        .where(Decision.candidate_id == candidate_id, Decision.to_status == CandidateStatus.ACCEPTED)
        .order_by(Decision.id.desc())
        .limit(1)
    ).one_or_none()


def source_name(session: Session, source_id: str) -> str:
    row = session.get(Source, source_id)
    return row.name if row is not None else source_id


def curation(session: Session, candidate_id: int) -> ChmCuration | None:
    return session.scalars(select(ChmCuration).where(ChmCuration.candidate_id == candidate_id)).one_or_none()


def set_curation(session: Session, candidate_id: int, schema: str, fields: dict[str, Any], actor: str) -> ChmCuration:
    if session.get(Candidate, candidate_id) is None:
        raise SubmissionError(f"no candidate {candidate_id}")
    row = curation(session, candidate_id)
    if row is None:
        row = ChmCuration(candidate_id=candidate_id, schema=schema, fields=fields, updated_by=actor)
        session.add(row)
    else:
        row.schema, row.fields, row.updated_by, row.updated_at = schema, fields, actor, now()
    session.flush()
    return row


def submission(session: Session, candidate_id: int, realm: str, *, lock: bool = False) -> ChmSubmission | None:
    query = select(ChmSubmission).where(ChmSubmission.candidate_id == candidate_id, ChmSubmission.realm == realm)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def record_payload(
    session: Session,
    candidate_id: int,
    realm: str,
    *,
    identifier: str,
    schema: str,
    payload: dict[str, Any],
    digest: str,
    errors: list[dict[str, str]],
) -> ChmSubmission:
    """Store the latest mapped document; a row not yet pushed becomes ``exported`` or ``invalid``."""
    row = submission(session, candidate_id, realm, lock=True)
    if row is None:
        row = ChmSubmission(
            candidate_id=candidate_id,
            realm=realm,
            identifier=identifier,
            schema=schema,
            payload_hash=digest,
            status=ChmStatus.EXPORTED,
            attempts=0,
            errors=[],
        )
        session.add(row)
    changed = row.payload_hash != digest or row.schema != schema
    row.identifier, row.schema, row.payload, row.payload_hash = identifier, schema, payload, digest
    if errors and (row.status in EXPORT_STATES or changed):
        row.status, row.errors, row.error, row.permanent_error = ChmStatus.INVALID, errors, _summary(errors), True
    elif row.status == ChmStatus.INVALID and not changed and (row.error or "").startswith(SERVER_PREFIX):
        pass  # the KM API refused this very document: it waits for a curator's edit
    elif row.status in EXPORT_STATES or (changed and row.status in RESUBMIT_STATES):
        row.status, row.errors, row.error, row.permanent_error = ChmStatus.EXPORTED, [], None, False
    if changed:
        row.updated_at = now()
    session.flush()
    return row


def _summary(errors: list[dict[str, str]]) -> str | None:
    if not errors:
        return None
    return "; ".join(f"{e['code']} {e['property']}" for e in errors)


def request_action(session: Session, candidate_id: int, realm: str, action: str) -> ChmSubmission:
    """An admin's re-push or withdraw request, carried out by the next ``chm push``."""
    if action not in ACTIONS:
        raise SubmissionError(f"unknown CHM action {action!r}; one of {', '.join(ACTIONS)}")
    row = submission(session, candidate_id, realm, lock=True)
    if row is None:
        raise SubmissionError(f"candidate {candidate_id} has no CHM submission in realm {realm}; export it first")
    row.requested_action, row.updated_at = action, now()
    if action == "repush":
        row.permanent_error = False
    session.flush()
    return row


def submissions_of(session: Session, candidate_id: int) -> list[ChmSubmission]:
    return list(
        session.scalars(
            select(ChmSubmission).where(ChmSubmission.candidate_id == candidate_id).order_by(ChmSubmission.realm)
        )
    )


def all_submissions(session: Session, realm: str | None = None) -> list[ChmSubmission]:
    query = select(ChmSubmission).order_by(ChmSubmission.candidate_id)
    if realm:
        query = query.where(ChmSubmission.realm == realm)
    return list(session.scalars(query))
