"""Matched spans ("hits"), their weighted contributions, and the evidence list a curator sees."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harvester.classify.model import Evidence

MAX_EVIDENCE = 8
DETAIL_CHARS = 300
REPEAT_BONUS = 0.25  # each further occurrence of a term adds this share of its weight ...
MAX_REPEATS = 4  # ... for at most this many further occurrences
_SENTENCE_END = ".!?;\n\r\u3002\uff01\uff1f\uff1b\u061f\u061b\u06d4"


@dataclass(frozen=True)
class Hit:
    """One label of one matched term at one place."""

    label: str
    term: str  # folded vocabulary term (identity for counting repeats)
    weight: float
    field: str
    factor: float
    start: int
    end: int
    source: str  # the field's full text (for the evidence sentence)
    order: int  # field order (title first)

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]

    @property
    def strength(self) -> float:
        return self.weight * self.factor


def saturate(total: float, k: float) -> float:
    """``1 - exp(-total / k)``: 0 for nothing, 0.63 at ``total == k``, 0.86 at ``2k``, -> 1."""
    return 0.0 if total <= 0 else 1.0 - math.exp(-total / k)


def contributions(hits: Iterable[Hit]) -> dict[tuple[str, str], float]:
    """Per distinct (label, term): its best ``weight x field factor`` plus ``REPEAT_BONUS x weight``
    for each further occurrence (at most ``MAX_REPEATS``)."""
    best: dict[tuple[str, str], float] = {}
    count: dict[tuple[str, str], int] = {}
    weight: dict[tuple[str, str], float] = {}
    for h in hits:
        key = (h.label, h.term)
        best[key] = max(best.get(key, 0.0), h.strength)
        count[key] = count.get(key, 0) + 1
        weight[key] = max(weight.get(key, 0.0), h.weight)
    return {k: best[k] + REPEAT_BONUS * weight[k] * min(count[k] - 1, MAX_REPEATS) for k in best}


def totals_by_label(hits: Iterable[Hit]) -> dict[str, float]:
    out: dict[str, float] = {}
    for (label, _), value in contributions(hits).items():
        out[label] = out.get(label, 0.0) + value
    return out


def sentence_around(text: str, start: int, end: int, limit: int = DETAIL_CHARS) -> str:
    """The sentence containing ``text[start:end]``, whitespace-collapsed, at most ~``limit`` chars
    (a window centred on the match when the sentence is longer)."""
    lo = max(0, start - limit)
    s = start
    while s > lo and text[s - 1] not in _SENTENCE_END:
        s -= 1
    hi = min(len(text), end + limit)
    e = end
    while e < hi and text[e] not in _SENTENCE_END:
        e += 1
    if e < len(text) and text[e] in _SENTENCE_END and text[e] not in "\n\r":
        e += 1
    if e - s > limit:
        half = max(0, (limit - (end - start)) // 2)
        s, e = max(s, start - half), min(e, end + half)
        return "…" + " ".join(text[s:e].split()) + "…"
    return " ".join(text[s:e].split())


def pick(hits: list[Hit], bucket: Callable[[Hit], str], limit: int = MAX_EVIDENCE) -> list[Hit]:
    """Up to ``limit`` hits, one distinct term at a time, round-robin over buckets (strongest
    bucket first, strongest term first), so every topic / support type that fired is shown."""
    contrib = contributions(hits)
    first: dict[tuple[str, str], Hit] = {}
    for h in sorted(hits, key=lambda h: (-h.strength, h.order, h.start)):
        first.setdefault((h.label, h.term), h)
    groups: dict[str, list[tuple[float, Hit]]] = {}
    for key, h in first.items():
        groups.setdefault(bucket(h), []).append((contrib[key], h))
    ordered = sorted(groups.values(), key=lambda g: -sum(c for c, _ in g))
    for g in ordered:
        g.sort(key=lambda ch: (-ch[0], ch[1].order, ch[1].start))
    out: list[Hit] = []
    spans: set[tuple[str, int, int]] = set()
    rnd = 0
    while len(out) < limit and any(rnd < len(g) for g in ordered):
        for g in ordered:
            if rnd < len(g) and len(out) < limit:
                h = g[rnd][1]
                if (h.field, h.start, h.end) not in spans:
                    spans.add((h.field, h.start, h.end))
                    out.append(h)
        rnd += 1
    return out


def to_evidence(h: Hit, criterion: str, kind: str = "term") -> Evidence:
    return Evidence(
        criterion=criterion,
        kind=kind,
        text=h.text,
        start=h.start,
        end=h.end,
        field=h.field,
        detail=sentence_around(h.source, h.start, h.end),
        label=h.label,
    )
