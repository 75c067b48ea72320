"""Learning from curator decisions on real GEF records: retrain refuses without enough decisions,
a model trained on 60 decisions re-ranks held-out pending candidates, rescore never overrides a
curator, and the crawl's classify stage scores with the newest model.

Records: GEF Project Database export rows read at run time through the real spider and stages.
Relevant = focal area "Biodiversity" only, irrelevant = "Chemicals and Waste" only. The focal area
is also the record's keyword, so keywords are left out of the stored candidates: the model must
learn from titles (and the rule scores), not from the label itself.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner
from scrapy import Request
from scrapy.http import Headers
from scrapy.responsetypes import responsetypes
from sklearn.metrics import roc_auc_score
from sqlalchemy import Engine, func, select, update

from harvester.cli import cli
from harvester.crawl.spider_loader import spider_class_for
from harvester.items import CandidateItem
from harvester.recordings.fixtures import load_capture
from harvester.registry import load_registry
from harvester.stages import classify_item, process_offline
from pipelines.store import candidate_values
from storage.db import session_factory, transaction, upgrade
from storage.model_store import (
    MIN_DECISIONS,
    ModelUnavailable,
    NotEnoughDecisions,
    latest_model,
    library_version,
    list_models,
    rescore,
    retrain,
)
from storage.models import Candidate, ClassifierModel, Decision
from storage.queue import upsert_candidate

RELEVANT, IRRELEVANT = "Biodiversity", "Chemicals and Waste"
N_TRAIN, N_HELD_OUT = 30, 20  # per class


@cache
def gef_items() -> dict[str, tuple[CandidateItem, ...]]:
    """50 evenly spaced GEF projects of each focal area, through the real spider and stages."""
    spec = load_registry()["gef_projects"]
    capture = load_capture(spec.replay[0].fixture, spec.replay[0].url)
    headers = Headers(capture.headers())
    response = responsetypes.from_args(headers=headers, url=capture.url, body=capture.body)(
        url=capture.url,
        status=200,
        headers=headers,
        body=capture.body,
        request=Request(capture.url, meta={"window": 0, "window_records": 0}),
    )
    by_area: dict[str, list[CandidateItem]] = {RELEVANT: [], IRRELEVANT: []}
    for item in spider_class_for(spec)().records(response):
        area = (item.raw or {}).get("Focal Areas")
        if area in by_area:
            by_area[area].append(item)
    out = {}
    for area, items in by_area.items():
        items.sort(key=lambda i: int(i.record_key or 0))
        step = len(items) // (N_TRAIN + N_HELD_OUT)
        chosen = items[::step][: N_TRAIN + N_HELD_OUT]
        out[area] = tuple(process_offline(i, spec) for i in chosen)
        for item in out[area]:
            item.keywords = []  # the focal area is the label: keep it out of the features
            classify_item(item)
    return out


def insert(engine: Engine, item: CandidateItem, status: str) -> int:
    with transaction(engine) as session:
        return upsert_candidate(
            session,
            source_id="gef_projects",
            url=item.url,
            record_hash=item.record_hash or "",
            run_id=None,
            initial_status=status,
            values=candidate_values(item),
        ).candidate_id


def decide(engine: Engine, candidate_id: int, to_status: str, reason: str | None = None) -> None:
    with transaction(engine) as session:
        row = session.get(Candidate, candidate_id)
        assert row is not None
        session.add(
            Decision(
                candidate_id=candidate_id,
                actor="curator",
                from_status=row.status,
                to_status=to_status,
                reason_code=reason,
                field_diff={},
                model_version=row.classifier_version,
                score_shown=row.score,
            )
        )
        row.status = to_status


def add_source(engine: Engine) -> None:
    from storage.models import Source

    with transaction(engine) as session:
        session.add(Source(id="gef_projects", name="GEF", kind="export", config_hash="x"))


def load_decided(engine: Engine) -> tuple[list[int], list[int], list[int]]:
    """Train half decided by curators; held-out candidates left pending. Returns (accepted, rejected, held-out)."""
    add_source(engine)
    accepted, rejected, held_out = [], [], []
    for area, items in gef_items().items():
        for i, item in enumerate(items):
            cid = insert(engine, item, "pending")
            if i >= N_TRAIN:
                held_out.append(cid)
            elif area == RELEVANT:
                decide(engine, cid, "accepted")
                accepted.append(cid)
            else:
                decide(engine, cid, "rejected", "not_cbd_relevant")
                rejected.append(cid)
    return accepted, rejected, held_out


def state(engine: Engine) -> dict[int, tuple]:
    with session_factory(engine)() as session:
        rows = session.scalars(select(Candidate))
        return {c.id: (c.status, c.score, c.classifier_version, c.version_id) for c in rows}


def test_retrain_refuses_with_fewer_decisions_than_the_minimum(db_engine: Engine) -> None:
    add_source(db_engine)
    items = gef_items()
    for i in range(MIN_DECISIONS - 1):
        area = RELEVANT if i % 2 else IRRELEVANT
        cid = insert(db_engine, items[area][i // 2], "pending")
        decide(
            db_engine,
            cid,
            "accepted" if area == RELEVANT else "rejected",
            None if area == RELEVANT else "not_cbd_relevant",
        )
    with pytest.raises(NotEnoughDecisions) as refused:
        retrain(db_engine)
    assert str(refused.value).startswith(
        "not enough curator decisions to train: 19 usable (9 accepted, 10 rejected); retrain needs at least 20"
    )
    with session_factory(db_engine)() as session:
        assert session.scalar(select(func.count()).select_from(ClassifierModel)) == 0
        assert latest_model(session) is None


def test_retrain_refuses_with_accepts_only_and_ignores_duplicate_rejects(db_engine: Engine) -> None:
    add_source(db_engine)
    relevant = gef_items()[RELEVANT]
    for item in relevant[:25]:
        decide(db_engine, insert(db_engine, item, "pending"), "accepted")
    for item in gef_items()[IRRELEVANT][:5]:
        decide(db_engine, insert(db_engine, item, "pending"), "rejected", "duplicate")
    with pytest.raises(NotEnoughDecisions) as refused:
        retrain(db_engine)
    assert "25 usable (25 accepted, 0 rejected, 5 duplicate rejects left out)" in str(refused.value)


def test_retrain_on_60_decisions_reranks_held_out_pending_candidates(db_engine: Engine) -> None:
    accepted, rejected, held_out = load_decided(db_engine)
    with session_factory(db_engine)() as session:
        before = {c.id: (c.score, c.classifier_version) for c in session.scalars(select(Candidate))}
    assert {v for _, v in before.values()} == {"zero-shot-1"}

    row = retrain(db_engine)
    version = row.version
    assert row.n_train == 60
    assert row.metrics["n_accepted"] == 30 and row.metrics["n_rejected"] == 30
    assert row.metrics["reject_reasons"] == {"not_cbd_relevant": 30}
    assert row.metrics["cv_folds"] == 5 and row.metrics["model"]["n"] == 60
    assert row.metrics["zero_shot"]["n"] == 60  # the zero-shot score on the same decisions, for comparison
    assert version.startswith("lr-") and len(version) <= 40

    report = rescore(db_engine, threshold=0.5)
    assert report.version == version
    assert report.scored == len(held_out) == 40
    with session_factory(db_engine)() as session:
        rows = {c.id: c for c in session.scalars(select(Candidate))}
    assert {rows[i].classifier_version for i in held_out} == {version}
    labels = [int(rows[i].title in {it.title for it in gef_items()[RELEVANT]}) for i in held_out]
    assert sum(labels) == 20
    held_out_auc = roc_auc_score(labels, [rows[i].score for i in held_out])
    assert held_out_auc > 0.8, held_out_auc
    rules_auc = roc_auc_score(labels, [before[i][0] for i in held_out])
    print(f"held-out ROC AUC: model {held_out_auc:.3f}, rules {rules_auc:.3f}")
    for i in held_out:  # routed by the model's score, no curator decision on them
        assert rows[i].status == ("pending" if rows[i].score >= 0.5 else "filtered")
    for i in accepted + rejected:  # curator decisions untouched
        assert (rows[i].score, rows[i].classifier_version) == before[i]
        assert rows[i].status == ("accepted" if i in accepted else "rejected")


def test_rescore_never_overrides_a_curator(db_engine: Engine) -> None:
    accepted, rejected, held_out = load_decided(db_engine)
    retrain(db_engine)
    deferred, reopened = held_out[0], held_out[-1]
    decide(db_engine, deferred, "deferred")
    decide(db_engine, reopened, "pending")  # a curator put it (back) in the queue
    before = state(db_engine)
    high = rescore(db_engine, threshold=1.0)  # everything scores below: all would be filtered
    after = state(db_engine)
    for cid in [*accepted, *rejected, deferred]:
        assert after[cid] == before[cid]
    assert after[reopened][0] == "pending"
    assert high.kept_by_curator == 1
    assert {after[c][0] for c in held_out if c not in (deferred, reopened)} == {"filtered"}
    assert high.to_filtered == 38

    low = rescore(db_engine, threshold=0.0)  # filtered candidates come back: routing is reversible
    with session_factory(db_engine)() as session:
        statuses = {c.id: c.status for c in session.scalars(select(Candidate))}
    assert {statuses[c] for c in held_out if c != deferred} == {"pending"}
    assert low.to_pending == 38 and low.kept_by_curator == 0


def test_rescore_without_a_model_reroutes_by_the_zero_shot_score(db_engine: Engine) -> None:
    accepted, rejected, held_out = load_decided(db_engine)
    before = state(db_engine)
    report = rescore(db_engine, threshold=0.3)
    after = state(db_engine)
    assert (report.version, report.scored) == ("zero-shot-1", 40)
    for cid in held_out:
        status, score, version, _ = after[cid]
        # the zero-shot score, from the stored (float16) embedding and (4-decimal) criterion scores
        assert (score, version) == (pytest.approx(before[cid][1], abs=1e-3), "zero-shot-1")
        assert status == ("pending" if score >= 0.3 else "filtered")
    assert report.to_filtered == sum(1 for c in held_out if after[c][0] == "filtered") > 0
    assert all(after[c] == before[c] for c in accepted + rejected)


def test_a_model_from_another_scikit_learn_is_not_loaded(db_engine: Engine) -> None:
    load_decided(db_engine)
    row = retrain(db_engine)
    with transaction(db_engine) as session:
        session.execute(update(ClassifierModel).values(library_version="scikit-learn 0.1"))
    with session_factory(db_engine)() as session, pytest.raises(ModelUnavailable) as refused:
        latest_model(session)
    assert str(refused.value) == (
        f"model {row.version} was trained with scikit-learn 0.1, this installation has "
        f"{library_version()}: run `harvester classify retrain`"
    )


def test_crawl_stage_scores_with_the_newest_model(db_engine: Engine) -> None:
    load_decided(db_engine)
    version = retrain(db_engine).version
    with session_factory(db_engine)() as session:
        model = latest_model(session)
        assert [m.version for m in list_models(session)] == [version]
    assert model is not None and model.version == version
    relevant, irrelevant = gef_items()[RELEVANT][-1], gef_items()[IRRELEVANT][-1]
    for item in (relevant, irrelevant):
        rules_criteria = {k: v.score for k, v in item.criteria.items()}
        classify_item(item, model)
        assert item.classifier_version == version
        assert {k: v.score for k, v in item.criteria.items()} == rules_criteria  # evidence stays the rules'
    assert relevant.score > irrelevant.score
    for item in (relevant, irrelevant):
        classify_item(item)  # leave the cached items as the crawl without a model scored them
        assert item.classifier_version == "zero-shot-1"


def test_cli_retrain_refuses_in_one_line_then_trains_and_rescores(harvester_env: Path) -> None:
    from storage.db import get_engine

    upgrade()
    engine = get_engine()
    runner = CliRunner()
    add_source(engine)
    refused = runner.invoke(cli, ["classify", "retrain"])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1
    assert refused.output.startswith("error: not enough curator decisions to train: 0 usable")

    for area, items in gef_items().items():
        for i, item in enumerate(items):
            cid = insert(engine, item, "pending")
            if i < N_TRAIN:
                decide(
                    engine,
                    cid,
                    "accepted" if area == RELEVANT else "rejected",
                    None if area == RELEVANT else "not_cbd_relevant",
                )
    trained = runner.invoke(cli, ["classify", "retrain", "--json"])
    assert trained.exit_code == 0, trained.output
    import json

    version = json.loads(trained.output)["version"]
    rescored = runner.invoke(cli, ["classify", "rescore", "--threshold", "0.5", "--json"])
    assert rescored.exit_code == 0, rescored.output
    report = json.loads(rescored.output)
    assert (report["version"], report["threshold"], report["scored"]) == (version, 0.5, 40)
    listed = runner.invoke(cli, ["classify", "models", "--json"])
    assert [m["version"] for m in json.loads(listed.output)] == [version]
    bad = runner.invoke(cli, ["classify", "rescore", "--threshold", "1.5"])
    assert bad.exit_code == 2 and "1.5 is not in the range" in bad.output
