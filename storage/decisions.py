"""Curator decisions: every change is one appended Decision row; the candidate row holds the result.

Optimistic locking: a decision names the candidate version the curator saw; if another curator
changed it meanwhile the decision is refused with ``DecisionConflict`` instead of overwriting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Candidate, CandidateStatus, Decision, ReasonCode
from storage.runs import now

EDITABLE_FIELDS = ("title", "summary", "organisations", "countries", "start_date", "end_date", "published")
ACTIONS = {"accept": CandidateStatus.ACCEPTED, "reject": CandidateStatus.REJECTED,
           "defer": CandidateStatus.DEFERRED, "reopen": CandidateStatus.PENDING}


class DecisionError(ValueError):
    """A decision that cannot be applied (unknown candidate, bad reason, bad edit)."""


class DecisionConflict(DecisionError):
    """The candidate changed since the curator loaded it."""


@dataclass(frozen=True)
class Actor:
    name: str
    user_id: int | None = None


def _candidate(session: Session, candidate_id: int) -> Candidate:
    row = session.scalars(select(Candidate).where(Candidate.id == candidate_id).with_for_update()).one_or_none()
    if row is None:
        raise DecisionError(f"no candidate {candidate_id}")
    return row


def _clean_edits(row: Candidate, edits: dict[str, Any]) -> dict[str, Any]:
    unknown = set(edits) - set(EDITABLE_FIELDS)
    if unknown:
        raise DecisionError(f"fields not editable: {', '.join(sorted(unknown))}")
    diff = {}
    for name, value in edits.items():
        if name in ("organisations", "countries") and isinstance(value, str):
            value = [v.strip() for v in value.split(";" if name == "organisations" else ",") if v.strip()]
        if name == "countries":
            value = sorted({v.upper() for v in value})
        if isinstance(value, str):
            value = value.strip() or None
        if value != getattr(row, name):
            diff[name] = {"from": getattr(row, name), "to": value}
    return diff


def decide(session: Session, candidate_id: int, action: str, actor: Actor, *, reason: str | None = None,
           note: str | None = None, edits: dict[str, Any] | None = None,
           expected_version: int | None = None) -> Decision:
    """Apply accept / reject (with a reason code) / defer / reopen, or a note alone (``action="note"``)."""
    row = _candidate(session, candidate_id)
    if expected_version is not None and row.version_id != expected_version:
        raise DecisionConflict(
            f"candidate {candidate_id} was changed by someone else (version {row.version_id}, you saw "
            f"{expected_version}); reload it and decide again")
    if action == "reject":
        if reason not in {r.value for r in ReasonCode}:
            raise DecisionError(f"a reject needs a reason code, one of: {', '.join(r.value for r in ReasonCode)}")
    elif action not in ACTIONS and action != "note":
        raise DecisionError(f"unknown action {action!r}")
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
    decision = Decision(candidate_id=row.id, user_id=actor.user_id, actor=actor.name, from_status=from_status,
                        to_status=to_status, reason_code=reason if action == "reject" else None, note=note,
                        field_diff=diff, model_version=row.classifier_version, score_shown=row.score)
    session.add(decision)
    session.flush()
    return decision


def undo_last(session: Session, candidate_id: int, actor: Actor) -> Decision:
    """Revert the candidate's latest decision (status and edits), itself recorded as a decision;
    undoing an undo re-applies what it undid."""
    row = _candidate(session, candidate_id)
    last = session.scalars(select(Decision).where(Decision.candidate_id == candidate_id,
                                                  Decision.reason_code.is_distinct_from("gone_at_source"))
                           .order_by(Decision.id.desc()).limit(1)).one_or_none()
    if last is None:
        raise DecisionError(f"candidate {candidate_id} has no curator decision to undo")
    diff = {name: {"from": change["to"], "to": change["from"]} for name, change in (last.field_diff or {}).items()}
    for name, change in diff.items():
        setattr(row, name, change["to"])
    from_status = row.status
    row.status = last.from_status or CandidateStatus.PENDING
    row.updated_at = now()
    undo = Decision(candidate_id=row.id, user_id=actor.user_id, actor=actor.name, from_status=from_status,
                    to_status=row.status, reason_code="undo", note=f"undo of decision {last.id}", field_diff=diff,
                    model_version=row.classifier_version, score_shown=row.score)
    session.add(undo)
    session.flush()
    return undo


def history(session: Session, candidate_id: int) -> list[Decision]:
    return list(session.scalars(select(Decision).where(Decision.candidate_id == candidate_id)
                                .order_by(Decision.id)))
