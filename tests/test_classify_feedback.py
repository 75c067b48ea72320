"""Learning at once: an accept or a reject moves the zero-shot ranking of the queue immediately,
from the stored embeddings (no retrain, no re-embedding), and an undo moves it back."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score
from sqlalchemy import Engine, select

from harvester.classify.feedback import adjusted, query_shift
from storage.db import session_factory, transaction
from storage.decisions import Actor, decide, undo_last
from storage.models import Candidate
from tests.test_classify_learning import IRRELEVANT, N_TRAIN, RELEVANT, add_source, gef_items, insert

CURATOR = Actor("curator")


def test_rocchio_shift_moves_scores_towards_accepted_and_away_from_rejected() -> None:
    accepted = np.array([[1.0, 0.0], [0.8, 0.2]])
    rejected = np.array([[0.0, 1.0]])
    shift = query_shift(accepted, rejected)
    assert shift is not None and np.allclose(shift, [0.9, -0.9])
    base = np.array([0.5, 0.5])
    moved = adjusted(base, np.array([[1.0, 0.0], [0.0, 1.0]]), shift, weight=1.0)
    assert moved[0] == 1 / (1 + np.exp(-0.9)) and moved[1] == 1 / (1 + np.exp(0.9))
    assert np.array_equal(adjusted(base, np.zeros((2, 2)), None), base)  # no decision: the zero-shot score
    assert query_shift(np.zeros((0, 2)), np.zeros((0, 2))) is None


def scores(engine: Engine, ids: list[int]) -> dict[int, tuple[float, str]]:
    with session_factory(engine)() as session:
        return {
            c.id: (c.score, c.classifier_version)
            for c in session.scalars(select(Candidate).where(Candidate.id.in_(ids)))
        }


def test_each_decision_moves_the_queue_at_once_and_undo_moves_it_back(db_engine: Engine) -> None:
    add_source(db_engine)
    ids = {area: [insert(db_engine, item, "pending") for item in items] for area, items in gef_items().items()}
    held_out = ids[RELEVANT][N_TRAIN:] + ids[IRRELEVANT][N_TRAIN:]
    labels = [1] * len(ids[RELEVANT][N_TRAIN:]) + [0] * len(ids[IRRELEVANT][N_TRAIN:])
    before = scores(db_engine, held_out)
    assert {v for _, v in before.values()} == {"zero-shot-1"}

    with transaction(db_engine) as session:  # a curator accepts 5 Biodiversity projects, rejects 5 chemicals ones
        for cid in ids[RELEVANT][:5]:
            decide(session, cid, "accept", CURATOR)
        for cid in ids[IRRELEVANT][:5]:
            decide(session, cid, "reject", CURATOR, reason="not_cbd_relevant")
    after = scores(db_engine, held_out)
    assert {v for _, v in after.values()} == {"zero-shot-1+feedback"}
    gap_before = np.mean([before[c][0] for c in ids[RELEVANT][N_TRAIN:]]) - np.mean(
        [before[c][0] for c in ids[IRRELEVANT][N_TRAIN:]]
    )
    gap_after = np.mean([after[c][0] for c in ids[RELEVANT][N_TRAIN:]]) - np.mean(
        [after[c][0] for c in ids[IRRELEVANT][N_TRAIN:]]
    )
    assert gap_after > gap_before  # held-out relevant projects rose relative to irrelevant ones
    auc_before = roc_auc_score(labels, [before[c][0] for c in held_out])
    auc_after = roc_auc_score(labels, [after[c][0] for c in held_out])
    assert auc_after >= auc_before - 0.01, (auc_before, auc_after)

    with transaction(db_engine) as session:  # undo every decision: back to the zero-shot score
        for cid in ids[RELEVANT][:5] + ids[IRRELEVANT][:5]:
            undo_last(session, cid, CURATOR)
    undone = scores(db_engine, held_out)
    # the crawl scored from the float32 vector, the refresh from the stored float16 one
    assert all(abs(undone[c][0] - before[c][0]) <= 2e-3 for c in held_out)
    assert {v for _, v in undone.values()} == {"zero-shot-1"}
