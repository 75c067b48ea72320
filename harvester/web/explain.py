"""The classifier's scores as a curator reads them: criteria by name, evidence for and against each
criterion told apart, and how the four criterion scores (and a learned model, when one ranks) make the score.

The rules' overall score is ``harvester.classify.criteria.OVERALL_WEIGHTS`` applied to the four criterion
scores. Evidence counts against a criterion when it lowers the score: a term of the ``past`` label on
(c) active (``ended``, ``completed`` ...), or an end date already passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harvester.classify.criteria import OVERALL_WEIGHTS

CRITERION_NAMES = {
    "support_type": "(a) Support type (X/16)",
    "cbd_relevance": "(b) CBD and Article 16 relevance",
    "active": "(c) Active and long-term",
    "international": "(d) International",
}
AGAINST_LABELS = {"past"}


def criterion_name(key: str) -> str:
    return CRITERION_NAMES.get(key, key)


def against(criterion: str, evidence: dict[str, Any]) -> bool:
    """Evidence that lowers its criterion's score."""
    if evidence.get("label") in AGAINST_LABELS:
        return True
    return (
        criterion == "active"
        and evidence.get("kind") == "date"
        and evidence.get("field") == "end_date"
        and str(evidence.get("detail") or "").startswith("ended")
    )


def split_evidence(criteria: dict[str, Any]) -> dict[str, tuple[list[Any], list[Any]]]:
    """Per criterion: (evidence for, evidence against)."""
    out = {}
    for name, crit in criteria.items():
        evidence = (crit or {}).get("evidence") or []
        out[name] = ([e for e in evidence if not against(name, e)], [e for e in evidence if against(name, e)])
    return out


@dataclass(frozen=True)
class Part:
    key: str
    name: str
    weight: float
    score: float

    @property
    def points(self) -> float:
        return self.weight * self.score


@dataclass(frozen=True)
class ScoreExplanation:
    parts: list[Part]
    rules_score: float
    score: float | None
    model: str | None  # the learned model's version when it, not the rules, gave ``score``


def explain(criteria: dict[str, Any], score: float | None, classifier_version: str | None) -> ScoreExplanation:
    parts = [
        Part(key, criterion_name(key), weight, float((criteria.get(key) or {}).get("score") or 0.0))
        for key, weight in OVERALL_WEIGHTS.items()
    ]
    model = classifier_version if classifier_version and not classifier_version.startswith("rules") else None
    return ScoreExplanation(parts, sum(p.points for p in parts), score, model)
