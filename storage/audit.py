"""The recall audit in the database: draw a crawl's audit sample, count what curators found in it.

``draw_sample`` moves ``k`` random candidates that a run filtered (new in that run, seeded by the run
id) to ``pending`` with ``audit_sample`` set, recording a system decision for each; curators decide on
them like any other. ``recall_audit`` gives ``harvester.classify.audit.RecallAudit`` over the queue.
"""

from __future__ import annotations

import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from harvester.classify.audit import RecallAudit
from storage.models import Candidate, CandidateStatus, Decision

SYSTEM_ACTOR = "harvester"
NOTE = "recall audit sample: a random draw of what this crawl filtered"
DECIDED = (CandidateStatus.ACCEPTED.value, CandidateStatus.REJECTED.value)


def draw_sample(session: Session, run_id: int, k: int) -> list[int]:
    """Ids of up to ``k`` candidates first harvested and filtered by run ``run_id``, now in the queue."""
    if k <= 0:
        return []
    ids = sorted(
        session.scalars(
            select(Candidate.id).where(
                Candidate.first_run_id == run_id,
                Candidate.status == CandidateStatus.FILTERED.value,
                Candidate.audit_sample.is_(False),
            )
        )
    )
    chosen = sorted(random.Random(run_id).sample(ids, min(k, len(ids))))
    for row in session.scalars(select(Candidate).where(Candidate.id.in_(chosen))):
        row.status, row.audit_sample = CandidateStatus.PENDING.value, True
        session.add(
            Decision(
                candidate_id=row.id,
                actor=SYSTEM_ACTOR,
                from_status=CandidateStatus.FILTERED.value,
                to_status=CandidateStatus.PENDING.value,
                note=NOTE,
                model_version=row.classifier_version,
                score_shown=row.score,
            )
        )
    return chosen


def recall_audit(session: Session, source_id: str | None = None) -> RecallAudit:
    """N: filtered candidates plus every audit sample; k, r: decided and accepted audit samples;
    relevant found: every accepted candidate."""

    def count(*where: object) -> int:
        query = select(func.count()).select_from(Candidate).where(*where)
        if source_id is not None:
            query = query.where(Candidate.source_id == source_id)
        return int(session.scalar(query) or 0)

    accepted = Candidate.status == CandidateStatus.ACCEPTED.value
    return RecallAudit(
        excluded=count(Candidate.status == CandidateStatus.FILTERED.value, Candidate.audit_sample.is_(False))
        + count(Candidate.audit_sample.is_(True)),
        sampled=count(Candidate.audit_sample.is_(True), Candidate.status.in_(DECIDED)),
        relevant_in_sample=count(Candidate.audit_sample.is_(True), accepted),
        relevant_found=count(accepted),
    )
