"""Score the four CBD criteria from hits, dates and countries.

Every criterion turns a weighted total ``W`` into a score with ``saturate(W, K) = 1 - exp(-W / K)``
(0 with no evidence, 0.63 at ``W = K``, 0.86 at ``2K``, never above 1). ``W`` sums, per distinct
(label, term), ``weight x field factor`` of its best occurrence plus ``0.25 x weight`` for each
further occurrence (at most 4) -- see ``evidence.contributions``. Term weights are in the vocabulary
files (2 specific ... 0.5 broad, 0.25 macro-regions); field factors in ``fields`` (title 2,
keywords and structured metadata 1.5, summary 1.25, text 1; an organisation named in the text 0.5).
"Broad cues" are terms of weight < 1; where noted they together count at most ``WEAK_CAP`` = 1,
so broad words alone can never make a criterion score high.

(a) support_type:  per X/16 type ``t``: ``s_t = saturate(W_t, 1.5)``; score = ``max_t s_t``.
    ``support_types`` lists every type with ``W_t >= 1`` (one full-weight cue).
(b) cbd_relevance: ``W = W_general + W_topics + 2.0 x W_technology_transfer`` (Article 16
    weighted highest; broad cues capped); score = ``saturate(W, 4)``. ``topics`` lists topics
    with ``W_topic >= 1`` and at least one term of weight >= 1, strongest first.
(c) active:        ``clamp(prior + 0.5 x saturate(W_ongoing, 2) - 0.5 x saturate(W_past, 2), 0, cap)``
    with the date prior: end date today or later 0.7; ended within 365 days 0.35; ended earlier
    0 and ``cap = 0.15``; no end date but start/published (the later one) in the future 0.6,
    within 2 years 0.5, within 5 years 0.3, older 0.1; no usable date 0.
(d) international: ``W = 1.5 if >= 2 distinct countries (+0.5 if >= 3)``, ``+ 2`` if a structured
    field (an unresolved ``countries`` entry, ``regions``, ``extra``) is exactly a scope word
    ("Global", "Regional", "Transboundary"), plus the contributions of other scope words,
    international signals (South-South, cross-border, macro-regions) and international
    organisations (broad cues capped); score = ``saturate(W, 2)``.

Overall score: ``0.40 b + 0.25 a + 0.15 c + 0.20 d`` (CBD relevance dominates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from harvester.classify import dates
from harvester.classify.evidence import (
    MAX_EVIDENCE,
    Hit,
    contributions,
    pick,
    saturate,
    to_evidence,
    totals_by_label,
)
from harvester.classify.model import CriterionScore, Evidence
from harvester.classify.vocab import SUPPORT_TYPES, topic_ids

K_SUPPORT, SUPPORT_MIN = 1.5, 1.0
K_CBD, TOPIC_MIN = 4.0, 1.0
CBD_MULTIPLIER = {"general": 1.0, "technology_transfer": 2.0}
TOPIC_MULTIPLIER = 1.0
K_SIGNALS = 2.0
K_INTERNATIONAL = 2.0
WEAK_CAP = 1.0
SCOPE_LABEL_WEIGHT = 2.0
OVERALL_WEIGHTS = {"cbd_relevance": 0.40, "support_type": 0.25, "active": 0.15, "international": 0.20}


def overall(scores: dict[str, float]) -> float:
    return sum(w * scores.get(name, 0.0) for name, w in OVERALL_WEIGHTS.items())


def _capped_total(
    hits: list[Hit], multiplier: dict[str, float] | None = None, default: float = 1.0
) -> tuple[float, dict[str, float], set[str]]:
    """(W with broad cues capped at WEAK_CAP, total per label, labels with a term of weight >= 1)."""
    weights = {(h.label, h.term): h.weight for h in hits}
    strong = weak = 0.0
    per_label: dict[str, float] = {}
    strong_labels: set[str] = set()
    for key, value in contributions(hits).items():
        label = key[0]
        per_label[label] = per_label.get(label, 0.0) + value
        scaled = (multiplier or {}).get(label, default) * value
        if weights[key] < 1.0:
            weak += scaled
        else:
            strong += scaled
            strong_labels.add(label)
    return strong + min(weak, WEAK_CAP), per_label, strong_labels


def support_type(hits: list[Hit]) -> tuple[CriterionScore, list[str]]:
    totals = totals_by_label(hits)
    score = max((saturate(totals.get(t, 0.0), K_SUPPORT) for t in SUPPORT_TYPES), default=0.0)
    types = [t for t in SUPPORT_TYPES if totals.get(t, 0.0) >= SUPPORT_MIN]
    evidence = [to_evidence(h, "support_type") for h in pick(hits, lambda h: h.label)]
    return CriterionScore(score, evidence), types


@dataclass(frozen=True)
class Relevance:
    score: CriterionScore
    topics: list[str]
    technology_transfer: bool


def cbd_relevance(hits: list[Hit]) -> Relevance:
    weighted, per_label, strong_labels = _capped_total(hits, CBD_MULTIPLIER, TOPIC_MULTIPLIER)
    known = set(topic_ids())
    topics = [t for t, v in per_label.items() if t in known and t in strong_labels and v >= TOPIC_MIN]
    topics.sort(key=lambda t: (-per_label[t], t))
    evidence = [to_evidence(h, "cbd_relevance") for h in pick(hits, lambda h: h.label)]
    return Relevance(
        CriterionScore(saturate(weighted, K_CBD), evidence), topics, per_label.get("technology_transfer", 0.0) > 0
    )


def _date_ev(field: str, raw: str | None, detail: str) -> Evidence:
    return Evidence(
        criterion="active", kind="date", text=str(raw), start=None, end=None, field=field, detail=detail, label="date"
    )


def _date_prior(
    start: str | None, end: str | None, published: str | None, today: date
) -> tuple[float, float, list[Evidence]]:
    """(prior, cap, evidence) from the candidate's dates."""
    end_d = dates.latest(end)
    if end_d is not None:
        days = (today - end_d).days
        if days <= 0:
            why = f"ends {end_d.isoformat()}, not before {today.isoformat()}: still running"
            return 0.7, 1.0, [_date_ev("end_date", end, why)]
        if days <= 365:
            why = f"ended {end_d.isoformat()}, {days} days before {today.isoformat()} (within a year)"
            return 0.35, 1.0, [_date_ev("end_date", end, why)]
        why = (
            f"ended {end_d.isoformat()}, {days / 365.25:.1f} years before {today.isoformat()}: "
            "not active (score capped at 0.15)"
        )
        return 0.0, 0.15, [_date_ev("end_date", end, why)]
    refs = [
        (name, raw, d)
        for name, raw, d in (
            ("start_date", start, dates.earliest(start)),
            ("published", published, dates.earliest(published)),
        )
        if d
    ]
    if not refs:
        return 0.0, 1.0, []
    name, raw, ref = max(refs, key=lambda r: r[2])
    days = (today - ref).days
    if days < 0:
        why = f"{name} {ref.isoformat()} is in the future: upcoming, no end date"
        return 0.6, 1.0, [_date_ev(name, raw, why)]
    years = days / 365.25
    prior = 0.5 if years <= 2 else 0.3 if years <= 5 else 0.1
    why = f"no end date; {name} {ref.isoformat()} is {years:.1f} years before {today.isoformat()}"
    why += f" (prior {prior})"
    return prior, 1.0, [_date_ev(name, raw, why)]


