"""Over-harvest quarantine on SQLite and PostgreSQL: real GCF records through the real store stage; a run
whose new records jump past its history is held out of the queue until an admin releases or discards it,
from the CLI or from the review app's admin page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, func, select

from harvester.cli import cli
from harvester.crawl.runs_extension import run_stats
from harvester.crawl.spider_loader import spider_class_for
from harvester.dedupe import record_hash
from harvester.extraction.records import apply_record, record_identity
from harvester.health.checks import check_source
from harvester.items import CandidateItem
from harvester.registry import load_registry
from harvester.settings import get_settings
from harvester.web.app import create_app
from harvester.web.auth import add_user
from pipelines.store import StorePipeline
from storage.db import dispose_engines, transaction
from storage.decisions import Actor, DecisionError, decide, undo_last
from storage.models import Candidate, CandidateStatus, CrawlRun, Decision, RunStatus
from storage.queue import QueueFilter, search_candidates
from storage.runs import ensure_source, finish_run, start_run

SOURCE = "gcf_projects"
API = "https://api.gcfund.org/v1/projects"
HIGH, LOW = 0.9, 0.1  # above / below the pending threshold


@pytest.fixture(scope="module")
def gcf_records(fixtures_dir: Path) -> list[dict[str, Any]]:
    return json.loads((fixtures_dir / "gcf" / "api-v1-projects-all-2023-02.json").read_text(encoding="utf-8"))


@pytest.fixture
def db(db_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The store stage writes through the configured database: point it at the test database."""
    monkeypatch.setenv("HARVESTER_DATABASE_URL", db_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("HARVESTER_QUARANTINE_FACTOR", "3")
    monkeypatch.setenv("HARVESTER_QUARANTINE_MIN_RECORDS", "20")
    get_settings.cache_clear()
    dispose_engines()
    yield db_engine
    get_settings.cache_clear()
    dispose_engines()


def crawl(records: list[dict[str, Any]], scores: list[float] | None = None) -> int:
    """One run of GCF records through the real store stage; returns the run id."""
    spec = load_registry()[SOURCE]
    with transaction() as session:
        ensure_source(session, spec.id, spec.name, spec.kind.value, True, True, "h")
        run_id = start_run(session, spec.id, "schedule", replay=True).id
    crawler = get_crawler(spider_class_for(spec), {"HARVESTER_PENDING_THRESHOLD": 0.5})
    assert crawler.stats is not None
    crawler.stats.open_spider()
    crawler.stats.set_value("harvester/run_id", run_id)
    store = StorePipeline.from_crawler(crawler)
    for i, record in enumerate(records):
        key, url = record_identity(record, spec.record, API)
        item = apply_record(CandidateItem(spec.id, url, API, record_key=key, raw=record), record, spec.record)
        item.canonical_url = url
        item.record_hash = record_hash(item.harvested_fields())
        item.score = scores[i] if scores else HIGH
        store.process_item(item)
    raw = {
        f"harvester/store/{k}": crawler.stats.get_value(f"harvester/store/{k}", 0)
        for k in ("new", "updated", "not_modified")
    }
    with transaction() as session:
        finish_run(
            session, run_id, RunStatus.FINISHED, "finished", run_stats(raw | {"item_scraped_count": len(records)})
        )
    return run_id


def pending_urls() -> set[str]:
    with transaction() as session:
        rows, _ = search_candidates(session, QueueFilter(status=CandidateStatus.PENDING), limit=None)
        return {c.url for c in rows}


def statuses(run_id: int) -> dict[str, int]:
    with transaction() as session:
        return dict(
            session.execute(
                select(Candidate.status, func.count())
                .where(Candidate.first_run_id == run_id)
                .group_by(Candidate.status)
            ).all()
        )


def run_row(run_id: int) -> CrawlRun:
    with transaction() as session:
        run = session.get_one(CrawlRun, run_id)
        session.expunge(run)
        return run


def test_normal_runs_are_not_quarantined(db: Engine, gcf_records: list[dict[str, Any]]) -> None:
    first = crawl(gcf_records[:30])  # the first crawl of a source has no history: never held
    second = crawl(gcf_records[:40])  # 10 new against a median of 30: normal growth
    assert (run_row(first).quarantine, run_row(second).quarantine) == (None, None)
    assert statuses(second) == {"pending": 10}
    assert len(pending_urls()) == 40


def test_an_over_harvest_is_held_out_of_the_queue_until_released(db: Engine, gcf_records: list[dict[str, Any]]) -> None:
    crawl(gcf_records[:10])
    crawl(gcf_records[:12])  # history of new records: 10, 2 -> median 6, limit max(18, 19) = 19
    before = pending_urls()
    with transaction() as session:  # a curator accepted one record that the big run will update
        accepted = session.scalars(select(Candidate).order_by(Candidate.id)).first()
        decide(session, accepted.id, "accept", Actor("ada"))
        accepted_id, accepted_url = accepted.id, accepted.url
    changed = [dict(r) for r in gcf_records[:12]]
    changed[0]["ProjectName"] = changed[0]["ProjectName"] + " (phase 2)"
    scores = [HIGH] * 12 + [HIGH if i % 3 else LOW for i in range(48)]
    big = crawl(changed + gcf_records[12:60], scores)

    run = run_row(big)
    assert run.quarantine == "held"
    assert run.quarantine_details["median_new"] == 6
    assert run.quarantine_details["new_records_at_hold"] == 20
    assert statuses(big) == {"quarantined": 48}
    assert pending_urls() == before - {accepted_url}, "nothing of the held run is in the queue"
    with transaction() as session:
        kept = session.get_one(Candidate, accepted_id)
        assert (kept.status, kept.changed_since_review) == ("accepted", True)  # the decision survives the update
        holds = session.scalars(select(Decision.from_status).where(Decision.reason_code == "quarantine")).all()
    assert sorted(holds) == ["filtered"] * 16 + ["pending"] * 32
    with transaction() as session:  # only the admin's release or discard moves a held candidate
        held_id = session.scalars(select(Candidate.id).where(Candidate.status == "quarantined")).first()
        for attempt in (
            lambda: decide(session, held_id, "accept", Actor("ada")),
            lambda: undo_last(session, held_id, Actor("ada")),
        ):
            with pytest.raises(DecisionError, match="held with a quarantined run"):
                attempt()

    result = CliRunner().invoke(cli, ["runs", "quarantined", "--json"])
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.output)
    assert (listed["run"], listed["source"], listed["held_candidates"]) == (big, SOURCE, 48)

    crawl(gcf_records[:60])  # the next crawl sees them unchanged: they stay held
    assert statuses(big) == {"quarantined": 48}

    result = CliRunner().invoke(cli, ["runs", "release", str(big), "--as", "root"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"run {big} released: 48 candidate(s) entered the queue as they would have"
    assert statuses(big) == {"pending": 32, "filtered": 16}
    assert len(pending_urls()) == len(before) - 1 + 32
    assert run_row(big).quarantine_details["released_by"] == "root"
    again = CliRunner().invoke(cli, ["runs", "release", str(big)])
    assert again.exit_code == 1
    assert f"run {big} is not held in quarantine (it was released)" in again.output


def test_a_discarded_over_harvest_is_kept_out_of_the_queue_and_audited(
    db: Engine, gcf_records: list[dict[str, Any]]
) -> None:
    crawl(gcf_records[:5])
    before = pending_urls()
    big = crawl(gcf_records[:45])  # 40 new against a median of 5
    assert statuses(big) == {"quarantined": 40}
    with transaction() as session:  # the health check tells the operator, once, until an admin decides
        [alert] = check_source(session, SOURCE).opened
        assert (alert.kind, alert.subject) == ("run_quarantined", f"run {big}")
        assert alert.message == (
            f"run {big} on {SOURCE} is held in over-harvest quarantine (more than 19 new "
            "records (median 5 over the last 1 finished run(s), factor 3)): release or discard it"
        )
    result = CliRunner().invoke(cli, ["runs", "discard", str(big), "--as", "root"])
    assert result.exit_code == 0, result.output
    with transaction() as session:
        assert [a.kind for a in check_source(session, SOURCE).resolved] == ["run_quarantined"]
    assert statuses(big) == {"filtered": 40}
    assert pending_urls() == before
    with transaction() as session:
        audit = session.execute(
            select(Decision.actor, Decision.from_status, Decision.to_status).where(
                Decision.reason_code == "quarantine_discarded"
            )
        ).all()
    assert set(audit) == {("root", "quarantined", "filtered")} and len(audit) == 40
    assert run_row(big).quarantine == "discarded"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_admins_release_a_quarantined_run_in_the_review_app(db: Engine, gcf_records: list[dict[str, Any]]) -> None:
    crawl(gcf_records[:5])
    big = crawl(gcf_records[:45])
    with transaction() as session:
        add_user(session, "ada", "curator", "curator-pass-1")
        add_user(session, "root", "admin", "admin-pass-12")
    with TestClient(create_app(db), follow_redirects=False) as curator:
        curator.post("/login", data={"name": "ada", "password": "curator-pass-1", "next": "/queue"})
        assert curator.get("/admin/quarantine").status_code == 403
        token = csrf_of(curator.get("/queue").text)
        refused = curator.post(f"/admin/quarantine/{big}", data={"action": "release", "csrf_token": token})
        assert refused.status_code == 403
    with TestClient(create_app(db), follow_redirects=False) as admin:
        admin.post("/login", data={"name": "root", "password": "admin-pass-12", "next": "/queue"})
        page = admin.get("/admin/quarantine")
        assert page.status_code == 200
        assert f'action="/admin/quarantine/{big}"' in page.text
        assert "more than 19 new records (median 5 over the last 1 finished run(s), factor 3)" in page.text
        no_token = admin.post(f"/admin/quarantine/{big}", data={"action": "release"})
        assert no_token.status_code == 403
        assert statuses(big) == {"quarantined": 40}
        done = admin.post(f"/admin/quarantine/{big}", data={"action": "release", "csrf_token": csrf_of(page.text)})
        assert done.status_code == 303
        assert "40+candidate" in done.headers["location"]
    assert statuses(big) == {"pending": 40}
    with transaction() as session:
        user_ids = set(session.scalars(select(Decision.user_id).where(Decision.reason_code == "quarantine_released")))
        assert len(user_ids) == 1 and None not in user_ids
