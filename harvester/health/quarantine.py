"""Over-harvest quarantine: a run whose new records jump far past the source's history is held.

The store stage counts each run's new records. Once a run passes ``factor`` x the median of the
source's last finished runs (and at least ``min_records``), the run is marked ``held`` and its new
candidates, those stored so far and those still to come, get status ``quarantined``: out of the
review queue. Only candidates the run created are held; a record the run merely updated keeps its
status and any curator decision. Every move is a ``Decision`` row (reason codes ``quarantine``,
``quarantine_released``, ``quarantine_discarded``), so nothing is lost and each batch can be traced.

An admin then releases the run (each candidate returns to the status it would have had: pending or
filtered) or discards it (its candidates become ``filtered``: kept, visible, out of the queue).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from storage.models import Candidate, CandidateStatus, CrawlRun, Decision, RunStatus
from storage.runs import now

SYSTEM_ACTOR = "harvester"  # as storage.model_store: not a curator decision, so rescoring may still route
HISTORY_RUNS = 10
HOLD, RELEASED, DISCARDED = "quarantine", "quarantine_released", "quarantine_discarded"
HOLDABLE = (CandidateStatus.PENDING.value, CandidateStatus.FILTERED.value)


class QuarantineState(StrEnum):
    HELD = "held"
    RELEASED = "released"
    DISCARDED = "discarded"


class QuarantineError(ValueError):
    """A release or discard that cannot be applied (unknown run, run not held)."""


@dataclass(frozen=True)
class Limit:
    """More than ``records`` new records in one run hold it."""

    records: float
    median: float
    history_runs: int
    factor: float


def over_harvest_limit(
    session: Session, source_id: str, run_id: int | None, factor: float, min_records: int
) -> Limit | None:
    """The source's limit from its last finished runs (held or discarded over-harvests are not history);
    None without history or with the quarantine off."""
    if factor <= 0:
        return None
    normal = CrawlRun.quarantine.is_(None) | (CrawlRun.quarantine == QuarantineState.RELEASED)
    query = (
        select(CrawlRun.stats)
        .where(CrawlRun.source_id == source_id, CrawlRun.status == RunStatus.FINISHED, normal)
        .order_by(CrawlRun.id.desc())
        .limit(HISTORY_RUNS)
    )
    if run_id is not None:
        query = query.where(CrawlRun.id != run_id)
    history = [int((stats or {}).get("new", 0) or 0) for stats in session.scalars(query)]
    if not history:
        return None
    median = float(statistics.median(history))
    return Limit(max(factor * median, min_records - 1), median, len(history), factor)


def _curator_decided() -> Any:
    return exists().where(Decision.candidate_id == Candidate.id, Decision.actor != SYSTEM_ACTOR)


def _hold_decision(candidate: Candidate, from_status: str, run_id: int) -> Decision:
    return Decision(
        candidate_id=candidate.id,
        actor=SYSTEM_ACTOR,
        from_status=from_status,
        to_status=CandidateStatus.QUARANTINED.value,
        reason_code=HOLD,
        note=f"new in run {run_id}, held as an over-harvest",
        field_diff={},
        model_version=candidate.classifier_version,
        score_shown=candidate.score,
    )


def hold_run(session: Session, run_id: int, new_records: int, limit: Limit) -> int:
    """Mark the run held and quarantine the new, undecided candidates it stored so far; returns how many."""
    run = session.get_one(CrawlRun, run_id)
    if run.quarantine == QuarantineState.HELD:
        return 0
    run.quarantine = QuarantineState.HELD.value
    run.quarantine_details = {
        "held_at": now().isoformat(),
        "new_records_at_hold": new_records,
        "limit": limit.records,
        "median_new": limit.median,
        "history_runs": limit.history_runs,
        "factor": limit.factor,
        "reason": f"more than {limit.records:g} new records (median {limit.median:g} over the last "
        f"{limit.history_runs} finished run(s), factor {limit.factor:g})",
    }
    rows = session.scalars(
        select(Candidate)
        .where(Candidate.first_run_id == run_id, Candidate.status.in_(HOLDABLE), ~_curator_decided())
        .with_for_update()
    ).all()
    for row in rows:
        session.add(_hold_decision(row, row.status, run_id))
        row.status = CandidateStatus.QUARANTINED.value
    session.flush()
    return len(rows)


def hold_new(session: Session, run_id: int, candidate_id: int, would_be: str) -> None:
    """Audit a candidate stored directly as ``quarantined`` by a held run (``would_be``: its status otherwise)."""
    session.add(_hold_decision(session.get_one(Candidate, candidate_id), would_be, run_id))


class QuarantineGate:
    """The store stage's view of one run: counts its new records and holds it past the limit."""

    def __init__(self, factor: float, min_records: int) -> None:
        self.factor, self.min_records = factor, min_records
        self.new_records = 0
        self.held = False
        self._limit: Limit | None = None
        self._limit_known = False

    def status_for(self, would_be: str) -> str:
        """The status a new candidate is stored with."""
        return CandidateStatus.QUARANTINED.value if self.held else would_be

    def stored_new(
        self, session: Session, source_id: str, run_id: int | None, candidate_id: int, would_be: str
    ) -> bool:
        """Count one new candidate; returns True when this one tripped the hold."""
        if run_id is None:
            return False
        self.new_records += 1
        if self.held:
            hold_new(session, run_id, candidate_id, would_be)
            return False
        if not self._limit_known:
            self._limit = over_harvest_limit(session, source_id, run_id, self.factor, self.min_records)
            self._limit_known = True
        if self._limit is None or self.new_records <= self._limit.records:
            return False
        hold_run(session, run_id, self.new_records, self._limit)
        self.held = True
        return True


