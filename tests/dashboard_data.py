"""Demo-like data for the chart tests: two recorded partner captures stored over three runs each, a
curator screening the pending queue best-first, a model trained on those decisions and a health check.

Every figure a chart shows comes out of these real steps (upserts, decisions, retrain, rescore, health),
none is written into the database by hand. The simulated curator accepts what the rules found a support
type in (criterion (a) >= 0.5), so the screening is deterministic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, select

from harvester.crawl.offline import candidates_from_response
from harvester.health.checks import check_sources, field_fill_stats
from harvester.items import CandidateItem
from harvester.recordings.fixtures import load_capture
from harvester.recordings.warc import RecordedResponse
from harvester.registry import load_registry
from harvester.stages import apply_hashes
from harvester.web.auth import add_user
from pipelines.store import candidate_values
from storage.db import transaction
from storage.decisions import Actor, decide
from storage.model_store import rescore, retrain
from storage.models import Candidate, RunStatus
from storage.queue import Outcome, upsert_candidate
from storage.runs import ensure_source, finish_run, start_run

SOURCES = ("gcf_projects", "adaptecca_cases")
CURATOR, PASSWORD = "ada", "curator-pass-1"
SCREENED = 120  # decisions taken, best-ranked first
THRESHOLD = 0.35


@dataclass
class DemoData:
    items: dict[str, list[CandidateItem]]
    run_ids: dict[str, list[int]] = field(default_factory=dict)
    decided: list[tuple[int, int]] = field(default_factory=list)  # (candidate id, 1 accept / 0 reject), in order


def capture_items(source: str) -> list[CandidateItem]:
    spec = load_registry()[source]
    capture = load_capture(spec.replay[0].fixture)
    return candidates_from_response(spec, RecordedResponse(capture.url, 200, capture.headers(), capture.body)).items


def store_run(engine: Engine, source: str, items: list[CandidateItem], errors: int = 0) -> int:
    """One run: every item upserted, the stats counted from the real outcomes, field fill rates measured."""
    started = time.monotonic()
    with transaction(engine) as session:
        ensure_source(session, source, source, "api", True, True, "h")
        run = start_run(session, source, "test", replay=True)
        outcomes = [
            upsert_candidate(
                session,
                source_id=source,
                url=i.canonical_url or i.url,
                record_hash=i.record_hash or "h",
                run_id=run.id,
                initial_status="pending",
                values=candidate_values(i),
            ).outcome
            for i in items
        ]
        stats: dict[str, Any] = {
            "requests": 1 + errors,
            "items": len(items),
            "errors": errors,
            **{o.value: outcomes.count(o) for o in Outcome},
        }
        session.flush()
        stats |= field_fill_stats(session, run.id)
        stats["duration_s"] = round(time.monotonic() - started, 3)
        finish_run(session, run.id, RunStatus.FINISHED, "finished", stats)
        return run.id


def _edited(item: CandidateItem, **fields: Any) -> CandidateItem:
    """The same record with other field values and the hashes that follow, as the next crawl would see it."""
    edited = replace(item, **fields)
    apply_hashes(edited)
    return edited


def build(engine: Engine) -> DemoData:
    data = DemoData({source: capture_items(source) for source in SOURCES})
    for source, items in data.items.items():
        ids = [store_run(engine, source, items)]
        revised = [_edited(i, title=f"{i.title} (revised)") for i in items[:5]]
        ids.append(store_run(engine, source, [*revised, *items[5:]]))
        # the third run: some requests failed and the summary selector broke (drift: every summary empty)
        ids.append(store_run(engine, source, [_edited(i, summary=None) for i in items], errors=3))
        data.run_ids[source] = ids
    with transaction(engine) as session:
        add_user(session, CURATOR, "curator", PASSWORD)
        queue = session.execute(
            select(Candidate.id, Candidate.criteria)
            .where(Candidate.status == "pending")
            .order_by(Candidate.score.desc(), Candidate.id)
            .limit(SCREENED)
        ).all()
        for cid, criteria in queue:
            label = int(float((criteria.get("support_type") or {}).get("score", 0)) >= 0.5)
            decide(
                session,
                cid,
                "accept" if label else "reject",
                Actor(CURATOR, None),
                reason=None if label else "not_cbd_relevant",
            )
            data.decided.append((cid, label))
    retrain(engine)
    rescore(engine, threshold=THRESHOLD)
    with transaction(engine) as session:
        check_sources(session, SOURCES)
    return data
