"""The one item type that flows spider -> pipelines -> storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CriterionResult:
    """One CBD criterion: a score in [0, 1] and the evidence that produced it."""

    score: float
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), "evidence": self.evidence}


@dataclass
class CandidateItem:
    """A candidate record from one partner page or one row of a multi-record response.

    Spiders fill what they know (``raw`` record or HTML ``body``); the extract stage fills the
    normalised fields; later stages add language, hashes and criteria.
    """

    source_id: str
    url: str
    fetched_url: str
    record_key: str | None = None
    body: bytes | None = None
    content_type: str | None = None
    raw: dict[str, Any] | None = None
    page_lang: str | None = None
    lastmod: str | None = None
    fetched_on: str | None = None  # ISO date the page was fetched (HTTP Date header), picks the parser version
    gone: bool = False

    title: str | None = None
    summary: str | None = None
    text: str | None = None
    organisations: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    start_date: str | None = None
    end_date: str | None = None
    published: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)  # field -> how a value was interpreted

    language: str | None = None
    language_prob: float | None = None
    canonical_url: str | None = None
    text_hash: str | None = None
    record_hash: str | None = None

    criteria: dict[str, CriterionResult] = field(default_factory=dict)
    score: float | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    classifier_version: str | None = None
    embedding: bytes | None = None  # harvester.classify.embedding: float16 bytes, computed once per page

    def flag(self, name: str, flag: str) -> None:
        """Note how ``name``'s value was interpreted (``country-inferred-from-text``, ``title-cleaned`` ...)."""
        if flag not in self.flags.setdefault(name, []):
            self.flags[name].append(flag)

    def harvested_fields(self) -> dict[str, Any]:
        """The extracted fields as stored and exported (no body, no raw record)."""
        return {
            "title": self.title,
            "summary": self.summary,
            "text": self.text,
            "organisations": self.organisations,
            "countries": self.countries,
            "regions": self.regions,
            "keywords": self.keywords,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "published": self.published,
            "extra": self.extra,
        }
