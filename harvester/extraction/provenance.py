"""Where each field's value came from, in five kinds a curator can weigh, and how it was interpreted.

A candidate's ``provenance`` maps a field to the detail of its origin (``record:Countries[].ISO3``,
``selector:main h1::text``, ``jsonld:headline``, ``trafilatura``, ``inferred:text``); its flags name
interpretations (``country-inferred-from-text``, ``date-year-only``, ``language-overridden-by-page-lang``,
``title-cleaned``). Both are stored in the candidate's ``provenance`` JSON column, the flags under
``FLAGS_KEY``; a curator's edit of a field makes it ``curator-edited`` whatever it was before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FLAGS_KEY = "flags"
PARTNER_VERBATIM = "partner-verbatim"
STRUCTURED_DATA = "structured-data"
EXTRACTOR = "extractor"
INFERRED = "inferred-from-text"
CURATOR_EDITED = "curator-edited"
_KINDS = (
    (("record:", "selector:"), PARTNER_VERBATIM),
    (("jsonld:", "microdata:", "rdfa:", "meta:"), STRUCTURED_DATA),
    (("trafilatura", "htmldate", "html:", "derived:"), EXTRACTOR),
    (("inferred:", "text:"), INFERRED),
)
FIELDS = (
    "title",
    "summary",
    "text",
    "organisations",
    "countries",
    "regions",
    "keywords",
    "start_date",
    "end_date",
    "published",
    "language",
)


@dataclass(frozen=True)
class FieldOrigin:
    field: str
    kind: str
    detail: str
    flags: tuple[str, ...] = ()


def kind_of(detail: str) -> str:
    """The provenance kind of one origin detail (an unknown detail counts as the extractor's)."""
    return next((kind for prefixes, kind in _KINDS if detail.startswith(prefixes)), EXTRACTOR)


def stored_provenance(provenance: dict[str, str], flags: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON stored with a candidate: the origin details, and the flags under ``FLAGS_KEY``."""
    return {**provenance, FLAGS_KEY: flags} if flags else dict(provenance)


def field_origins(stored: dict[str, Any] | None, curator_edits: dict[str, Any] | None = None) -> dict[str, FieldOrigin]:
    """Per field, its kind, detail and flags, from a stored ``provenance`` and the curator's edits."""
    stored = stored or {}
    flags = stored.get(FLAGS_KEY) or {}
    out: dict[str, FieldOrigin] = {}
    for name in FIELDS:
        detail = stored.get(name)
        field_flags = tuple(str(f) for f in flags.get(name) or ())
        if curator_edits and name in curator_edits:
            out[name] = FieldOrigin(name, CURATOR_EDITED, "curator", field_flags)
        elif isinstance(detail, str):
            out[name] = FieldOrigin(name, kind_of(detail), detail, field_flags)
        elif field_flags:
            out[name] = FieldOrigin(name, EXTRACTOR, "", field_flags)
    return out


def provenance_summary(stored: dict[str, Any] | None, curator_edits: dict[str, Any] | None = None) -> str:
    """One line per field for a publishing authority: ``title: structured-data (jsonld:headline) [title-cleaned]``."""
    lines = []
    for origin in field_origins(stored, curator_edits).values():
        detail = f" ({origin.detail})" if origin.detail and origin.kind != CURATOR_EDITED else ""
        marks = f" [{', '.join(origin.flags)}]" if origin.flags else ""
        lines.append(f"{origin.field}: {origin.kind}{detail}{marks}")
    return "; ".join(lines)