def active(hits: list[Hit], start: str | None, end: str | None, published: str | None, today: date) -> CriterionScore:
    prior, cap, evidence = _date_prior(start, end, published, today)
    totals = totals_by_label(hits)
    pos = saturate(totals.get("ongoing", 0.0), K_SIGNALS)
    neg = saturate(totals.get("past", 0.0), K_SIGNALS)
    score = min(cap, max(0.0, prior + 0.5 * pos - 0.5 * neg))
    for h in pick(hits, lambda h: h.label, MAX_EVIDENCE - len(evidence)):
        evidence.append(to_evidence(h, "active", "field" if h.field.startswith("extra.") else "term"))
    return CriterionScore(score, evidence)


def _is_prose(field: str) -> bool:
    return field in ("title", "summary", "text") or field.startswith("keywords[")


def _whole_value(h: Hit) -> bool:
    return not h.source[: h.start].strip() and not h.source[h.end :].strip()


def international(
    signals: list[Hit], organisations: list[Hit], countries: list[Hit], n_countries: int
) -> CriterionScore:
    explicit = [h for h in signals if h.label == "scope" and not _is_prose(h.field) and _whole_value(h)]
    weighted, _, _ = _capped_total([h for h in signals if h not in explicit] + organisations)
    weighted += (1.5 if n_countries >= 2 else 0.0) + (0.5 if n_countries >= 3 else 0.0)
    weighted += SCOPE_LABEL_WEIGHT if explicit else 0.0

    country_set, org_set = set(countries), set(organisations)

    def kind(h: Hit) -> str:
        if h in country_set:
            return "country"
        if h in org_set:
            return "org"
        return "term" if _is_prose(h.field) else "field"

    chosen = pick((countries if n_countries >= 2 else []) + organisations + signals, kind)
    evidence = [to_evidence(h, "international", kind(h)) for h in chosen]
    for e in evidence:
        if e.kind == "country" and e.field.startswith("countries["):
            e.detail = f"given country -> {e.label}"
        elif e.kind == "field" and e.label == "scope":
            e.detail = f"scope label {e.text!r} in {e.field}"
    return CriterionScore(saturate(weighted, K_INTERNATIONAL), evidence)
