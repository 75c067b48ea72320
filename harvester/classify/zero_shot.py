"""Zero-shot relevance: the queue's score before any curator decision.

A calibrated probability that a curator accepts the candidate, from three features:

- ``relevant``: how close the candidate's embedding is to the CBD exemplars of ``exemplars.yaml``
  (the mean of its ``TOP_K`` best cosine similarities, each exemplar counted by its closest
  language version);
- ``irrelevant``: the same against the exemplars of what curators reject (chemicals and waste,
  energy, infrastructure, health, ...);
- ``cbd_relevance``: the rules' criterion (b) score (the vocabularies' lexicon evidence).

Combined by logistic regression (Platt-style: the fitted log-odds are the probability) whose
coefficients are in ``zero_shot.json``, fitted and cross-validated on public labelled data by
``python -m bench.fit_zero_shot``. Criteria (a), (c), (d) stay as evidence but are not in the score:
on publisher-labelled data they rank worse than (b) alone and dilute it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harvester.classify.embedding import embed

EXEMPLARS = Path(__file__).with_name("exemplars.yaml")
COEFFICIENTS = Path(__file__).with_name("zero_shot.json")
LANGUAGES = ("en", "fr", "es", "ru", "ar", "zh")
FEATURES = ("relevant", "irrelevant", "cbd_relevance")
TOP_K = 3
VERSION = "zero-shot-1"


class ExemplarError(ValueError):
    """An exemplar file that does not give every exemplar in the six languages."""


@dataclass(frozen=True)
class Exemplars:
    """Embedded exemplars: ``(exemplars, languages, DIM)`` per side."""

    relevant: np.ndarray
    irrelevant: np.ndarray


def read_exemplars(path: Path = EXEMPLARS) -> dict[str, list[dict[str, str]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for side in ("relevant", "irrelevant"):
        entries = data.get(side) if isinstance(data, dict) else None
        if not entries:
            raise ExemplarError(f"{path}: no {side!r} exemplars")
        for entry in entries:
            missing = [lang for lang in LANGUAGES if not str(entry.get(lang) or "").strip()]
            if missing:
                raise ExemplarError(f"{path}: exemplar {entry.get('id')!r} lacks {', '.join(missing)}")
    return data


@lru_cache(maxsize=1)
def exemplars() -> Exemplars:
    data = read_exemplars()

    def side(name: str) -> np.ndarray:
        entries = data[name]
        vectors = embed([e[lang] for e in entries for lang in LANGUAGES])
        return vectors.reshape(len(entries), len(LANGUAGES), -1)

    return Exemplars(side("relevant"), side("irrelevant"))


def _closeness(vectors: np.ndarray, side: np.ndarray) -> np.ndarray:
    sims = np.einsum("nd,eld->nel", vectors, side).max(axis=2)  # each exemplar by its closest language
    k = min(TOP_K, sims.shape[1])
    return np.sort(sims, axis=1)[:, -k:].mean(axis=1)


def features(vectors: np.ndarray, cbd_relevance: Sequence[float]) -> np.ndarray:
    """``(n, len(FEATURES))`` for embeddings ``vectors`` and the rules' criterion (b) scores."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(cbd_relevance), -1)
    ex = exemplars()
    return np.column_stack(
        [
            _closeness(vectors, ex.relevant),
            _closeness(vectors, ex.irrelevant),
            np.asarray(cbd_relevance, dtype=np.float32),
        ]
    )


@dataclass(frozen=True)
class Calibration:
    """Fitted logistic combination: ``p = 1 / (1 + exp(-(intercept + coef . x)))``."""

    coef: tuple[float, ...]
    intercept: float
    meta: Mapping[str, Any]

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, dtype=np.float64) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def explain(self) -> str:
        terms = " ".join(f"{c:+.2f}·{name}" for name, c in zip(FEATURES, self.coef, strict=True))
        return f"logistic({self.intercept:+.2f} {terms})"


@lru_cache(maxsize=1)
def calibration(path: Path = COEFFICIENTS) -> Calibration:
    data = json.loads(path.read_text(encoding="utf-8"))
    if tuple(data.get("features", ())) != FEATURES:
        raise ValueError(f"{path}: fitted for features {data.get('features')}, expected {list(FEATURES)}")
    return Calibration(tuple(float(c) for c in data["coef"]), float(data["intercept"]), data)


def score(vectors: np.ndarray, cbd_relevance: Sequence[float]) -> np.ndarray:
    """The calibrated probability that a curator accepts each candidate."""
    return calibration().probability(features(vectors, cbd_relevance))


def score_docs(docs: Sequence[Any]) -> list[float]:
    """``score`` for ``learn.Doc``s (their stored ``embedding``, their criterion scores in ``CRITERIA``
    order); a doc without an embedding is scored as an empty text would be."""
    from harvester.classify.embedding import DIM
    from harvester.classify.model import CRITERIA

    if not docs:
        return []
    b = CRITERIA.index("cbd_relevance")
    vectors = np.stack([d.embedding if d.embedding is not None else np.zeros(DIM, np.float32) for d in docs])
    return [float(p) for p in score(vectors, [d.rules[b] for d in docs])]


def describe() -> dict[str, Any]:
    """How the score is formed, for the app and the API."""
    cal = calibration()
    return {
        "version": VERSION,
        "formula": cal.explain(),
        "features": {
            "relevant": f"mean of the {TOP_K} best cosine similarities of the record's multilingual embedding "
            "to CBD exemplars (six UN languages)",
            "irrelevant": "the same against exemplars of out-of-scope records (chemicals, energy, infrastructure, ...)",
            "cbd_relevance": "the rules' criterion (b) score",
        },
        "fitted_on": cal.meta.get("fitted_on"),
        "cross_validated": cal.meta.get("cross_validated"),
    }


def score_basis(classifier_version: str | None) -> str:
    """One line on how a candidate's stored score was formed, from its ``classifier_version``."""
    if classifier_version == VERSION:
        return f"zero-shot, calibrated probability that a curator accepts: {calibration().explain()}"
    if classifier_version and classifier_version.startswith("rules-"):
        return "rules: criteria (a)-(d) weighted 0.25/0.40/0.15/0.20"
    if classifier_version:
        return (
            f"learned re-ranker {classifier_version}: logistic regression on character n-grams, criteria "
            "(a)-(d) and the embedding, trained on curator decisions"
        )
    return "not scored"
