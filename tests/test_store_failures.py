"""The store stage when a write fails for real (SQLite locked by another writer past the busy timeout and
the retry budget): the record is counted as not stored, its page is not recorded as read, and the
records of the page that were stored stay."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler
from sqlalchemy import func, select

from harvester.crawl import signals
from harvester.crawl.spider_loader import spider_class_for
from harvester.items import CandidateItem
from harvester.registry import load_registry
from harvester.settings import get_settings
from harvester.stages import process_offline
from pipelines.store import NotStored, StorePipeline
from storage.db import session_factory, transaction, upgrade
from storage.models import Candidate, FetchedPage
from storage.pages import load_page_states
from storage.runs import ensure_source, start_run

PAGE = "https://elsa-undp.github.io/elsar/fr/list.html"


def test_a_record_not_stored_keeps_its_page_from_counting_as_read(
    harvester_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.db.SQLITE_BUSY_TIMEOUT_MS", 100)
    monkeypatch.setenv("HARVESTER_DB_RETRY_SECONDS", "0.3")
    monkeypatch.setenv("HARVESTER_DB_RETRY_BACKOFF", "0.1")
    get_settings.cache_clear()
    upgrade()
    spec = load_registry()["elsa_undp"]
    with transaction() as session:
        ensure_source(session, spec.id, spec.name, spec.kind.value, spec.verified, spec.enabled, "x")
        run_id = start_run(session, spec.id, "cli", replay=True).id
    crawler = get_crawler(spider_class_for(spec))
    crawler.spider = crawler._create_spider()
    crawler.stats.open_spider()
    crawler.stats.set_value("harvester/run_id", run_id)
    store = StorePipeline.from_crawler(crawler)
    store.open_spider()
    response = HtmlResponse(PAGE, body=b"<html></html>", headers={"ETag": '"v1"'}, request=Request(PAGE))
    items = [
        process_offline(
            CandidateItem(
                "elsa_undp",
                f"{PAGE[:-5]}/{i}.html",
                PAGE,
                title=f"Fiche {i}",
                text="Les zones essentielles au maintien de la vie. " * 5,
            ),
            spec,
        )
        for i in range(3)
    ]
    crawler.signals.send_catch_log(
        signals.page_parsed,
        spider=crawler.spider,
        response=response,
        record_count=3,
        not_modified=False,
        complete=True,
        content_hash="abc",
    )
    store.process_item(items[0])

    writer = sqlite3.connect(get_settings().sqlite_path, isolation_level=None)  # another process's long write
    writer.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(NotStored, match=r"not stored \(database locked\)"):
            store.process_item(items[1])
        with pytest.raises(NotStored, match=r"not stored \(database locked\)"):  # given up: not tried again
            store.process_item(items[2])
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    stats = crawler.stats.get_stats()
    assert stats["harvester/store/new"] == 1 and stats["harvester/store/failed"] == 2
    assert stats["harvester/store/failed_reasons"] == {"database locked": 3}  # 2 records + the page row
    assert [f["url"] for f in stats["harvester/store/failed_urls"]] == [items[1].url, items[2].url]
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(Candidate)) == 1
        assert session.scalars(select(FetchedPage)).all() == []  # no ETag, no hash: the next crawl reads it all
        assert load_page_states(session, "elsa_undp") == {}
