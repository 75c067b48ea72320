"""A listing source with no selectors and no link rule crawls through the real Scrapy stack: record links
are found by their shape, the paging link is followed only as ``next_page``, fields come from the pages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.site import PartnerSite, load_templates
from storage.db import session_factory
from storage.models import Candidate
from tests.conftest import run_crawl

pytestmark = pytest.mark.slow

SOURCE = "bare_listing"
PAGES = 60  # two listing pages of 50 and 10 links


def test_a_bare_listing_finds_its_record_pages_and_reads_them_without_selectors(
    registry: Path, fixtures_dir: Path, harvester_env: Path
) -> None:
    with PartnerSite(load_templates(fixtures_dir), PAGES, log_paths=True) as site:
        (registry / f"{SOURCE}.yaml").write_text(
            textwrap.dedent(f"""\
            kind: listing
            start_urls: ["{site.url}/list/0.html"]
            politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 8}}
            listing: {{next_page: "a[rel=next]::attr(href)"}}
            """),
            encoding="utf-8",
        )
        result = run_crawl(SOURCE, env={"HARVESTER_STAGE_POOL": "0"}, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        assert {p for p in site.served if p.startswith("/record/")} == {f"/record/{i}.html" for i in range(PAGES)}

    with session_factory()() as session:
        rows = session.scalars(select(Candidate).where(Candidate.source_id == SOURCE)).all()
        assert len(rows) == PAGES
        assert not any(row.url.endswith(("/list/0.html", "/list/1.html")) for row in rows)
        assert all(row.title and row.text and row.provenance.get("text") == "trafilatura" for row in rows)
        assert (
            session.scalar(
                select(func.count())
                .select_from(Candidate)
                .where(Candidate.source_id == SOURCE, Candidate.language.is_(None))
            )
            == 0
        )
