"""Score the four CBD criteria from hits, dates and countries.

Every criterion turns a weighted total ``W`` into a score with ``saturate(W, K) = 1 - exp(-W / K)``
(0 with no evidence, 0.63 at ``W = K``, 0.86 at ``2K``, never above 1). ``W`` sums, per distinct
(label, term), ``weight x field factor`` of its best occurrence plus ``0.25 x weight`` for each
further occurrence (at most 4) -- see ``evidence.contributions``. Term weights are in the vocabulary
files (2 specific ... 0.5 broad); field factors in ``fields`` (title 2, keywords/metadata 1.5,
summary 1.25, text 1).

(a) support_type:  per X/16 type ``t``: ``s_t = saturate(W_t, 1.5)``; score = ``max_t s_t``.
    ``support_types`` lists every type with ``W_t >= 1`` (one full-weight cue).
(b) cbd_relevance: ``W = 1.0 x W_general + 1.5 x W_topics + 2.0 x W_technology_transfer``
    (Article 16 weighted highest); score = ``saturate(W, 4)``. ``topics`` lists topics with
    ``W_topic >= 1``, strongest first.
(c) active:        ``clamp(prior + 0.5 x saturate(W_ongoing, 2) - 0.5 x saturate(W_past, 2), 0, cap)``
    where the date prior is: end date today or later 0.7; ended within 365 days 0.35; ended
    earlier 0 with ``cap = 0.15``; no end date but start/published (latest of them) in the future
    0.6, within 2 years 0.5, within 5 years 0.3, older 0.1; no usable date 0.
(d) international: ``W = 1.5 if >= 2 distinct countries (+0.5 if >= 3)``, ``+ 2`` if a structured
    field (unresolved ``countries`` entry, ``regions``, ``extra``) is exactly a scope word
    ("Global", "Regional", "Transboundary"), plus the contributions of the other scope words and
    international signals (South-South, cross-border, macro-regions at 0.25) and of international
    organisations (listed in ``organisations``: factor 1.5; named in the text: factor 0.5), where broad cues (term weight < 1: "global",
    "regional" in prose, macro-regions) together count at most 1; score = ``saturate(W, 2)``.

Overall score: ``0.40 b + 0.25 a + 0.15 c + 0.20 d`` (CBD relevance dominates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from harvester.classify import dates
from harvester.classify.evidence import (
    MAX_EVIDENCE, Hit, contributions, pick, saturate, to_evidence, totals_by_label,
)
from harvester.classify.model import CriterionScore, Evidence
from harvester.classify.vocab import SUPPORT_TYPES, topic_ids

K_SUPPORT, SUPPORT_MIN = 1.5, 1.0
K_CBD, TOPIC_MIN = 4.0, 1.0
CBD_MULTIPLIER = {"general": 1.0, "technology_transfer": 2.0}
TOPIC_MULTIPLIER = 1.5
K_SIGNALS = 2.0
K_INTERNATIONAL = 2.0
WEAK_CAP = 1.0  # broad cues (weight < 1: "global", "regional", macro-regions) add up to at most this
SCOPE_LABEL_WEIGHT = 2.0  # a structured field whose whole value is a scope word ("Global", "Regional")
OVERALL_WEIGHTS = {"cbd_relevance": 0.40, "support_type": 0.25, "active": 0.15, "international": 0.20}


def overall(scores: dict[str, float]) -> float:
    return sum(w * scores.get(name, 0.0) for name, w in OVERALL_WEIGHTS.items())


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
    totals = totals_by_label(hits)
    weighted = sum(CBD_MULTIPLIER.get(label, TOPIC_MULTIPLIER) * v for label, v in totals.items())
    known = set(topic_ids())
    topics = sorted((t for t, v in totals.items() if t in known and v >= TOPIC_MIN), key=lambda t: (-totals[t], t))
    evidence = [to_evidence(h, "cbd_relevance") for h in pick(hits, lambda h: h.label)]
    return Relevance(CriterionScore(saturate(weighted, K_CBD), evidence), topics,
                     totals.get("technology_transfer", 0.0) > 0)


def _date_prior(start: str | None, end: str | None, published: str | None,
                today: date) -> tuple[float, float, list[Evidence]]:
    """(prior, cap, evidence) from the candidate's dates."""
    end_d = dates.latest(end)
    if end_d is not None:
        days = (today - end_d).days
        if days <= 0:
            return 0.7, 1.0, [_date_ev("end_date", end, f"ends {end_d.isoformat()}, not before {today.isoformat()}: "
                                                        "still running")]
        if days <= 365:
            return 0.35, 1.0, [_date_ev("end_date", end, f"ended {end_d.isoformat()}, {days} days before "
                                                         f"{today.isoformat()} (within a year)")]
        return 0.0, 0.15, [_date_ev("end_date", end, f"ended {end_d.isoformat()}, {days / 365.25:.1f} years before "
                                                     f"{today.isoformat()}: not active (score capped at 0.15)")]
    refs = [(name, raw, d) for name, raw, d in (("start_date", start, dates.earliest(start)),
                                                 ("published", published, dates.earliest(published))) if d]
    if not refs:
        return 0.0, 1.0, []
    name, raw, ref = max(refs, key=lambda r: r[2])
    days = (today - ref).days
    if days < 0:
        return 0.6, 1.0, [_date_ev(name, raw, f"{name} {ref.isoformat()} is in the future: upcoming, no end date")]
    years = days / 365.25
    prior = 0.5 if years <= 2 else 0.3 if years <= 5 else 0.1
    return prior, 1.0, [_date_ev(name, raw, f"no end date; {name} {ref.isoformat()} is {years:.1f} years before "
                                            f"{today.isoformat()} (date prior {prior})")]


