"""Evaluate ranking on a labelled set (``harvester classify eval``).

The file is JSON Lines, one record a line: ``{"id", "title", "text", "url"?, "label": 0|1,
"lang"?}``. Three rankers are scored on it: ``zero_shot``, the calibrated score the queue uses before
any decision (``harvester.classify.zero_shot``); ``rules``, the rules' weighted overall score; and
``model``, the learned model with k-fold cross-validation (every record scored by a model trained
without it). Every record is embedded once (in batches) and the vector shared by all three. Figures, overall and
per language: ROC AUC, average precision, recall at a review budget (default 10% of the records;
per language the budget is scaled to the language's share) and WSS@95. When every id has a
``group:`` prefix (``gef:123``), the same figures are given per group too. ``simulate_records``
replays active learning from a two-label start, as ASReview's simulation does, for one seed or
several (``simulate_seeds``: median and range of WSS@95).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from harvester.classify.classifier import classify
from harvester.classify.learn import (
    Doc,
    Simulation,
    cross_validated,
    default_budget,
    figures,
    model_text,
    rule_scores,
    simulate,
)
from harvester.classify.model import ClassifierInput
from harvester.jsonl import jsonl_lines

UNKNOWN_LANGUAGE = "und"


class LabelledSetError(ValueError):
    """A labelled file that cannot be used (unreadable, bad line, one class only)."""


@dataclass(frozen=True)
class LabelledRecord:
    id: str
    title: str
    text: str
    label: int
    lang: str
    url: str | None = None


def read_labelled(path: Path, detect_missing_language: bool = True) -> list[LabelledRecord]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledSetError(f"{path}: cannot read: {exc}") from None
    records, seen = [], set()
    for number, line in jsonl_lines(text):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledSetError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise LabelledSetError(f"{path}:{number}: expected an object")
        label = data.get("label")
        if label not in (0, 1) or isinstance(label, bool):
            raise LabelledSetError(f"{path}:{number}: label must be 0 or 1, got {label!r}")
        rid = str(data.get("id", number))
        if rid in seen:
            raise LabelledSetError(f"{path}:{number}: duplicate id {rid!r}")
        seen.add(rid)
        title, text = data.get("title") or "", data.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str) or not (title.strip() or text.strip()):
            raise LabelledSetError(f"{path}:{number}: needs a title or a text (strings)")
        lang = data.get("lang")
        if not isinstance(lang, str) or not lang.strip():
            lang = _detect(title, text) if detect_missing_language else UNKNOWN_LANGUAGE
        url = data.get("url")
        records.append(
            LabelledRecord(rid, title, text, int(label), lang.strip().lower(), url if isinstance(url, str) else None)
        )
    if not records:
        raise LabelledSetError(f"{path}: no records")
    return records


def _detect(title: str, text: str) -> str:
    from harvester.language import detect_language

    return detect_language(f"{title}\n{text[:2000]}", seed=0).code or UNKNOWN_LANGUAGE


def scored_docs(records: Sequence[LabelledRecord], today: date | None = None) -> tuple[list[Doc], list[float]]:
    """The model's docs (with their embeddings, computed once, in batches) and the rules' overall scores."""
    from harvester.classify.embedding import embed, embedding_text

    vectors = embed([embedding_text(r.title, None, r.text) for r in records])
    docs, scores = [], []
    for r, vector in zip(records, vectors, strict=True):
        result = classify(ClassifierInput(title=r.title, text=r.text, language=r.lang), today=today)
        docs.append(Doc(model_text(r.title, None, r.text), rule_scores(result), vector))
        scores.append(result.score)
    return docs, scores


def zero_shot_scores(docs: Sequence[Doc]) -> list[float]:
    """The queue's score with no decisions: the calibrated zero-shot probability."""
    from harvester.classify import zero_shot

    return zero_shot.score_docs(docs)


