"""Blind second review of a sample of curator decisions, and agreement per curator (Cohen's kappa).

An admin asks for a random share of the current accept/reject decisions; each becomes an open
``SecondReview``. Any other curator takes the oldest open one that is not their own decision and
judges the candidate without seeing the first decision or the candidate's status; the candidate itself
is not changed. Agreement is kappa over the finished pairs of each first curator:
``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the share of pairs that agree and ``p_e`` the agreement
expected by chance from each side's accept rate (undefined, ``None``, when ``p_e`` is 1).
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from storage.models import CandidateStatus, Decision, SecondReview, User
from storage.runs import now

JUDGEMENTS = (CandidateStatus.ACCEPTED.value, CandidateStatus.REJECTED.value)


class SecondReviewError(ValueError):
    """A second review that cannot be recorded (unknown, already done, one's own decision, bad judgement)."""


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa of (first, second) judgements; None when chance agreement is total (undefined)."""
    pairs = list(pairs)
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in set(first) | set(second)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def request_sample(session: Session, share: float, requested_by: str, seed: int | None = None) -> int:
    """Open second reviews for ``share`` (0-1] of the current curator accept/reject decisions not yet sampled:
    each candidate's latest decision, made by a user. Returns how many were opened."""
    if not 0 < share <= 1:
        raise SecondReviewError("the share is a number above 0 and at most 1 (e.g. 0.1 for 10%)")
    latest = (
        select(func.max(Decision.id))
        .where(Decision.reason_code.is_distinct_from("gone_at_source"))
        .group_by(Decision.candidate_id)
    )
    sampled = select(SecondReview.decision_id)
    rows = session.execute(
        select(Decision.id, Decision.candidate_id, Decision.user_id, Decision.to_status)
        .where(
            Decision.id.in_(latest),
            Decision.id.not_in(sampled),
            Decision.user_id.is_not(None),
            Decision.to_status.in_(JUDGEMENTS),
        )
        .order_by(Decision.id)
    ).all()
    chosen = random.Random(seed).sample(rows, math.ceil(share * len(rows))) if rows else []
    for row in sorted(chosen):
        session.add(
            SecondReview(
                decision_id=row.id,
                candidate_id=row.candidate_id,
                first_user_id=row.user_id,
                first_status=row.to_status,
                requested_by=requested_by,
            )
        )
    session.flush()
    return len(chosen)


def next_for(session: Session, user_id: int) -> SecondReview | None:
    """The oldest open second review of a decision someone else took."""
    return session.scalars(
        select(SecondReview)
        .where(SecondReview.second_status.is_(None), SecondReview.first_user_id != user_id)
        .order_by(SecondReview.id)
        .limit(1)
    ).one_or_none()


def record(session: Session, review_id: int, user_id: int, judgement: str) -> SecondReview:
    if judgement not in JUDGEMENTS:
        raise SecondReviewError(f"a second review is one of: {', '.join(JUDGEMENTS)}")
    review = session.scalars(select(SecondReview).where(SecondReview.id == review_id).with_for_update()).one_or_none()
    if review is None:
        raise SecondReviewError(f"no second review {review_id}")
    if review.first_user_id == user_id:
        raise SecondReviewError("a curator never second-reviews their own decision")
    if review.second_status is not None:
        raise SecondReviewError("someone else gave this second review meanwhile; here is the next one")
    review.reviewer_id, review.second_status, review.reviewed_at = user_id, judgement, now()
    return review


@dataclass(frozen=True)
class Agreement:
    curator: str
    reviewed: int
    agreed: int
    kappa: float | None
    open: int


def agreement(session: Session) -> list[Agreement]:
    """Per first curator: finished second reviews, how many agreed, kappa, and how many are still open."""
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    waiting: Counter[str] = Counter()
    for name, first, second in session.execute(
        select(User.name, SecondReview.first_status, SecondReview.second_status).join(
            User, User.id == SecondReview.first_user_id
        )
    ):
        if second is None:
            waiting[name] += 1
        else:
            pairs[name].append((first, second))
    return [
        Agreement(name, len(pairs[name]), sum(a == b for a, b in pairs[name]), cohen_kappa(pairs[name]), waiting[name])
        for name in sorted(set(pairs) | set(waiting))
    ]


def disagreements(session: Session, limit: int = 200) -> list[tuple[SecondReview, str, str]]:
    """Finished second reviews that disagree with the first decision: (review, first curator, second curator)."""
    first, second = aliased(User), aliased(User)
    return [
        (r, a, b)
        for r, a, b in session.execute(
            select(SecondReview, first.name, second.name)
            .join(first, first.id == SecondReview.first_user_id)
            .join(second, second.id == SecondReview.reviewer_id)
            .where(SecondReview.second_status != SecondReview.first_status)
            .order_by(SecondReview.id.desc())
            .limit(limit)
        )
    ]
