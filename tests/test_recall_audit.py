"""The recall audit in the database: a crawl's random sample of what it filtered goes to the queue,
curators' decisions on it bound the recall of auto-exclusion, and the stopping signal waits for it."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from sqlalchemy import Engine, select

from bench.build_labelled_set import climate_adapt_records
from harvester.classify import ClassifierInput, classify, zero_shot
from harvester.classify.audit import clopper_pearson_upper
from harvester.classify.embedding import embed, embedding_text
from harvester.classify.remaining import stopping_signal
from harvester.classify.routing import route, thresholds
from storage.audit import draw_sample, recall_audit
from storage.db import session_factory, transaction
from storage.models import Candidate, CrawlRun, Decision, Source
from storage.queue import upsert_candidate

SOURCE = "climate_adapt_cases"


def crawl_cases(engine: Engine) -> tuple[int, dict[int, int]]:
    """Every Climate-ADAPT case study stored by one run, scored and triaged as the crawl does;
    returns the run id and each candidate's publisher label (sector "Biodiversity protection")."""
    cases = climate_adapt_records()
    vectors = embed([embedding_text(c["title"], None, c["text"]) for c in cases])
    b = [
        classify(ClassifierInput(title=c["title"], text=c["text"], language="en")).criteria["cbd_relevance"].score
        for c in cases
    ]
    scores = zero_shot.score(vectors, b)
    cut = thresholds(0.95).exclude_below
    labels = {}
    with transaction(engine) as session:
        session.add(Source(id=SOURCE, name="Climate-ADAPT", kind="export", config_hash="x"))
        session.flush()
        run = CrawlRun(source_id=SOURCE, trigger="schedule", status="finished")
        session.add(run)
        session.flush()
        for case, score in zip(cases, scores, strict=True):
            result = upsert_candidate(
                session,
                source_id=SOURCE,
                url=case["url"],
                record_hash=hashlib.sha256(case["url"].encode()).hexdigest(),
                run_id=run.id,
                initial_status=route(float(score), cut),
                values={
                    "title": case["title"],
                    "text": case["text"],
                    "score": float(score),
                    "fetched_url": case["url"],
                },
            )
            labels[result.candidate_id] = case["label"]
        return run.id, labels


def curators_decide(engine: Engine, ids: list[int], labels: dict[int, int]) -> None:
    with transaction(engine) as session:
        for row in session.scalars(select(Candidate).where(Candidate.id.in_(ids))):
            to = "accepted" if labels[row.id] else "rejected"
            session.add(Decision(candidate_id=row.id, actor="curator", from_status=row.status, to_status=to))
            row.status = to


def test_audit_sample_from_a_crawl_bounds_the_recall_of_exclusion(db_engine: Engine) -> None:
    run_id, labels = crawl_cases(db_engine)
    with session_factory(db_engine)() as session:
        filtered = set(session.scalars(select(Candidate.id).where(Candidate.status == "filtered")))
    assert len(filtered) >= 20  # the calibrated triage excludes a good share of the 146 case studies

    with transaction(db_engine) as session:
        sample = draw_sample(session, run_id, 10)
    assert len(sample) == 10 and set(sample) <= filtered
    with session_factory(db_engine)() as session:
        rows = {c.id: c for c in session.scalars(select(Candidate).where(Candidate.id.in_(sample)))}
        notes = list(session.scalars(select(Decision.note).where(Decision.candidate_id.in_(sample))))
    assert all(r.status == "pending" and r.audit_sample for r in rows.values())
    assert len(notes) == 10 and all(n.startswith("recall audit sample") for n in notes)
    with transaction(db_engine) as session:
        assert draw_sample(session, run_id, 0) == []  # 0 turns the audit off

    # curators decide on the samples and on every other pending candidate, by the publisher's label
    with session_factory(db_engine)() as session:
        pending = list(session.scalars(select(Candidate.id).where(Candidate.status == "pending")))
    curators_decide(db_engine, pending, labels)
    with session_factory(db_engine)() as session:
        audit = recall_audit(session)
    r = sum(labels[i] for i in sample)
    found = sum(labels[i] for i in pending)
    assert (audit.excluded, audit.sampled, audit.relevant_in_sample, audit.relevant_found) == (
        len(filtered),
        10,
        r,
        found,
    )
    p_u = clopper_pearson_upper(r, 10)
    assert audit.recall_at_least == pytest.approx(found / (found + (len(filtered) - 10) * p_u))
    assert audit.sentence().startswith(
        f"auto-excluded {len(filtered)}, sampled 10, relevant found {r}: recall at least"
    )
    true_recall = found / sum(labels.values())
    assert audit.recall_at_least <= true_recall  # a lower bound, here with ten samples a loose one

    # the stopping heuristic alone would stop; the audit's bound below the target keeps screening
    signal = stopping_signal([1] + [0] * 200, 201)
    assert signal.met
    audited = replace(signal, audit=audit, recall_target=0.95)
    assert not audited.met and "recall audit: auto-excluded" in audited.describe()
