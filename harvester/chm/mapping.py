"""Accepted candidate -> CHM document (``resource`` by default; ``capacityBuildingInitiative`` or
``organization`` when a curator chose it and supplied the extra mandatory fields).

Pure functions over ``ChmInput``; the CHM tags come from the classifier (``candidate.tags``), never
re-derived here. The document identifier is a uuid5 of the canonical source URL, so the same record
always maps to the same CHM document and a re-push updates it instead of creating another.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from harvester.chm.reference import UN_LANGUAGES, terms
from harvester.extraction.provenance import provenance_summary

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://chm-harvester.invalid/")
TAG_FIELDS = ("gbfTargets", "aichiTargets", "cbdSubjects")
_YEAR_MONTH = re.compile(r"^(\d{4})(?:-(\d{2}))?")


@dataclass
class ChmInput:
    """What the mapping reads of one accepted candidate (built from a stored row or a fresh item)."""

    candidate_id: int | None
    source_id: str
    source_name: str
    url: str
    title: str | None
    summary: str | None = None
    text: str | None = None
    organisations: list[str] = field(default_factory=list)
    start_date: str | None = None
    end_date: str | None = None
    published: str | None = None
    language: str | None = None
    language_prob: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    accepted_by: str | None = None
    accepted_at: str | None = None
    first_seen: str | None = None
    schema: str = "resource"
    curated: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # stored per-field origins and flags
    curator_edits: dict[str, Any] = field(default_factory=dict)


def chm_identifier(canonical_url: str) -> str:
    return str(uuid.uuid5(NAMESPACE, canonical_url)).upper()


def payload_hash(doc: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces): equal documents, equal hashes."""
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def canonical_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def languages_of(record: ChmInput) -> list[str]:
    """The record's language when it is a UN language; otherwise the detected code stays and local
    validation says so (a curator then sets ``languages`` and the texts in a UN language)."""
    curated = (
        record.curated.get("header", {}).get("languages") if isinstance(record.curated.get("header"), dict) else None
    )
    if curated:
        return list(curated)
    return [record.language or "und"]


def first_words(text: str, limit: int) -> str:
    words = text.split()
    return text.strip() if len(words) <= limit else " ".join(words[: limit - 1]) + " …"


def year_month(record: ChmInput) -> tuple[str | None, str]:
    """``YYYY-MM`` from the publication date, else the start date, else the month the harvester first
    saw the record; a year alone becomes January. Returns the value and where it came from (for the notes)."""
    for name in ("published", "start_date"):
        value = getattr(record, name)
        found = _YEAR_MONTH.match(value or "")
        if found:
            month = found.group(2)
            return f"{found.group(1)}-{month or '01'}", name if month else f"{name} (year only)"
    if record.first_seen:
        return record.first_seen[:7], "first_seen (the record states no date)"
    return None, "none"


def _terms(ids: list[str]) -> list[dict[str, str]]:
    return [{"identifier": i} for i in ids]


def _ls(lang: str, text: str | None) -> dict[str, str] | None:
    return {lang: text} if text else None


def provenance_note(record: ChmInput, date_from: str) -> str:
    parts = [
        "chm-harvester" + (f" candidate_id={record.candidate_id}" if record.candidate_id else ""),
        f"source={record.source_id}",
        f"url={record.url}",
        f"language={record.language or 'unknown'}",
    ]
    if record.language_prob is not None:
        parts.append(f"language_probability={record.language_prob:.2f}")
    if record.score is not None:
        parts.append(f"score={record.score:.2f}")
    parts.append(f"publicationDate_from={date_from}")
    if record.accepted_by:
        parts.append(f"accepted_by={record.accepted_by} at {record.accepted_at}")
    fields = provenance_summary(record.provenance, record.curator_edits)
    if fields:
        parts.append(f"fields: {fields}")
    return "; ".join(parts)


def _relevant_information(record: ChmInput, lang: str) -> dict[str, str] | None:
    if lang != "en":
        return None  # the provenance text is English; the notes carry it for every language
    support = ", ".join(record.tags.get("supportTypes") or []) or "not determined"
    text = (
        f"Harvested by CHM Harvester from {record.source_name} ({record.url}). "
        f"Decision X/16 support type: {support}. Reviewed and accepted by a CHM curator."
    )
    return {lang: f"<p>{html.escape(text)}</p>"}


