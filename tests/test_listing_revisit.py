"""A listing source with ``revisit_days``: an unchanged re-crawl requests only its listing pages, and a detail
page last fetched longer ago than the window is asked for again, with a conditional GET."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bench.site import PartnerSite, load_templates
from storage.db import session_factory, transaction
from storage.models import Candidate, CrawlRun, FetchedPage
from storage.runs import now
from tests.conftest import run_crawl

pytestmark = pytest.mark.slow

SOURCE = "listing_revisit"
PAGES = 60  # two listing pages of 50 and 10 links


def served_records(site: PartnerSite) -> set[str]:
    return {p for p in site.served if p.startswith("/record/")}


def crawl(site: PartnerSite) -> dict:
    site.served.clear()
    result = run_crawl(SOURCE, env={"HARVESTER_STAGE_POOL": "0"}, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    with session_factory()() as session:
        return session.scalars(
            select(CrawlRun.stats).where(CrawlRun.source_id == SOURCE).order_by(CrawlRun.id.desc()).limit(1)
        ).one()


def test_pages_fetched_within_the_window_are_not_requested_and_older_ones_are(
    registry: Path, fixtures_dir: Path, harvester_env: Path
) -> None:
    with PartnerSite(load_templates(fixtures_dir), PAGES, log_paths=True) as site:
        (registry / f"{SOURCE}.yaml").write_text(
            textwrap.dedent(f"""\
            id: {SOURCE}
            name: Generated listing site
            kind: listing
            start_urls: ["{site.url}/list/0.html"]
            verified: false
            verification: "local test server"
            politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 8}}
            listing: {{item_links: "a.record::attr(href)", next_page: "a[rel=next]::attr(href)", revisit_days: 7}}
            selectors: {{title: "title::text"}}
            """),
            encoding="utf-8",
        )

        first = crawl(site)
        assert first["new"] == PAGES and len(served_records(site)) == PAGES
        assert first["requests_queued_on_disk"] >= PAGES, "harvester.crawl.request_queue: the request queue is on disk"
        assert list((harvester_env / "queues").iterdir()) == [], "and its folder is gone with the crawl"

        second = crawl(site)
        assert served_records(site) == set()
        assert {"/list/0.html", "/list/1.html"} <= set(site.served)
        assert (second["new"], second["updated"], second["errors"]) == (0, 0, 0)

        aged = [f"{site.url}/record/{i}.html" for i in (3, 17, 59)]
        with transaction() as session:
            session.execute(
                update(FetchedPage).where(FetchedPage.url.in_(aged)).values(last_seen=now() - timedelta(days=8))
            )
        third = crawl(site)
        assert served_records(site) == {"/record/3.html", "/record/17.html", "/record/59.html"}
        assert third["pages_not_modified"] == 3, "asked for with the stored ETag: 304"
        assert third["new"] == 0

    with session_factory()() as session:
        assert (
            session.scalar(
                select(Candidate.id).where(Candidate.source_id == SOURCE, Candidate.gone_at_source.is_(True))
            )
            is None
        )