# -- admin decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    name: str
    user_id: int | None = None


def _held_run(session: Session, run_id: int) -> CrawlRun:
    run = session.get(CrawlRun, run_id, with_for_update=True)
    if run is None:
        raise QuarantineError(f"no run {run_id}")
    if run.quarantine != QuarantineState.HELD:
        state = f"was {run.quarantine}" if run.quarantine else "was never quarantined"
        raise QuarantineError(f"run {run_id} is not held in quarantine (it {state})")
    return run


def _held_candidates(session: Session, run_id: int) -> list[Candidate]:
    return list(
        session.scalars(
            select(Candidate)
            .where(Candidate.first_run_id == run_id, Candidate.status == CandidateStatus.QUARANTINED)
            .order_by(Candidate.id)
            .with_for_update()
        )
    )


def _status_before_hold(session: Session, candidate_ids: list[int]) -> dict[int, str]:
    rows = session.execute(
        select(Decision.candidate_id, Decision.from_status)
        .where(Decision.candidate_id.in_(candidate_ids), Decision.reason_code == HOLD)
        .order_by(Decision.id)
    )
    return {cid: status for cid, status in rows if status}


def _decide(session: Session, run: CrawlRun, state: QuarantineState, admin: Admin, count: int) -> None:
    run.quarantine = state.value
    verb = "released" if state == QuarantineState.RELEASED else "discarded"
    run.quarantine_details = {
        **(run.quarantine_details or {}),
        f"{verb}_by": admin.name,
        f"{verb}_at": now().isoformat(),
        "candidates": count,
    }
    session.flush()


def release_run(session: Session, run_id: int, admin: Admin) -> int:
    """Candidates of a held run enter the queue as they would have (pending or filtered)."""
    run = _held_run(session, run_id)
    rows = _held_candidates(session, run_id)
    before = _status_before_hold(session, [r.id for r in rows])
    for row in rows:
        to = before.get(row.id, CandidateStatus.PENDING.value)
        session.add(
            Decision(
                candidate_id=row.id,
                user_id=admin.user_id,
                actor=SYSTEM_ACTOR,
                from_status=row.status,
                to_status=to,
                reason_code=RELEASED,
                note=f"run {run_id} released by {admin.name}",
                field_diff={},
                model_version=row.classifier_version,
                score_shown=row.score,
            )
        )
        row.status, row.updated_at = to, now()
    _decide(session, run, QuarantineState.RELEASED, admin, len(rows))
    return len(rows)


def discard_run(session: Session, run_id: int, admin: Admin) -> int:
    """Candidates of a held run are kept as ``filtered`` (out of the queue; a curator may still reopen one)."""
    run = _held_run(session, run_id)
    rows = _held_candidates(session, run_id)
    for row in rows:
        session.add(
            Decision(
                candidate_id=row.id,
                user_id=admin.user_id,
                actor=admin.name,
                from_status=row.status,
                to_status=CandidateStatus.FILTERED.value,
                reason_code=DISCARDED,
                note=f"run {run_id} discarded as an over-harvest",
                field_diff={},
                model_version=row.classifier_version,
                score_shown=row.score,
            )
        )
        row.status, row.updated_at = CandidateStatus.FILTERED.value, now()
    _decide(session, run, QuarantineState.DISCARDED, admin, len(rows))
    return len(rows)


def quarantine_runs(session: Session, include_decided: bool = False) -> list[dict[str, Any]]:
    """Held runs (and with ``include_decided`` released and discarded ones), newest first, with counts."""
    query = select(CrawlRun).where(CrawlRun.quarantine.is_not(None)).order_by(CrawlRun.id.desc())
    if not include_decided:
        query = query.where(CrawlRun.quarantine == QuarantineState.HELD)
    runs = list(session.scalars(query))
    held = dict(
        session.execute(
            select(Candidate.first_run_id, func.count())
            .where(Candidate.status == CandidateStatus.QUARANTINED, Candidate.first_run_id.in_([r.id for r in runs]))
            .group_by(Candidate.first_run_id)
        ).all()
    )
    return [
        {
            "run": r.id,
            "source": r.source_id,
            "state": r.quarantine,
            "status": r.status,
            "started_at": r.started_at,
            "new": (r.stats or {}).get("new"),
            "held_candidates": held.get(r.id, 0),
            "details": r.quarantine_details or {},
        }
        for r in runs
    ]
