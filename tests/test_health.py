"""Source health on SQLite and PostgreSQL: alerts from run histories in crawl_runs (stats in the shape
harvester.crawl.runs_extension.run_stats writes), field drift from real GCF candidates, one open alert per
(source, kind, subject), resolution when the condition clears, and `harvester sources health`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

from harvester.cli import cli
from harvester.crawl.runs_extension import run_stats
from harvester.dedupe import record_hash
from harvester.extraction.records import apply_record, record_identity
from harvester.health.checks import RunView, check_source, evaluate_run, field_fill_stats
from harvester.items import CandidateItem
from harvester.registry import load_registry
from pipelines.store import candidate_values
from storage.db import transaction
from storage.models import Alert, AlertKind, CandidateStatus, CrawlRun, RunStatus
from storage.queue import upsert_candidate
from storage.runs import ensure_source, finish_run, start_run

SOURCE = "gef_projects"
API = "https://api.gcfund.org/v1/projects"


def raw_stats(records: int = 200, new: int = 0, updated: int = 0, errors: int = 0, requests: int = 2) -> dict[str, Any]:
    """Scrapy's own stats keys plus the harvester's, as a crawl leaves them (run_stats turns them into the row)."""
    start = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    return {
        "downloader/request_count": requests,
        "downloader/response_status_count/200": requests - errors,
        "downloader/response_status_count/503": errors,
        "item_scraped_count": records,
        "harvester/store/new": new,
        "harvester/store/updated": updated,
        "harvester/store/not_modified": records - new - updated,
        "harvester/pages/parsed": 1,
        "harvester/errors": errors,
        "start_time": start,
        "finish_time": start + timedelta(seconds=42),
    }


def add_run(
    engine: Engine,
    raw: dict[str, Any] | None = None,
    status: str = RunStatus.FINISHED,
    reason: str = "finished",
    source: str = SOURCE,
) -> int:
    with transaction(engine) as session:
        ensure_source(session, source, source, "export", True, True, "h")
        run_id = start_run(session, source, "schedule", replay=True).id
        stats = run_stats(raw or {}) | field_fill_stats(session, run_id)  # as RunExtension.spider_closed does
        finish_run(session, run_id, status, reason, stats)
    return run_id


def check(engine: Engine, source: str = SOURCE, now: datetime | None = None) -> list[Alert]:
    with transaction(engine) as session:
        check_source(session, source, now)
        return list(session.scalars(select(Alert).where(Alert.source_id == source).order_by(Alert.id)))


def open_kinds(alerts: list[Alert]) -> list[str]:
    return sorted(a.kind for a in alerts if a.resolved_at is None)


def steady(engine: Engine, runs: int = 4) -> None:
    for i in range(runs):
        add_run(engine, raw_stats(records=200 + i, new=i, updated=1))


def test_a_steady_source_raises_nothing(db_engine: Engine) -> None:
    steady(db_engine, 5)
    assert check(db_engine) == []


def test_a_run_with_zero_records_raises_zero_items(db_engine: Engine) -> None:
    steady(db_engine)
    run = add_run(db_engine, raw_stats(records=0))
    [alert] = check(db_engine)
    assert (alert.kind, alert.run_id) == (AlertKind.ZERO_ITEMS, run)
    assert alert.message == f"run {run} on {SOURCE} finished with no records (median of the 4 run(s) before: 201.5)"


def test_an_error_spike_is_raised_against_the_usual_error_rate(db_engine: Engine) -> None:
    for _ in range(3):
        add_run(db_engine, raw_stats(records=200, requests=120, errors=1))
    add_run(db_engine, raw_stats(records=200, requests=120, errors=60))
    [alert] = check(db_engine)
    assert alert.kind == AlertKind.ERROR_SPIKE
    assert alert.message.startswith(f"error rate 30% (60 errors) on {SOURCE} in run 4")
    assert alert.details["median_rate"] == 0.005


def test_a_not_modified_collapse_is_raised_when_unchanged_records_stop_being_recognised(db_engine: Engine) -> None:
    for _ in range(3):
        add_run(db_engine, raw_stats(records=200, updated=2))  # 198 of 200 not_modified, night after night
    add_run(db_engine, raw_stats(records=200, updated=200))  # every record rewritten: hash or ETag broke
    [alert] = check(db_engine)
    assert alert.kind == AlertKind.NOT_MODIFIED_COLLAPSE
    assert "not_modified fell to 0% of records" in alert.message and "usually 99%" in alert.message


def test_item_count_drops_and_jumps_are_raised_against_the_median(db_engine: Engine) -> None:
    steady(db_engine)
    add_run(db_engine, raw_stats(records=60))
    assert open_kinds(check(db_engine)) == [AlertKind.ITEM_COUNT_DROP]
    add_run(db_engine, raw_stats(records=900))
    alerts = check(db_engine)
    assert open_kinds(alerts) == [AlertKind.ITEM_COUNT_JUMP]
    drop = next(a for a in alerts if a.kind == AlertKind.ITEM_COUNT_DROP)
    assert drop.resolved_at is not None
    assert "900 records on gef_projects in run 6, up from a median of 201" in alerts[-1].message


def test_repeated_failures_raise_an_alert_that_a_finished_run_resolves(db_engine: Engine) -> None:
    steady(db_engine, 2)
    add_run(db_engine, raw_stats(records=3), RunStatus.FAILED, "closespider_timeout")
    assert check(db_engine) == []  # one failure is not yet a pattern
    add_run(db_engine, raw_stats(records=0), RunStatus.INTERRUPTED, "stale heartbeat")
    [alert] = check(db_engine)
    assert alert.kind == AlertKind.REPEATED_FAILURES
    assert alert.message == (
        f"2 runs in a row failed or were interrupted on {SOURCE} since run 3 (last: interrupted, "
        "stale heartbeat); still scheduled, with back-off"
    )
    add_run(db_engine, raw_stats(records=201, new=1))
    [alert] = check(db_engine)
    assert alert.resolved_at is not None


def test_a_running_crawl_without_heartbeat_is_reported_stuck_until_it_ends(db_engine: Engine) -> None:
    steady(db_engine, 2)
    with transaction(db_engine) as session:
        run = start_run(session, SOURCE, "schedule", replay=False)
        session.execute(
            update(CrawlRun)
            .where(CrawlRun.id == run.id)
            .values(
                started_at=datetime.now(UTC) - timedelta(hours=3),
                heartbeat_at=datetime.now(UTC) - timedelta(minutes=95),
            )
        )
    [alert] = check(db_engine)
    assert (alert.kind, alert.run_id) == (AlertKind.STUCK_RUN, run.id)
    assert alert.message.startswith(f"run {run.id} on {SOURCE} has had no heartbeat for 95 min")
    still = check(db_engine, now=datetime.now(UTC) + timedelta(minutes=1))
    assert [(a.id, a.resolved_at) for a in still] == [(alert.id, None)]  # still stuck: the same alert
    with transaction(db_engine) as session:
        finish_run(session, run.id, RunStatus.INTERRUPTED, "stale heartbeat", {})
    assert check(db_engine)[0].resolved_at is not None


# -- field drift on real GCF records ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gcf_records(fixtures_dir: Path) -> list[dict[str, Any]]:
    return json.loads((fixtures_dir / "gcf" / "api-v1-projects-all-2023-02.json").read_text(encoding="utf-8"))[:12]


def crawl_gcf(engine: Engine, records: list[dict[str, Any]], drop_titles: bool = False) -> int:
    """One GCF run: the real records through the registry mapping into the queue, then the run row."""
    spec = load_registry()["gcf_projects"]
    with transaction(engine) as session:
        ensure_source(session, spec.id, spec.name, spec.kind.value, True, True, "h")
        run_id = start_run(session, spec.id, "schedule", replay=True).id
    outcomes = {"new": 0, "updated": 0, "not_modified": 0}
    for record in records:
        key, url = record_identity(record, spec.record, API)
        item = apply_record(CandidateItem(spec.id, url, API, record_key=key, raw=record), record, spec.record)
        if drop_titles:  # the API renamed ProjectName: the mapping now finds no title
            item.title = None
        with transaction(engine) as session:
            result = upsert_candidate(
                session,
                source_id=spec.id,
                url=url,
                record_hash=record_hash(item.harvested_fields()),
                run_id=run_id,
                initial_status=CandidateStatus.PENDING,
                values=candidate_values(item),
            )
        outcomes[result.outcome.value] += 1
    raw = {
        "downloader/request_count": 1,
        "downloader/response_status_count/200": 1,
        "item_scraped_count": len(records),
        "harvester/pages/parsed": 1,
        **{f"harvester/store/{k}": v for k, v in outcomes.items()},
    }
    with transaction(engine) as session:
        finish_run(session, run_id, RunStatus.FINISHED, "finished", run_stats(raw) | field_fill_stats(session, run_id))
    return run_id


def test_fill_rates_per_field_are_kept_in_the_run_stats(db_engine: Engine, gcf_records: list[dict[str, Any]]) -> None:
    run = crawl_gcf(db_engine, gcf_records)
    with transaction(db_engine) as session:
        stats = session.get_one(CrawlRun, run).stats
    assert stats["field_fill_candidates"] == 12
    fill = stats["field_fill"]
    assert (fill["title"], fill["countries"], fill["organisations"], fill["start_date"]) == (1.0, 1.0, 1.0, 1.0)
    assert fill["summary"] == 0.0  # the GCF API has no summary: never filled, so never "suddenly empty"


def test_a_field_emptied_across_a_run_raises_one_alert_until_it_comes_back(
    db_engine: Engine, gcf_records: list[dict[str, Any]]
) -> None:
    crawl_gcf(db_engine, gcf_records)
    assert check(db_engine, "gcf_projects") == []

    drifted = crawl_gcf(db_engine, gcf_records, drop_titles=True)
    [alert] = check(db_engine, "gcf_projects")
    assert (alert.kind, alert.subject, alert.run_id) == (AlertKind.FIELD_EMPTY, "title", drifted)
    assert alert.message == f"field title empty on source gcf_projects since run {drifted}"
    assert alert.details["baseline_fill"] == 1.0 and alert.details["fill"] == 0.0

    crawl_gcf(db_engine, gcf_records, drop_titles=True)  # still broken the next night: same alert, same "since"
    alerts = check(db_engine, "gcf_projects")
    assert [(a.id, a.message, a.resolved_at) for a in alerts] == [
        (alert.id, f"field title empty on source gcf_projects since run {drifted}", None)
    ]
    assert check(db_engine, "gcf_projects")[0].id == alert.id  # re-checking does not duplicate it

    crawl_gcf(db_engine, gcf_records)  # selector fixed
    [resolved] = check(db_engine, "gcf_projects")
    assert resolved.id == alert.id and resolved.resolved_at is not None


def test_a_field_empty_for_several_runs_still_reports_the_run_it_broke_in() -> None:
    def run(run_id: int, title: float) -> RunView:
        return RunView(
            run_id,
            "finished",
            {"new": 0, "not_modified": 50, "field_fill_candidates": 50, "field_fill": {"title": title, "summary": 0.0}},
        )

    history = [run(7, 0.0), run(6, 0.0), run(5, 0.0), run(4, 1.0), run(3, 0.98), run(2, 1.0)]  # newest first
    [finding] = evaluate_run("gef_projects", run(8, 0.0), history)
    assert finding.message == "field title empty on source gef_projects since run 5"
    assert finding.details["baseline_fill"] == 1.0


def test_sources_health_shows_open_alerts(harvester_env: Path, fixtures_dir: Path) -> None:
    from storage.db import get_engine, upgrade

    upgrade()
    records = json.loads((fixtures_dir / "gcf" / "api-v1-projects-all-2023-02.json").read_text(encoding="utf-8"))[:5]
    crawl_gcf(get_engine(), records)
    crawl_gcf(get_engine(), records, drop_titles=True)
    result = CliRunner().invoke(cli, ["sources", "health", "--check", "--json"])
    assert result.exit_code == 0, result.output
    report = {entry["source"]: entry for entry in json.loads(result.output)}
    assert set(load_registry()) <= set(report)
    assert report["gef_projects"] == {"source": "gef_projects", "status": "ok", "last_run": None, "alerts": []}
    gcf = report["gcf_projects"]
    assert (gcf["status"], gcf["last_run"]["id"], gcf["last_run"]["status"]) == ("alert", 2, "finished")
    assert [(a["kind"], a["subject"], a["message"]) for a in gcf["alerts"]] == [
        ("field_empty", "title", "field title empty on source gcf_projects since run 2")
    ]

    table = CliRunner().invoke(cli, ["sources", "health"])
    assert "field title empty on source gcf_projects since run 2" in table.output
    assert "1 open alert(s) on 1 source(s)" in table.output


def test_the_sources_page_shows_open_alerts_and_admins_acknowledge_or_resolve_them(db_engine: Engine) -> None:
    import re

    from fastapi.testclient import TestClient

    from harvester.web.app import create_app
    from harvester.web.auth import add_user

    add_run(db_engine, raw_stats(records=0))
    check(db_engine)
    with transaction(db_engine) as session:
        add_user(session, "ada", "curator", "curator-pass-1")
        add_user(session, "root", "admin", "admin-pass-12")
        alert_id = session.scalars(select(Alert.id)).one()

    def client(name: str, password: str) -> TestClient:
        c = TestClient(create_app(db_engine), follow_redirects=False)
        assert c.post("/login", data={"name": name, "password": password, "next": "/queue"}).status_code == 303
        return c

    curator, admin = client("ada", "curator-pass-1"), client("root", "admin-pass-12")
    page = curator.get("/sources").text
    assert f'<tr id="alert-{alert_id}" class="alert"><td>{SOURCE}</td><td>zero_items</td>' in page
    assert f'action="/admin/alerts/{alert_id}"' not in page  # curators see alerts, admins act on them
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    assert curator.post(f"/admin/alerts/{alert_id}", data={"action": "resolve", "csrf_token": token}).status_code == 403

    page = admin.get("/sources").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    assert f'action="/admin/alerts/{alert_id}"' in page
    assert admin.post(f"/admin/alerts/{alert_id}", data={"action": "acknowledge"}).status_code == 403  # no token
    done = admin.post(f"/admin/alerts/{alert_id}", data={"action": "acknowledge", "csrf_token": token})
    assert (done.status_code, done.headers["location"]) == (303, f"/sources#source-{SOURCE}")
    with transaction(db_engine) as session:
        alert = session.get_one(Alert, alert_id)
        assert (alert.acknowledged_by, alert.resolved_at) == ("root", None)
    assert "root, " in admin.get("/sources").text

    admin.post(f"/admin/alerts/{alert_id}", data={"action": "resolve", "csrf_token": token})
    with transaction(db_engine) as session:
        alert = session.get_one(Alert, alert_id)
        assert alert.resolved_by == "root" and alert.resolved_at is not None
    assert "No open alerts." in admin.get("/sources").text