def _breakdown(records: Sequence[LabelledRecord], scores: Sequence[float], budget: int, **about: Any) -> dict[str, Any]:
    labels = [r.label for r in records]
    by_language: dict[str, Any] = {}
    total = len(records)
    for lang in sorted({r.lang for r in records}):
        idx = [i for i, r in enumerate(records) if r.lang == lang]
        scaled = max(1, round(budget * len(idx) / total))
        by_language[lang] = figures([labels[i] for i in idx], [scores[i] for i in idx], scaled)
    out = {**about, "all": figures(labels, scores, budget), "by_language": by_language}
    groups = {r.id.split(":", 1)[0] for r in records if ":" in r.id}
    if len(groups) > 1 and all(":" in r.id for r in records):
        out["by_group"] = {}
        for group in sorted(groups):
            idx = [i for i, r in enumerate(records) if r.id.split(":", 1)[0] == group]
            scaled = max(1, round(budget * len(idx) / total))
            out["by_group"][group] = figures([labels[i] for i in idx], [scores[i] for i in idx], scaled)
    return out


def evaluate(
    records: Sequence[LabelledRecord],
    *,
    budget: int | None = None,
    folds: int = 5,
    seed: int = 0,
    today: date | None = None,
    scored: tuple[list[Doc], list[float]] | None = None,
) -> dict[str, Any]:
    """Figures of the zero-shot score, the rules and the cross-validated model (``scored``: ``scored_docs``
    output, if known)."""
    from harvester.classify import zero_shot

    labels = [r.label for r in records]
    n, n_rel = len(labels), sum(labels)
    if n_rel == 0 or n_rel == n:
        raise LabelledSetError("the labelled set needs both relevant (1) and irrelevant (0) records")
    budget = default_budget(n) if budget is None else max(1, min(budget, n))
    docs, rules = scored or scored_docs(records, today)
    out: dict[str, Any] = {
        "n": n,
        "n_relevant": n_rel,
        "budget": budget,
        "languages": dict(Counter(r.lang for r in records).most_common()),
        "rankers": {
            "zero_shot": _breakdown(records, zero_shot_scores(docs), budget, how=zero_shot.calibration().explain()),
            "rules": _breakdown(records, rules, budget, how="criteria.overall: weighted criteria (a)-(d)"),
        },
    }
    if min(n_rel, n - n_rel) >= 2:
        k = min(folds, n_rel, n - n_rel)
        out["rankers"]["model"] = _breakdown(
            records,
            cross_validated(docs, labels, k, seed),
            budget,
            folds=k,
            how=f"learned re-ranker, {k}-fold cross-validated",
        )
    else:
        out["model_skipped"] = "cross-validation needs at least 2 relevant and 2 irrelevant records"
    return out


def simulate_records(
    records: Sequence[LabelledRecord],
    *,
    step: int = 10,
    seed: int = 0,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
    docs: list[Doc] | None = None,
) -> Simulation:
    docs = docs if docs is not None else scored_docs(records, today)[0]
    try:
        return simulate(docs, [r.label for r in records], step=step, seed=seed, progress=progress)
    except ValueError as exc:
        raise LabelledSetError(str(exc)) from None


def simulate_seeds(
    records: Sequence[LabelledRecord],
    *,
    seeds: int = 1,
    step: int = 10,
    seed: int = 0,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
    docs: list[Doc] | None = None,
) -> dict[str, Any]:
    """``seeds`` replays from different starting labels (seeds ``seed`` .. ``seed + seeds - 1``): the
    median replay's figures and curve, with ``wss_95`` the median and ``wss_95_range`` [min, max]."""
    docs = docs if docs is not None else scored_docs(records, today)[0]
    runs = [
        simulate_records(records, step=step, seed=s, docs=docs, progress=progress).as_dict()
        for s in range(seed, seed + max(1, seeds))
    ]
    values = [r["wss_95"] for r in runs]
    median = statistics.median(values)
    closest = min(runs, key=lambda r: abs(r["wss_95"] - median))
    return {
        **closest,
        "seeds": [r for r in range(seed, seed + len(runs))],
        "wss_95": median,
        "wss_95_range": [min(values), max(values)],
        "wss_95_runs": values,
    }
