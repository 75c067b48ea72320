"""Split a field's text into plain and highlighted segments from evidence offsets (rendered escaped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Segment:
    text: str
    criterion: str | None = None
    label: str | None = None


def segments(text: str | None, evidence: list[dict[str, Any]], field: str) -> list[Segment]:
    """Non-overlapping highlighted spans of ``field``; overlaps keep the earliest-starting span."""
    if not text:
        return []
    spans = sorted(
        (e["start"], e["end"], e.get("criterion"), e.get("label"))
        for e in evidence
        if e.get("field") == field
        and isinstance(e.get("start"), int)
        and isinstance(e.get("end"), int)
        and 0 <= e["start"] < e["end"] <= len(text)
    )
    out: list[Segment] = []
    cursor = 0
    for start, end, criterion, label in spans:
        if start < cursor:
            continue
        if start > cursor:
            out.append(Segment(text[cursor:start]))
        out.append(Segment(text[start:end], criterion, label))
        cursor = end
    if cursor < len(text):
        out.append(Segment(text[cursor:]))
    return out


def all_evidence(criteria: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**e, "criterion": name} for name, c in (criteria or {}).items() for e in c.get("evidence", [])]
