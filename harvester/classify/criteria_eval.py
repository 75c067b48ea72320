"""Each CBD criterion's rules score measured against a partner's own labels
(``harvester classify eval --criteria FILE``).

The file is JSON Lines, one record a line: ``{"id", "title", "text", "lang"?, "as_of"?, "labels":
{criterion: 0|1|null}}`` for the criteria ``support_type``, ``cbd_relevance``, ``active`` and
``international``. A missing or null label means the partner's data says nothing about that
criterion for that record. ``as_of`` (YYYY-MM-DD) is the date the labels describe: the ``active``
criterion is scored as of it, not today. Per criterion: ROC AUC of the score against the labels, and
precision and recall of "criterion met" (score at or above ``threshold``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from harvester.classify.classifier import classify
from harvester.classify.evaluate import LabelledSetError
from harvester.classify.model import CRITERIA, ClassifierInput

MET_THRESHOLD = 0.5


@dataclass(frozen=True)
class CriteriaRecord:
    id: str
    title: str
    text: str
    lang: str
    labels: dict[str, int]
    as_of: date | None = None


def read_criteria_set(path: Path) -> list[CriteriaRecord]:
    """The records of a criteria file; ``LabelledSetError`` names the line of the first bad one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledSetError(f"{path}: cannot read: {exc}") from None
    records, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledSetError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
            raise LabelledSetError(f"{path}:{number}: expected an object with a 'labels' object")
        labels: dict[str, int] = {}
        for name, value in data["labels"].items():
            if name not in CRITERIA:
                raise LabelledSetError(f"{path}:{number}: unknown criterion {name!r} (known: {', '.join(CRITERIA)})")
            if value is None:
                continue
            if value not in (0, 1) or isinstance(value, bool):
                raise LabelledSetError(f"{path}:{number}: label of {name} must be 0, 1 or null, got {value!r}")
            labels[name] = int(value)
        rid = str(data.get("id", number))
        if rid in seen:
            raise LabelledSetError(f"{path}:{number}: duplicate id {rid!r}")
        seen.add(rid)
        title, text = data.get("title") or "", data.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str) or not (title.strip() or text.strip()):
            raise LabelledSetError(f"{path}:{number}: needs a title or a text (strings)")
        try:
            as_of = date.fromisoformat(data["as_of"]) if data.get("as_of") else None
        except (TypeError, ValueError):
            raise LabelledSetError(f"{path}:{number}: as_of must be a date YYYY-MM-DD, got {data['as_of']!r}") from None
        lang = data.get("lang") if isinstance(data.get("lang"), str) else None
        records.append(CriteriaRecord(rid, title, text, lang or "en", labels, as_of))
    if not records:
        raise LabelledSetError(f"{path}: no records")
    return records


def criterion_scores(records: Sequence[CriteriaRecord]) -> list[dict[str, float]]:
    """The rules' four criterion scores of each record, from its title and text alone."""
    out = []
    for r in records:
        result = classify(ClassifierInput(title=r.title, text=r.text, language=r.lang), today=r.as_of)
        out.append({name: result.criteria[name].score for name in CRITERIA})
    return out


def _figures(labels: list[int], scores: list[float], threshold: float) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    positives = sum(labels)
    met = [s >= threshold for s in scores]
    true_met = sum(1 for m, y in zip(met, labels, strict=True) if m and y)
    both = 0 < positives < len(labels)
    return {
        "n": len(labels),
        "n_positive": positives,
        "n_met": sum(met),
        "precision": round(true_met / sum(met), 4) if any(met) else None,
        "recall": round(true_met / positives, 4) if positives else None,
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4) if both else None,
    }


def evaluate_criteria(
    records: Sequence[CriteriaRecord], threshold: float = MET_THRESHOLD, scores: list[dict[str, float]] | None = None
) -> dict[str, Any]:
    """Per criterion with labels: how many records are labelled, positive and met, precision, recall, ROC AUC
    (``None`` where one class is missing). Criteria no record labels are listed as unsupported."""
    scores = scores if scores is not None else criterion_scores(records)
    out: dict[str, Any] = {"n": len(records), "threshold": threshold, "criteria": {}, "unlabelled": []}
    for name in CRITERIA:
        idx = [i for i, r in enumerate(records) if name in r.labels]
        if not idx:
            out["unlabelled"].append(name)
            continue
        out["criteria"][name] = _figures(
            [records[i].labels[name] for i in idx], [scores[i][name] for i in idx], threshold
        )
    if not out["criteria"]:
        raise LabelledSetError("no record has a label for any criterion")
    return out
