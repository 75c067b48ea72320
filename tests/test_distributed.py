"""Distributed mode: two crawl workers share one crawl of a local partner site through one Redis
(scrapy-redis scheduler and dupefilter) and one PostgreSQL database.

The site is ``bench.site.PartnerSite``: recorded multilingual pages served under numbered URLs with a
sitemap. The server counts every request, so "fetched exactly once" is checked at the source."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from bench.site import PartnerSite, load_templates
from harvester.settings import PROJECT_ROOT, get_settings
from storage.db import dispose_engines, session_factory
from storage.models import Candidate, CrawlRun, FetchedPage, RunStatus
from tests.conftest import reset_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_URL = os.environ.get("HARVESTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SOURCE = "shared_site"
PAGES = 150


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is not reachable at {REDIS_URL} in CI")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    for key in client.scan_iter(f"harvester:{SOURCE}:*"):
        client.delete(key)
    return REDIS_URL


@pytest.fixture
def shared_env(postgres_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    registry = tmp_path / "registry"
    registry.mkdir()
    env = {
        "HARVESTER_DATABASE_URL": postgres_url,
        "HARVESTER_REDIS_URL": redis_url,
        "HARVESTER_REGISTRY_DIR": str(registry),
        "HARVESTER_DATA_DIR": str(tmp_path / "var"),
        "HARVESTER_ALLOW_PRIVATE_HOSTS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    dispose_engines()
    reset_postgres(postgres_url).dispose()
    yield env
    get_settings.cache_clear()
    dispose_engines()


def write_source(registry: Path, site_url: str) -> None:
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: Generated partner site
        kind: sitemap
        start_urls: ["{site_url}/sitemap.xml"]
        verified: false
        verification: "local test server"
        politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 4}}
        """),
        encoding="utf-8",
    )


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harvester.crawl", "--quiet", SOURCE],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def joined_workers() -> int:
    """Workers that joined the source's latest run."""
    with session_factory()() as session:
        stats = session.scalars(
            select(CrawlRun.stats).where(CrawlRun.source_id == SOURCE).order_by(CrawlRun.id.desc()).limit(1)
        ).first()
    return (stats or {}).get("workers", 0)


def run_two_workers(env: dict[str, str], gate: threading.Event | None = None) -> None:
    """Run two workers to the end; with ``gate`` (the site's), open it once both have joined the run,
    so that neither can finish the crawl alone however slowly the other starts."""
    workers = [start_worker(env), start_worker(env)]
    try:
        if gate is not None:
            deadline = time.monotonic() + 120
            while joined_workers() < 2 and all(w.poll() is None for w in workers):
                assert time.monotonic() < deadline, "the two workers never both joined the crawl run"
                time.sleep(0.2)
            gate.set()
        for worker in workers:
            _, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()


def test_two_workers_fetch_every_page_once_and_store_every_candidate_once(
    shared_env: dict[str, str], fixtures_dir: Path
) -> None:
    gate = threading.Event()
    with PartnerSite(load_templates(fixtures_dir), PAGES, log_paths=True, gate=gate) as site:
        write_source(Path(shared_env["HARVESTER_REGISTRY_DIR"]), site.url)
        run_two_workers(shared_env, gate)
        served = dict(site.served)

    records = {p: n for p, n in served.items() if p.startswith("/record/")}
    assert len(records) == PAGES
    assert set(records.values()) == {1}
    assert served["/sitemap.xml"] == 1 and served["/sitemap-0.xml"] == 1

    with session_factory()() as session:
        urls = list(session.scalars(select(Candidate.url).where(Candidate.source_id == SOURCE)))
        runs = list(session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE)))
        pages = session.scalar(
            select(func.count())
            .select_from(FetchedPage)
            .where(
                FetchedPage.source_id == SOURCE,
                FetchedPage.url.like("%/record/%"),
                FetchedPage.content_hash.is_not(None),
            )
        )
    assert len(urls) == len(set(urls)) == PAGES
    assert pages == PAGES
    assert len(runs) == 1
    run = runs[0]
    assert run.status == RunStatus.FINISHED and run.crawl_key is not None
    assert run.stats["workers"] == 2
    assert run.stats["new"] == PAGES
    assert sum(w["stats"]["new"] for w in run.stats["worker_stats"].values()) == PAGES
    assert run.stats["requests"] == sum(w["stats"]["requests"] for w in run.stats["worker_stats"].values())
    assert not list(redis.Redis.from_url(shared_env["HARVESTER_REDIS_URL"]).scan_iter(f"harvester:{SOURCE}:*"))


def test_second_shared_crawl_from_the_cli_starts_fresh_and_finds_every_page_unchanged(
    shared_env: dict[str, str], fixtures_dir: Path
) -> None:
    shared_env["HARVESTER_STAGE_POOL"] = "0"  # stages in-line: two workers on two CPUs already
    gate = threading.Event()
    with PartnerSite(load_templates(fixtures_dir), 40, log_paths=True, gate=gate) as site:
        write_source(Path(shared_env["HARVESTER_REGISTRY_DIR"]), site.url)
        run_two_workers(shared_env, gate)
        site.served.clear()
        gate.clear()
        with session_factory()() as session:
            first_run = session.scalar(select(func.max(CrawlRun.id)))
        proc = subprocess.Popen(
            [sys.executable, "-m", "harvester", "crawl", SOURCE, "--workers", "2"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **shared_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None:  # both workers of the second crawl join its run before the site answers
            with session_factory()() as session:
                latest = session.scalar(select(func.max(CrawlRun.id)))
            if latest != first_run and joined_workers() >= 2:
                break
            assert time.monotonic() < deadline, "the CLI's two workers never both joined the second run"
            time.sleep(0.2)
        gate.set()
        out, err = proc.communicate(timeout=240)
        cli = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        second = {p: n for p, n in site.served.items() if p != "/robots.txt"}
    assert cli.returncode == 0, cli.stderr[-3000:]
    report = next(line for line in cli.stdout.splitlines() if line.startswith(SOURCE))
    assert report.split()[:2] == [SOURCE, "finished"]

    assert second == {"/sitemap.xml": 1, "/sitemap-0.xml": 1}  # lastmod: no page refetched
    with session_factory()() as session:
        runs = list(session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE).order_by(CrawlRun.id)))
    assert [r.status for r in runs] == [RunStatus.FINISHED, RunStatus.FINISHED]
    assert runs[0].crawl_key != runs[1].crawl_key
    assert runs[1].stats["new"] == 0
