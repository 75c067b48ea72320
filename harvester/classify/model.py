"""The classifier's input and output types."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CRITERIA = ("support_type", "cbd_relevance", "active", "international")


@dataclass
class Evidence:
    """Why a criterion scored: a matched term, date, country, organisation or structured field.

    ``start``/``end`` are character offsets into the input field named by ``field`` (``title``,
    ``summary``, ``text``, ``keywords[2]``, ``organisations[0]``, ``extra.status``, ...), so
    ``field_text(doc, field)[start:end] == text``; they are ``None`` for evidence that is not a
    span (dates, given countries). ``detail`` is the sentence around the match (<= ~300 chars) or
    an explanation; ``label`` names the rule that fired (support type, topic id, ``general``,
    ``technology_transfer``, ``ongoing``/``past``, ``signals``, an ISO2 code, ...).
    """

    criterion: str
    kind: str  # "term" | "date" | "country" | "org" | "field"
    text: str
    start: int | None
    end: int | None
    field: str
    detail: str | None = None
    label: str | None = None


@dataclass
class CriterionScore:
    score: float
    evidence: list[Evidence] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), "evidence": [asdict(e) for e in self.evidence]}


@dataclass
class Classification:
    criteria: dict[str, CriterionScore]  # keys: CRITERIA
    score: float
    support_types: list[str]
    topics: list[str]
    countries: list[str]
    tags: dict[str, list[str]]  # cbdSubjects, gbfTargets, aichiTargets, countryRegions
    version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "criteria": {k: v.as_dict() for k, v in self.criteria.items()},
            "score": round(self.score, 4),
            "support_types": list(self.support_types),
            "topics": list(self.topics),
            "countries": list(self.countries),
            "tags": {k: list(v) for k, v in self.tags.items()},
            "version": self.version,
        }


@dataclass
class ClassifierInput:
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    language: str | None = None
    keywords: list[str] = field(default_factory=list)
    organisations: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    start_date: str | None = None  # ISO "YYYY[-MM[-DD]]"
    end_date: str | None = None
    published: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # {"status": "Project Approved", "scope": ["Global"]}
