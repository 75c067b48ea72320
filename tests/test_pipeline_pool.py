"""The CPU stages in a process pool: same candidates as in-line, configurable, and the store stage
records a page only after every item of it was stored (what the next crawl's unchanged-skip relies on)."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import textwrap
import time
from pathlib import Path

import pytest
from scrapy.exceptions import DropItem
from scrapy.http import HtmlResponse, Request
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from sqlalchemy import select

from bench.site import PartnerSite, load_templates
from harvester.crawl import signals
from harvester.crawl.spider_loader import spider_class_for
from harvester.items import CandidateItem
from harvester.registry import load_registry
from harvester.stages import process_offline, run_cpu_stages
from pipelines.extract import ExtractPipeline
from pipelines.pool import PooledStagesPipeline, stage_pool_size
from pipelines.store import StorePipeline
from storage.db import session_factory, transaction, upgrade
from storage.models import Candidate, CrawlRun, FetchedPage
from storage.runs import ensure_source
from tests.conftest import run_crawl

ELSA_FR = "formats/multilingual/elsa-undp_article-elsaR_fr.html"
ELSA_URL = "https://elsa-undp.github.io/elsar/fr/articles/elsaR.html"


@pytest.mark.parametrize(
    ("value", "cpus", "size"),
    [
        (None, 2, 0),
        ("", 2, 0),
        ("auto", 2, 2),
        ("auto", 1, 0),
        ("auto", 8, 8),
        ("0", 2, 0),
        ("3", 1, 3),
        (2, 2, 2),
    ],
)
def test_pool_size_is_one_per_cpu_on_auto_and_off_outside_a_harvester_crawl(
    monkeypatch: pytest.MonkeyPatch, value: object, cpus: int, size: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    settings = Settings({} if value is None else {"HARVESTER_STAGE_POOL": value})
    assert stage_pool_size(settings) == size


def test_in_line_stages_switch_off_when_the_pool_runs_them() -> None:
    spec = load_registry()["elsa_undp"]
    pooled = get_crawler(spider_class_for(spec), {"HARVESTER_STAGE_POOL": "2"})
    inline = get_crawler(spider_class_for(spec), {"HARVESTER_STAGE_POOL": "0"})
    from scrapy.exceptions import NotConfigured

    with pytest.raises(NotConfigured):
        ExtractPipeline.from_crawler(pooled)
    with pytest.raises(NotConfigured):
        PooledStagesPipeline.from_crawler(inline)
    assert isinstance(PooledStagesPipeline.from_crawler(pooled), PooledStagesPipeline)


def test_cpu_stages_after_a_pickle_round_trip_equal_the_in_line_stages(fixtures_dir: Path) -> None:
    spec = load_registry()["elsa_undp"]
    body = (fixtures_dir / ELSA_FR).read_bytes()

    def fresh() -> CandidateItem:
        return CandidateItem("elsa_undp", ELSA_URL, ELSA_URL, body=body, content_type="text/html", page_lang="fr")

    outcome = pickle.loads(pickle.dumps(run_cpu_stages(pickle.loads(pickle.dumps(fresh())), spec, 0)))
    expected = process_offline(fresh(), spec)
    assert outcome.error is None and outcome.language_source == "detected"
    assert outcome.item == expected
    assert outcome.item.language == "fr" and outcome.item.body is None and outcome.item.score is not None


def test_cpu_stages_report_an_empty_page_as_an_error_instead_of_raising() -> None:
    spec = load_registry()["elsa_undp"]
    outcome = run_cpu_stages(CandidateItem("elsa_undp", ELSA_URL, ELSA_URL, body=b""), spec, 0)
    assert outcome.error == f"extraction failed for {ELSA_URL}: empty body"
    assert outcome.item.body is None


def test_store_records_a_parsed_page_only_after_its_items_are_stored(harvester_env: Path) -> None:
    upgrade()
    spec = load_registry()["elsa_undp"]
    with transaction() as session:
        ensure_source(session, spec.id, spec.name, spec.kind.value, spec.verified, spec.enabled, "x")
    crawler = get_crawler(spider_class_for(spec))
    crawler.spider = crawler._create_spider()
    crawler.stats.open_spider()
    store = StorePipeline.from_crawler(crawler)
    store.open_spider()
    page_url = "https://elsa-undp.github.io/elsar/fr/list.html"
    response = HtmlResponse(page_url, body=b"<html></html>", headers={"ETag": '"v1"'}, request=Request(page_url))
    items = []
    for i in range(2):
        item = CandidateItem(
            "elsa_undp",
            f"{page_url[:-5]}/{i}.html",
            page_url,
            title=f"Fiche {i}",
            text="Les zones essentielles au maintien de la vie. " * 5,
        )
        items.append(process_offline(item, spec))

    def page_rows() -> list[FetchedPage]:
        with session_factory()() as session:
            return list(session.scalars(select(FetchedPage).where(FetchedPage.url == page_url)))

    crawler.signals.send_catch_log(
        signals.page_parsed,
        spider=crawler.spider,
        response=response,
        record_count=2,
        not_modified=False,
        complete=True,
        content_hash="abc",
    )
    assert page_rows() == []  # both items still in the CPU stages
    store.process_item(items[0])
    assert page_rows() == []
    store.process_item(items[1])
    [row] = page_rows()
    assert (row.content_hash, row.record_count, row.etag) == ("abc", 2, '"v1"')


@pytest.mark.slow
def test_a_pool_renewed_every_few_items_stores_the_same_candidates_as_in_line(
    registry: Path, fixtures_dir: Path
) -> None:
    results = {}
    with PartnerSite(load_templates(fixtures_dir), 40) as site:
        for source, pool in (("pool_on", "2"), ("pool_off", "0")):
            (registry / f"{source}.yaml").write_text(
                textwrap.dedent(f"""\
                id: {source}
                name: Generated partner site
                kind: sitemap
                start_urls: ["{site.url}/sitemap.xml"]
                verified: false
                verification: "local test server"
                politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 8}}
                """),
                encoding="utf-8",
            )
            # 4 items per worker: the pool is renewed 4 times over the 40 pages
            result = run_crawl(
                source, env={"HARVESTER_STAGE_POOL": pool, "HARVESTER_STAGE_POOL_MAX_TASKS": "4"}, timeout=180
            )
            assert result.returncode == 0, result.stderr[-3000:]
            with session_factory()() as session:
                rows = session.execute(
                    select(
                        Candidate.url,
                        Candidate.title,
                        Candidate.language,
                        Candidate.score,
                        Candidate.text_hash,
                        Candidate.criteria,
                    )
                    .where(Candidate.source_id == source)
                    .order_by(Candidate.url)
                ).all()
                stats = session.scalars(select(CrawlRun.stats).where(CrawlRun.source_id == source)).one()
            results[pool] = ([tuple(r) for r in rows], stats)
    assert len(results["2"][0]) == 40
    assert results["2"][0] == results["0"][0]
    assert (results["2"][1]["stage_pool_workers"], results["0"][1]["stage_pool_workers"]) == (2, 0)
    assert results["2"][1]["stage_pool_renewed"] == 4
    assert results["2"][1]["new"] == results["0"][1]["new"] == 40


def pooled_pipeline(**settings: object) -> PooledStagesPipeline:
    spec = load_registry()["elsa_undp"]
    crawler = get_crawler(spider_class_for(spec), {"HARVESTER_STAGE_POOL": "2", **settings})
    pipeline = PooledStagesPipeline.from_crawler(crawler)
    pipeline.open_spider()
    return pipeline


def elsa_item(fixtures_dir: Path, n: int) -> CandidateItem:
    url = f"{ELSA_URL}?copy={n}"
    return CandidateItem("elsa_undp", url, url, body=(fixtures_dir / ELSA_FR).read_bytes(), content_type="text/html")


def test_a_killed_stage_worker_restarts_the_pool_and_loses_no_item(harvester_env: Path, fixtures_dir: Path) -> None:
    upgrade()
    pipeline = pooled_pipeline()

    async def crawl() -> list[CandidateItem]:
        first = await pipeline.process_item(elsa_item(fixtures_dir, 0))
        assert pipeline.pool is not None
        os.kill(next(iter(pipeline.pool._processes)), signal.SIGKILL)  # the OOM killer, say
        await asyncio.sleep(0.5)
        rest = await asyncio.gather(*(pipeline.process_item(elsa_item(fixtures_dir, n)) for n in range(1, 7)))
        return [first, *rest]

    try:
        done = asyncio.run(crawl())
    finally:
        pipeline.close_spider()
    assert [item.language for item in done] == ["fr"] * 7
    assert all(item.title and item.score is not None for item in done)
    assert pipeline.stats.get_value("harvester/stage_pool/restarted") == 1
    assert pipeline.stats.get_value("harvester/extract/ok") == 7


def test_an_item_stuck_in_the_stages_is_dropped_at_the_timeout_and_the_crawl_goes_on(
    harvester_env: Path, fixtures_dir: Path
) -> None:
    upgrade()
    pipeline = pooled_pipeline(HARVESTER_STAGE_TIMEOUT=1)
    paragraphs = "".join(
        f"<div><p>Paragraph {i} on mangrove restoration and seed banks.</p></div>" for i in range(100_000)
    )
    huge = CandidateItem(
        "elsa_undp",
        "https://example.org/huge",
        "https://example.org/huge",
        body=f"<html><body>{paragraphs}</body></html>".encode(),
        content_type="text/html",
    )

    async def crawl() -> CandidateItem:
        with pytest.raises(DropItem, match=r"CPU stages took over 1 s for https://example.org/huge"):
            await pipeline.process_item(huge)
        pipeline.timeout = 60  # the next item runs on a pool just started: no tight limit for it on a slow machine
        return await pipeline.process_item(elsa_item(fixtures_dir, 1))

    started = time.monotonic()
    try:
        after = asyncio.run(crawl())
    finally:
        pipeline.close_spider()
    assert after.language == "fr" and after.title
    assert pipeline.stats.get_value("harvester/stage_pool/timed_out") == 1
    assert time.monotonic() - started < 30  # the stuck worker was stopped, not waited for
