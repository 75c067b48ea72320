"""Classification speed on one core: the rules alone against the rules plus the learned model, in one run.

    python -m bench.classify_speed [--repeat 3]

Workload: the labelled set ``bench.build_labelled_set`` derives from the recorded captures (GEF
titles, Climate-ADAPT and AdapteCCA case studies with their full text), in memory. The model is
trained on that set first (training time is reported, not counted). Cases:

- ``rules``: ``classify()`` per document (criteria (a)-(d) with evidence, tags) -- the crawl
  without a model;
- ``rules + model, per item``: the same plus one model prediction per document, as the crawl's
  classify stage does with a trained model;
- ``model only, batch``: the model over every document at once from stored criterion scores, as
  ``harvester classify rescore`` does;
- ``rules + embedding + zero-shot, per item``: the crawl's classify stage as it runs now with no
  model: the rules, one embedding per document (``harvester.classify.embedding``) and the calibrated
  zero-shot score;
- ``embedding only, batches of 64``: the embeddings alone in batches, as ``classify eval`` computes them.

The process is pinned to one CPU and BLAS/OpenMP pools to one thread. Prints a table and a final
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits

from bench.build_labelled_set import build
from harvester.classify import ClassifierInput, classify, zero_shot
from harvester.classify.embedding import embed, embedding_text
from harvester.classify.learn import Doc, RelevanceModel, model_text, rule_scores


def pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned"


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pinned = pin_one_core()
    records = build()
    inputs = [ClassifierInput(title=r["title"], text=r["text"], language=r["lang"]) for r in records]
    n, chars = len(inputs), sum(len(r["title"]) + len(r["text"]) for r in records)

    with threadpool_limits(limits=1):
        results = [classify(i) for i in inputs]  # warm the vocabularies
        docs = [
            Doc(model_text(r["title"], None, r["text"]), rule_scores(c)) for r, c in zip(records, results, strict=True)
        ]
        start = time.perf_counter()
        model = RelevanceModel.train(docs, [r["label"] for r in records])
        train_s = time.perf_counter() - start

        def rules() -> None:
            for i in inputs:
                classify(i)

        def rules_and_model() -> None:
            for r, i in zip(records, inputs, strict=True):
                c = classify(i)
                model.predict([Doc(model_text(r["title"], None, r["text"]), rule_scores(c))])

        def model_batch() -> None:
            model.predict(docs)

        texts = [embedding_text(r["title"], None, r["text"]) for r in records]
        zero_shot.exemplars()  # load the encoder and embed the exemplars once, as a stage worker's warm-up does

        def rules_embedding_zero_shot() -> None:
            for text, i in zip(texts, inputs, strict=True):
                c = classify(i)
                zero_shot.score(embed([text]), [c.criteria["cbd_relevance"].score])

        def embedding_batches() -> None:
            embed(texts)

        cases = [
            ("rules", rules),
            ("rules + model, per item", rules_and_model),
            ("model only, batch", model_batch),
            ("rules + embedding + zero-shot, per item", rules_embedding_zero_shot),
            ("embedding only, batches of 64", embedding_batches),
        ]
        measured = {name: timed(fn, args.repeat) for name, fn in cases}

    base = n / measured["rules"]
    print(
        f"{n} documents, {chars / n:,.0f} characters on average; {pinned}, one BLAS/OpenMP thread; "
        f"model trained in {train_s:.2f} s; median of {args.repeat}"
    )
    print(f"{'case':40} {'seconds':>8} {'docs/s':>9} {'ms/doc':>7} {'vs rules':>9}")
    out = {}
    for name, seconds in measured.items():
        rate = n / seconds
        out[name] = {"seconds": round(seconds, 3), "docs_per_s": round(rate, 1), "ms_per_doc": round(1000 / rate, 3)}
        print(f"{name:40} {seconds:8.2f} {rate:9.1f} {1000 / rate:7.2f} {rate / base:8.2f}x")
    print(
        json.dumps(
            {
                "bench": "classify_speed",
                "documents": n,
                "avg_chars": round(chars / n),
                "python": platform.python_version(),
                "one_core": pinned,
                "train_seconds": round(train_s, 3),
                "cases": out,
                "model_overhead_per_item_ms": round(
                    1000 * (measured["rules + model, per item"] - measured["rules"]) / n, 3
                ),
                "embedding_overhead_per_item_ms": round(
                    1000 * (measured["rules + embedding + zero-shot, per item"] - measured["rules"]) / n, 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