def _date_ev(field: str, raw: str | None, detail: str) -> Evidence:
    return Evidence(criterion="active", kind="date", text=str(raw), start=None, end=None, field=field,
                    detail=detail, label="date")


def active(hits: list[Hit], start: str | None, end: str | None, published: str | None,
           today: date) -> CriterionScore:
    prior, cap, evidence = _date_prior(start, end, published, today)
    totals = totals_by_label(hits)
    pos = saturate(totals.get("ongoing", 0.0), K_SIGNALS)
    neg = saturate(totals.get("past", 0.0), K_SIGNALS)
    score = min(cap, max(0.0, prior + 0.5 * pos - 0.5 * neg))
    kind = {True: "field", False: "term"}
    evidence += [to_evidence(h, "active", kind[h.field.startswith("extra.")])
                 for h in pick(hits, lambda h: h.label, MAX_EVIDENCE - len(evidence))]
    return CriterionScore(score, evidence)


def _whole_value(h: Hit) -> bool:
    return not h.source[:h.start].strip() and not h.source[h.end:].strip()


def international(signals: list[Hit], organisations: list[Hit], countries: list[Hit],
                  n_countries: int) -> CriterionScore:
    explicit = [h for h in signals if h.label == "scope" and not _is_prose(h.field) and _whole_value(h)]
    weighted = (1.5 if n_countries >= 2 else 0.0) + (0.5 if n_countries >= 3 else 0.0)
    weighted += SCOPE_LABEL_WEIGHT if explicit else 0.0
    parts = contributions([h for h in signals if h not in explicit] + organisations)
    weights = {(h.label, h.term): h.weight for h in signals + organisations}
    weak = sum(v for k, v in parts.items() if weights[k] < 1.0)
    weighted += min(weak, WEAK_CAP) + sum(v for k, v in parts.items() if weights[k] >= 1.0)
    score = saturate(weighted, K_INTERNATIONAL)

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
    return CriterionScore(score, evidence)


def _is_prose(field: str) -> bool:
    return field in ("title", "summary", "text") or field.startswith("keywords[")
