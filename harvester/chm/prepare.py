"""Map and validate every accepted candidate and record the result on its submission row: the shared
first half of ``chm export`` and ``chm push``. Also decides what a push must do for a row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from harvester.chm.mapping import ChmInput, map_candidate, payload_hash
from harvester.chm.validate import validate
from harvester.extraction.provenance import stored_provenance
from harvester.items import CandidateItem
from storage.models import Candidate, ChmStatus, ChmSubmission
from storage.submissions import accepted_candidates, curation, last_accept, record_payload, source_name


@dataclass(frozen=True)
class Prepared:
    candidate_id: int
    schema: str
    identifier: str
    document: dict[str, Any]
    sha256: str
    errors: list[dict[str, str]]


def input_for(session: Session, c: Candidate) -> ChmInput:
    decision = last_accept(session, c.id)
    chosen = curation(session, c.id)
    return ChmInput(
        candidate_id=c.id,
        source_id=c.source_id,
        source_name=source_name(session, c.source_id),
        url=c.url,
        title=c.title,
        summary=c.summary,
        text=c.text,
        organisations=list(c.organisations or []),
        start_date=c.start_date,
        end_date=c.end_date,
        published=c.published,
        language=c.language,
        language_prob=c.language_prob,
        tags=dict(c.tags or {}),
        score=c.score,
        extra=dict(c.extra or {}),
        accepted_by=decision.actor if decision else None,
        accepted_at=decision.at.date().isoformat() if decision and decision.at else None,
        first_seen=c.created_at.date().isoformat() if c.created_at else None,
        schema=chosen.schema if chosen else "resource",
        curated=dict(chosen.fields) if chosen else {},
        provenance=dict(c.provenance or {}),
        curator_edits=dict(c.curator_edits or {}),
    )


def prepare_one(record: ChmInput) -> Prepared:
    doc = map_candidate(record)
    errors = [e.as_dict() for e in validate(doc)]
    return Prepared(
        record.candidate_id or 0, doc["header"]["schema"], doc["header"]["identifier"], doc, payload_hash(doc), errors
    )


def prepare_all(
    session: Session, realm: str, candidate_ids: list[int] | None = None
) -> list[tuple[Prepared, ChmSubmission]]:
    out = []
    for c in accepted_candidates(session, candidate_ids):
        prepared = prepare_one(input_for(session, c))
        row = record_payload(
            session,
            c.id,
            realm,
            identifier=prepared.identifier,
            schema=prepared.schema,
            payload=prepared.document,
            digest=prepared.sha256,
            errors=prepared.errors,
        )
        out.append((prepared, row))
    return out


def next_step(row: ChmSubmission) -> str:
    """``submit``, ``poll``, ``withdraw`` or ``skip``: what ``chm push`` does with this row now."""
    if row.requested_action == "withdraw":
        return "withdraw" if row.status != ChmStatus.WITHDRAWN else "skip"
    if row.status == ChmStatus.INVALID:
        return "skip"
    if row.requested_action == "repush" or row.pending_step is not None:
        return "submit"
    changed = row.payload_hash != row.pushed_hash
    by_status = {
        ChmStatus.EXPORTED: "submit",
        ChmStatus.DRAFT_SAVED: "submit",
        ChmStatus.FAILED: "skip" if row.permanent_error else "submit",
        ChmStatus.PUBLISH_REQUESTED: "submit" if changed else "poll",
        ChmStatus.PUBLISHED: "submit" if changed else "skip",
    }
    return by_status.get(ChmStatus(row.status), "skip")


def input_from_item(
    item: CandidateItem, source_name: str, candidate_id: int | None = None, first_seen: str | None = None
) -> ChmInput:
    """A freshly extracted item treated as accepted (golden files, ``chm`` checks over whole captures)."""
    return ChmInput(
        candidate_id=candidate_id,
        source_id=item.source_id,
        source_name=source_name,
        url=item.canonical_url or item.url,
        title=item.title,
        summary=item.summary,
        text=item.text,
        organisations=list(item.organisations),
        start_date=item.start_date,
        end_date=item.end_date,
        published=item.published,
        language=item.language,
        language_prob=item.language_prob,
        tags=dict(item.tags),
        score=item.score,
        extra=dict(item.extra),
        first_seen=first_seen or item.lastmod,
        provenance=stored_provenance(item.provenance, item.flags),
    )
