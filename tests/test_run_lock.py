"""One running crawl per source: a second crawl of a running source stops before fetching anything, and
processes that register the same new source at once (distributed workers) all succeed."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.site import PartnerSite, load_templates
from storage.db import session_factory, transaction
from storage.models import Candidate, CrawlRun, RunStatus, Source
from storage.runs import ensure_source, start_run
from tests.conftest import reset_postgres, run_crawl

SOURCE = "lock_site"


def write_source(registry: Path, site_url: str) -> None:
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: Locked partner site
        kind: sitemap
        start_urls: ["{site_url}/sitemap.xml"]
        verified: false
        verification: "local test server"
        politeness: {{download_delay: 0, autothrottle: false}}
        """),
        encoding="utf-8",
    )


@pytest.mark.slow
def test_a_crawl_of_a_source_whose_crawl_is_running_stops_without_fetching_a_page(
    registry: Path, fixtures_dir: Path
) -> None:
    with transaction() as session:
        ensure_source(session, SOURCE, "Locked partner site", "sitemap", False, True, "h")
        running = start_run(session, SOURCE, "cli", replay=False).id  # this test process: alive
    with PartnerSite(load_templates(fixtures_dir), 20, log_paths=True) as site:
        write_source(registry, site.url)
        result = run_crawl(SOURCE, timeout=120)
        served = dict(site.served)

    assert f"source {SOURCE!r} already has a running crawl" in result.stderr
    assert not [path for path in served if path.startswith("/record/")]
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(Candidate)) == 0
        runs = session.execute(select(CrawlRun.id, CrawlRun.status)).all()
    assert [tuple(r) for r in runs] == [(running, RunStatus.RUNNING)]


@pytest.mark.postgres
def test_two_processes_registering_the_same_new_source_at_once_both_succeed(postgres_url: str) -> None:
    engine = reset_postgres(postgres_url)
    errors: list[BaseException] = []

    def register_second() -> None:
        try:
            with Session(engine) as session, session.begin():
                ensure_source(session, SOURCE, "Renamed by the second worker", "sitemap", False, True, "h2")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    with Session(engine) as first, first.begin():
        ensure_source(first, SOURCE, "Registered by the first worker", "sitemap", False, True, "h1")
        second = threading.Thread(target=register_second)
        second.start()
        time.sleep(0.5)  # the second insert now waits on the first's uncommitted row
    second.join(timeout=30)

    assert errors == []
    with Session(engine) as session:
        rows = session.execute(select(Source.name, Source.config_hash)).all()
    assert [tuple(r) for r in rows] == [("Renamed by the second worker", "h2")]
    engine.dispose()
