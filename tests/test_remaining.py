"""How many relevant records remain: the yield-curve estimate against screenings whose truth is known
(a generated one and a replayed active-learning screening of real labelled records), and the
"since last accept" stopping heuristic checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from harvester.classify.remaining import (
    MIN_DECISIONS,
    estimate_remaining,
    replay,
    screening_order,
    stopping_signal,
)


def test_stopping_signal_counts_rejects_since_the_last_accept() -> None:
    assert stopping_signal([1, 0, 1, 0, 0, 0], 100).since_last_accept == 3
    assert stopping_signal([1, 0, 1, 0, 0, 0], 100).target == 50  # max(50, 5% of 100)
    assert stopping_signal([0] * 10, 2000).target == 100  # 5% of 2000
    done = stopping_signal([1, 1, *[0] * 50], 60)
    assert done.met and "stopping point reached" in done.describe()
    assert not stopping_signal([], 60).met
    assert not stopping_signal([0] * 49, 60).met


def test_no_estimate_without_enough_evidence() -> None:
    few = estimate_remaining([1, 0] * 5, 100)
    assert few.expected is None and f"the fit needs {MIN_DECISIONS}" in few.why_not
    assert estimate_remaining([0] * 40, 100).why_not == "no accept yet"
    flat = estimate_remaining([1, 0, 0, 0] * 10, 100)  # the accept rate is not falling
    assert flat.expected is None and flat.why_not == "the accept rate is not clearly falling yet"
    assert "no estimate yet" in flat.describe()
    empty = estimate_remaining([1, 0] * 20, 0)
    assert (empty.expected, empty.low, empty.high) == (0.0, 0.0, 0.0)


def test_estimate_on_a_generated_screening_with_a_known_yield_curve() -> None:
    """Labels drawn from a falling accept rate: the estimate at 40% screened finds the truth in its interval."""
    rng = np.random.default_rng(7)
    total = 1000
    rate = 1 / (1 + np.exp(-(1.5 - 9.0 * np.arange(total) / total)))
    labels = (rng.random(total) < rate).astype(int).tolist()
    for screened in (300, 400, 600):
        truth = sum(labels[screened:])
        estimate = estimate_remaining(labels[:screened], total - screened)
        assert estimate.low <= truth <= estimate.high, (screened, truth, estimate)
        assert abs(estimate.expected - truth) <= max(3.0, 0.35 * truth), (screened, truth, estimate)
        assert estimate.method == "yield curve" and estimate.pool == total - screened


@pytest.mark.slow
def test_estimate_on_a_replayed_screening_of_real_records() -> None:
    """Active learning over real labelled records (GEF titles, Climate-ADAPT cases: the set of
    ``classify eval``); at each checkpoint the unscreened rest's relevant count is known."""
    from bench.build_labelled_set import build
    from harvester.classify.evaluate import LabelledRecord, scored_docs

    rows = build(n_gef_relevant=60, seed=0)[:240]
    records = [LabelledRecord(r["id"], r["title"], r["text"], r["label"], r.get("lang") or "en") for r in rows]
    labels = [r.label for r in records]
    order = screening_order(scored_docs(records)[0], labels, step=10, seed=0)
    assert sorted(order) == list(range(len(records)))
    points = replay(labels, order, [12, 48, 72, 96, 120, 168])
    assert [p.screened for p in points] == [12, 48, 72, 96, 120, 168]
    assert all(p.found + p.true_remaining == sum(labels) for p in points)
    assert points[0].estimate.expected is None  # 12 decisions: too few to say anything
    judged = [p for p in points if p.estimate.expected is not None]
    assert [p.screened for p in judged] == [72, 96, 120, 168]  # at 48 the ranker had found 25 of 26: nothing to fit
    # measured error (estimate - truth) at 72, 96, 120, 168 screened of 240 (26 relevant), with the embedding
    # features the screening model has had since issue 22
    assert [p.error for p in judged] == pytest.approx([-0.24, -0.89, 0.07, 0.0], abs=0.15)
    assert all(abs(p.error) < 1.0 for p in judged)  # from 30% screened on: off by less than one record
    assert judged[0].covered and judged[1].covered
