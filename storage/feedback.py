"""Apply curator feedback to the queue at once (``harvester.classify.feedback``): after an accept or a
reject, every pending or filtered candidate still ranked by the zero-shot score (no learned model yet)
gets the zero-shot score moved by all accepts and rejects so far. Statuses are not changed: the
ranking moves, routing stays with the crawl, ``classify rescore`` and curators."""

from __future__ import annotations

import numpy as np
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from harvester.classify import zero_shot
from harvester.classify.embedding import stack
from harvester.classify.feedback import VERSION_SUFFIX, adjusted, query_shift
from storage.models import Candidate, CandidateStatus

ZERO_SHOT_VERSIONS = (zero_shot.VERSION, zero_shot.VERSION + VERSION_SUFFIX)
ROUTABLE = (CandidateStatus.PENDING.value, CandidateStatus.FILTERED.value)


def refresh_ranking(session: Session) -> int:
    """Re-rank the zero-shot-scored pending and filtered candidates; returns how many were updated."""
    decided = session.execute(
        select(Candidate.status, Candidate.embedding).where(
            Candidate.status.in_((CandidateStatus.ACCEPTED.value, CandidateStatus.REJECTED.value)),
            Candidate.embedding.is_not(None),
        )
    ).all()
    accepted = stack([e for s, e in decided if s == CandidateStatus.ACCEPTED.value])
    rejected = stack([e for s, e in decided if s == CandidateStatus.REJECTED.value])
    shift = query_shift(accepted, rejected)
    rows = session.execute(
        select(Candidate.id, Candidate.embedding, Candidate.criteria).where(
            Candidate.status.in_(ROUTABLE),
            Candidate.classifier_version.in_(ZERO_SHOT_VERSIONS),
            Candidate.embedding.is_not(None),
        )
    ).all()
    if not rows:
        return 0
    vectors = stack([r.embedding for r in rows])
    b = [float(((r.criteria or {}).get("cbd_relevance") or {}).get("score") or 0.0) for r in rows]
    scores = adjusted(zero_shot.score(vectors, b), vectors, shift)
    version = zero_shot.VERSION + (VERSION_SUFFIX if shift is not None else "")
    table = Candidate.__table__
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("cid"))
        .values(score=bindparam("new_score"), classifier_version=version),
        [{"cid": r.id, "new_score": round(float(s), 4)} for r, s in zip(rows, np.asarray(scores), strict=True)],
    )
    return len(rows)
