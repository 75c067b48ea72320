"""Short leases on candidates, so parallel curators never review the same record unknowingly.

Opening a candidate takes (or renews) the curator's lease on it for ``LEASE``; a decision on it
releases the lease. While another curator's lease runs, the candidate page says who is reviewing it
(and takes nothing), the queue marks the row, and "review next" skips it. A lease is advice, not a
lock: a curator may still decide a claimed candidate, and optimistic locking (``storage.decisions``)
keeps two decisions from overwriting each other. Taking a lease is one INSERT ... ON CONFLICT and
one conditional UPDATE, never check-then-insert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from storage.models import CandidateClaim, User
from storage.queue import Cursor, QueueFilter, queue_page
from storage.runs import now
from storage.upsert import insert_for

LEASE = timedelta(minutes=10)
NEXT_SCAN = 500  # rows of the ranked queue "review next" looks through for one nobody else holds


@dataclass(frozen=True)
class Holder:
    """A live lease held by someone."""

    user_id: int
    name: str
    expires_at: datetime


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def claim(session: Session, candidate_id: int, user_id: int) -> Holder | None:
    """Take or renew ``user_id``'s lease on the candidate. Returns the other curator holding a live lease
    (then nothing is taken), else None."""
    current = now()
    session.execute(
        insert_for(session, CandidateClaim)
        .values(candidate_id=candidate_id, user_id=user_id, claimed_at=current, expires_at=current + LEASE)
        .on_conflict_do_nothing(index_elements=["candidate_id"])
    )
    taken = session.execute(
        update(CandidateClaim)
        .where(
            CandidateClaim.candidate_id == candidate_id,
            or_(CandidateClaim.user_id == user_id, CandidateClaim.expires_at <= current),
        )
        .values(user_id=user_id, expires_at=current + LEASE)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return None
    return holders(session, [candidate_id], except_user=user_id).get(candidate_id)


def holders(session: Session, candidate_ids: Iterable[int], except_user: int | None = None) -> dict[int, Holder]:
    """Live leases on these candidates held by anyone but ``except_user``."""
    ids = list(candidate_ids)
    if not ids:
        return {}
    query = (
        select(CandidateClaim.candidate_id, CandidateClaim.user_id, User.name, CandidateClaim.expires_at)
        .join(User, User.id == CandidateClaim.user_id)
        .where(CandidateClaim.candidate_id.in_(ids), CandidateClaim.expires_at > now())
    )
    if except_user is not None:
        query = query.where(CandidateClaim.user_id != except_user)
    return {cid: Holder(uid, name, _aware(until)) for cid, uid, name, until in session.execute(query)}


def release(session: Session, candidate_id: int) -> None:
    """The candidate was decided: nobody needs to hold it any more."""
    session.execute(delete(CandidateClaim).where(CandidateClaim.candidate_id == candidate_id))


def next_unclaimed(session: Session, f: QueueFilter, user_id: int, after: Cursor | None = None) -> int | None:
    """The first candidate of the ranked queue ``f`` (after ``after``) that no other curator holds."""
    page = queue_page(session, f, NEXT_SCAN, after=after)
    held = holders(session, [row.id for row in page.rows], except_user=user_id)
    return next((row.id for row in page.rows if row.id not in held), None)