def map_resource(record: ChmInput) -> dict[str, Any]:
    lang = languages_of(record)[0]
    summary = record.summary or record.text or record.title
    date, date_from = year_month(record)
    authors = "; ".join(record.organisations) or record.source_name
    doc: dict[str, Any] = {
        "header": {"identifier": chm_identifier(record.url), "schema": "resource", "languages": [lang]},
        "title": _ls(lang, record.title),
        "resourceTypes": _terms([terms()["defaultResourceType"]]),
        "authors": _ls(lang, authors),
        "publicationDate": date,
        "resourceLinks": [{"url": record.url, "name": record.source_name, "language": lang}],
        "summary": _ls(lang, first_words(summary, 300) if summary else None),
        "countryRegions": _terms(record.tags.get("countryRegions") or []),
        **{name: _terms(record.tags.get(name) or []) for name in TAG_FIELDS},
        "relevantInformation": _relevant_information(record, lang),
        "notes": provenance_note(record, date_from),
    }
    return doc


def map_capacity_building(record: ChmInput) -> dict[str, Any]:
    lang = languages_of(record)[0]
    summary = record.summary or record.text
    doc: dict[str, Any] = {
        "header": {
            "identifier": chm_identifier(record.url),
            "schema": "capacityBuildingInitiative",
            "languages": [lang],
        },
        "title": _ls(lang, record.title),
        "projectDocument": [{"url": record.url, "name": record.source_name, "language": lang}],
        "startDate": record.start_date if record.start_date and len(record.start_date) == 10 else None,
        "endDate": record.end_date if record.end_date and len(record.end_date) == 10 else None,
        "description": _ls(lang, first_words(summary, 150) if summary else None),
        "countryRegions": _terms(record.tags.get("countryRegions") or []),
        **{name: _terms(record.tags.get(name) or []) for name in TAG_FIELDS},
        "relevantInformation": _relevant_information(record, lang),
        "notes": provenance_note(record, "n/a"),
    }
    return doc


def map_organization(record: ChmInput) -> dict[str, Any]:
    lang = languages_of(record)[0]
    doc: dict[str, Any] = {
        "header": {"identifier": chm_identifier(record.url), "schema": "organization", "languages": [lang]},
        "name": _ls(lang, record.organisations[0] if record.organisations else record.title),
        "websites": [{"url": record.url, "name": record.source_name, "language": lang}],
        "thematicAreas": _terms(record.tags.get("cbdSubjects") or []),
        "gbfTargets": _terms(record.tags.get("gbfTargets") or []),
        "aichiTargets": _terms(record.tags.get("aichiTargets") or []),
        "relevantInformation": _relevant_information(record, lang),
        "notes": provenance_note(record, "n/a"),
    }
    return doc


def accepted_tags(tags: dict[str, Any]) -> dict[str, Any]:
    """The proposed tags plus the technology-transfer set (GBF-TARGET-20, AICHI-TARGET-19,
    CBD-SUBJECT-STTM): a curator accepts a record only as biodiversity technology transfer, so every
    accepted record carries it even when the classifier found no explicit cooperation wording."""
    from harvester.classify.tags import chm_tags

    out = dict(tags)
    for name, ids in chm_tags([], [], technology_transfer=True, countries=[]).items():
        if name in TAG_FIELDS:
            out[name] = sorted(set(out.get(name) or []) | set(ids))
    return out


MAPPERS = {
    "resource": map_resource,
    "capacityBuildingInitiative": map_capacity_building,
    "organization": map_organization,
}


def map_candidate(record: ChmInput) -> dict[str, Any]:
    """The CHM document of the record's schema, curator values merged over the mapped ones, empty
    fields dropped and keys sorted (stable bytes, stable hash)."""
    if record.schema not in MAPPERS:
        raise ValueError(f"unsupported CHM schema {record.schema!r}; one of {', '.join(MAPPERS)}")
    record = replace(record, tags=accepted_tags(record.tags))
    doc = MAPPERS[record.schema](record)
    for name, value in record.curated.items():
        if name == "header":
            continue
        doc[name] = value
    return {k: doc[k] for k in sorted(doc) if doc[k] not in (None, "", [], {})}


__all__ = ["UN_LANGUAGES", "ChmInput", "chm_identifier", "map_candidate", "payload_hash"]
