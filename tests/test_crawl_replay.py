"""Crawls through the real Scrapy stack on the recorded partner replay: demo twice, kill and re-run,
record then replay, PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from harvester.recordings.replay_build import build_replay
from harvester.registry import load_registry
from harvester.settings import PROJECT_ROOT, get_settings
from storage.db import session_factory, transaction, upgrade
from storage.models import Candidate, CrawlRun, Decision
from tests.conftest import reset_postgres, run_crawl

pytestmark = pytest.mark.slow

EXPECTED_COUNTS = {
    "gef_projects": 5892,
    "gcf_projects": 209,
    "gcf_funded_activities": 286,
    "climate_adapt_cases": 146,
    "adaptecca_cases": 96,
    "bhl_oai": 42,
    "dryad_oai": 162,
    "elsa_undp": 3,
}
IMPORTED_COUNTS = {"unfccc_cip_initiatives": 288, "wipo_green_wind": 69, "worldfish_articles": 38}


def harvester(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harvester", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
    )


def snapshot() -> dict[tuple[str, str], tuple[int, str, str]]:
    with session_factory()() as session:
        rows = session.execute(
            select(Candidate.source_id, Candidate.url, Candidate.id, Candidate.record_hash, Candidate.status)
        )
        return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def runs_json() -> list[dict]:
    return json.loads(harvester("runs", "--json", "--limit", "100").stdout)


def test_demo_twice_fills_the_queue_once_and_reports_not_modified(harvester_env: Path) -> None:
    first = harvester("demo", "--no-serve")
    assert first.returncode == 0, first.stderr[-3000:]
    counts: dict[str, int] = {}
    for source_id, _url in snapshot():
        counts[source_id] = counts.get(source_id, 0) + 1
    assert counts == EXPECTED_COUNTS | IMPORTED_COUNTS
    summary = {line.split()[0]: line.split()[1:3] for line in first.stdout.splitlines() if line.split()}
    assert summary["gef_projects"][:1] == ["replay"]
    assert summary["unfccc_cip_initiatives"] == ["partner", "file"]
    before = snapshot()
    first_runs = {r["source"]: r for r in runs_json()}
    assert all(r["status"] == "finished" for r in first_runs.values())
    assert {s for s, r in first_runs.items() if r["trigger"] == "import"} == set(IMPORTED_COUNTS)

    second = harvester("demo", "--no-serve")
    assert second.returncode == 0, second.stderr[-3000:]
    assert snapshot() == before
    second_runs = {r["source"]: r for r in runs_json() if r["id"] > max(x["id"] for x in first_runs.values())}
    for source_id, run in second_runs.items():
        stats = run["stats"]
        assert stats["new"] == 0 and stats["updated"] == 0, (source_id, stats)
        if source_id not in ("dryad_oai", "bhl_oai"):
            assert stats["not_modified"] == (EXPECTED_COUNTS | IMPORTED_COUNTS)[source_id], (source_id, stats)
            assert stats["responses_by_status"].get("200", 0) == 0 or source_id == "elsa_undp", (source_id, stats)
    assert second_runs["dryad_oai"]["stats"]["requests"] == 0, "finished OAI windows are not harvested again"
    queue = json.loads(harvester("queue", "--json", "--limit", "5").stdout)
    assert len(queue) == 5
    assert set(queue[0]) >= {"id", "url", "title", "source", "language", "status", "score", "criteria"}
    assert set(queue[0]["criteria"]) == {"support_type", "cbd_relevance", "active", "international"}
    assert queue[0]["score"] >= queue[-1]["score"]


def _candidate_count() -> int:
    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Candidate)) or 0


@pytest.mark.parametrize("kill_after", [300, 2500])
def test_crawl_killed_midway_then_rerun_loses_and_doubles_nothing(harvester_env: Path, kill_after: int) -> None:
    replay = get_settings().replay_cache_dir
    build_replay([load_registry()["gef_projects"]], replay)
    upgrade()
    cmd = [sys.executable, "-m", "harvester.crawl", "--quiet", "--replay", str(replay), "gef_projects"]
    child = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _candidate_count() < kill_after and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    stored = _candidate_count()
    assert 0 < stored < 5892, "the kill must land mid-crawl"

    with transaction() as session:
        reviewed = session.scalars(select(Candidate).order_by(Candidate.id).limit(1)).one()
        reviewed.status = "accepted"
        session.add(
            Decision(
                candidate_id=reviewed.id, actor="curator", from_status="pending", to_status="accepted", field_diff={}
            )
        )
        reviewed_id = reviewed.id

    result = run_crawl("gef_projects", replay=replay)
    assert result.returncode == 0, result.stderr[-2000:]
    with session_factory()() as session:
        urls = session.scalars(select(Candidate.url)).all()
        assert len(urls) == len(set(urls)) == 5892
        assert session.get(Candidate, reviewed_id).status == "accepted"
        assert session.scalar(select(func.count()).select_from(Decision)) == 1
        statuses = session.scalars(select(CrawlRun.status).order_by(CrawlRun.id)).all()
    assert statuses == ["interrupted", "finished"]


def test_recorded_crawl_replays_to_the_same_candidates(
    harvester_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay = get_settings().replay_cache_dir
    build_replay([load_registry()["elsa_undp"]], replay)
    upgrade()
    recordings = tmp_path / "recordings"
    result = harvester("crawl", "elsa_undp", "--replay", str(replay), "--record", str(recordings))
    assert result.returncode == 0, result.stderr[-2000:]
    first = {k: v[1] for k, v in snapshot().items()}
    assert len(list(recordings.glob("elsa_undp-*.warc.gz"))) == 1

    monkeypatch.setenv("HARVESTER_DATA_DIR", str(tmp_path / "second"))
    get_settings.cache_clear()
    from storage.db import dispose_engines

    dispose_engines()
    upgrade()
    result = harvester("crawl", "elsa_undp", "--replay", str(recordings))
    assert result.returncode == 0, result.stderr[-2000:]
    assert {k: v[1] for k, v in snapshot().items()} == first


@pytest.mark.postgres
def test_crawl_into_postgresql(harvester_env: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reset_postgres(postgres_url).dispose()
    monkeypatch.setenv("HARVESTER_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    from storage.db import dispose_engines

    dispose_engines()
    replay = get_settings().replay_cache_dir
    build_replay([load_registry()["gcf_projects"]], replay)
    for _ in range(2):
        result = run_crawl("gcf_projects", replay=replay)
        assert result.returncode == 0, result.stderr[-2000:]
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(Candidate)) == 209
        stats = session.scalars(select(CrawlRun.stats).order_by(CrawlRun.id)).all()
    assert [s["new"] for s in stats] == [209, 0]
    assert stats[1]["not_modified"] == 209
    dispose_engines()
