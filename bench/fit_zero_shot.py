"""Refit the zero-shot score's combination weights (``harvester/classify/zero_shot.json``).

    python -m bench.fit_zero_shot [--labelled FILE] [--out FILE] [--seed S]

Builds the public labelled set from the shared captures at run time (``bench.build_labelled_set``:
GEF focal areas, Climate-ADAPT sectors, AdapteCCA sectors) unless ``--labelled`` gives one, embeds
every record once, computes the three zero-shot features and fits a logistic regression on them
(weak regularisation: three features, hundreds of records). Writes the coefficients with the
5-fold cross-validated ROC AUC and WSS@95 of the combination and of each feature alone, so a refit
that ranks worse shows in the diff, and the percentiles of the out-of-fold probabilities of the
relevant records, from which ``harvester.classify.routing`` derives the exclusion threshold for a
recall target. Only the coefficients are committed, never the labelled data.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from harvester.classify import zero_shot
from harvester.classify.embedding import MODEL, embed, embedding_text
from harvester.classify.evaluate import LabelledRecord, read_labelled, scored_docs
from harvester.classify.learn import figures

C = 1000.0
FOLDS = 5


def _records(path: Path | None, seed: int) -> list[LabelledRecord]:
    if path is not None:
        return read_labelled(path)
    from bench.build_labelled_set import build

    return [
        LabelledRecord(r["id"], r["title"], r["text"], r["label"], r["lang"], r.get("url")) for r in build(seed=seed)
    ]


def fit(records: list[LabelledRecord], seed: int = 0) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.array([r.label for r in records])
    docs, _ = scored_docs(records)
    vectors = embed([embedding_text(r.title, None, r.text) for r in records])
    x = zero_shot.features(vectors, [d.rules[1] for d in docs])
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    oof = cross_val_predict(LogisticRegression(C=C), x, y, cv=folds, method="predict_proba")[:, 1]
    model = LogisticRegression(C=C).fit(x, y)

    def brief(scores: np.ndarray) -> dict[str, float | None]:
        f = figures(y, scores)
        return {"roc_auc": round(f["roc_auc"], 4), "wss_95": round(f["wss_95"], 4)}

    return {
        "features": list(zero_shot.FEATURES),
        "coef": [round(float(c), 4) for c in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 4),
        "embedding": MODEL,
        "top_k": zero_shot.TOP_K,
        "fitted_on": {
            "n": len(records),
            "n_relevant": int(y.sum()),
            "sources": dict(Counter(r.id.split(":", 1)[0] for r in records)),
            "languages": dict(Counter(r.lang for r in records).most_common()),
            "command": "python -m bench.fit_zero_shot",
        },
        "cross_validated": {
            "folds": FOLDS,
            "combined": brief(oof),
            **{name: brief(x[:, i]) for i, name in enumerate(zero_shot.FEATURES)},
        },
        "relevant_percentiles": [round(float(v), 5) for v in np.percentile(oof[y == 1], np.arange(101))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=Path, default=None, help="labelled JSONL (default: build it now)")
    parser.add_argument("--out", type=Path, default=zero_shot.COEFFICIENTS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    result = fit(_records(args.labelled, args.seed), args.seed)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result["cross_validated"]))
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
