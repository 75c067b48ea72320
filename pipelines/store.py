"""Stage 5: idempotent upsert, one short transaction per item; page state; gone-at-source.

Receives the spiders' page signals too, so every database write of a crawl happens here. A page's
state (content hash, record count) is written only after every item it yielded was stored or dropped:
with the CPU stages in a process pool, items finish after their page was parsed, and a page recorded
as unchanged before its records were stored would skip them on the next crawl.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from scrapy import signals as scrapy_signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.statscollectors import StatsCollector
from sqlalchemy.orm import Session

from harvester import signals
from harvester.classify.routing import pending_threshold
from harvester.dedupe import candidate_key, canonical_url
from harvester.extraction.provenance import stored_provenance
from harvester.items import CandidateItem
from harvester.quarantine import QuarantineGate
from harvester.settings import get_settings
from harvester.snapshots import SnapshotWriter
from harvester.warc import RecordedResponse
from storage.clusters import FingerprintCache, link_duplicates
from storage.db import transaction
from storage.models import CandidateStatus
from storage.pages import load_page_states, record_page
from storage.queue import (
    Outcome,
    mark_gone,
    mark_gone_keys,
    mark_missing_gone,
    touch_page_candidates,
    upsert_candidate,
)
from storage.windows import complete_window

FAILED_URLS_KEPT = 200


class StorePipeline:
    def __init__(self, crawler: Crawler, stats: StatsCollector, threshold: float) -> None:
        self.crawler, self.stats, self.threshold = crawler, stats, threshold
        self.seen: dict[str, set[str]] = defaultdict(set)  # per fetched page, until it is recorded: records stored
        self.fingerprints = FingerprintCache()
        # complete pages that hold or held several records, with the records seen: the rest are gone at the source;
        # single-record pages are not kept, so memory does not grow with the pages crawled
        self.multi_record_pages: dict[str, set[str]] = {}
        self.pages_with_drops: set[str] = set()
        self.record_counts: dict[str, int] = {}
        self.items_done: dict[str, int] = defaultdict(int)  # per fetched page: items stored or dropped
        self.waiting_pages: dict[str, tuple[int, tuple[Any, ...]]] = {}  # page -> (items it yielded, page_parsed)
        self.snapshots: SnapshotWriter | None = None
        settings = get_settings()
        self.quarantine = QuarantineGate(settings.quarantine_factor, settings.quarantine_min_records)
        connect = crawler.signals.connect
        connect(self.page_parsed, signal=signals.page_parsed)
        connect(self.page_failed, signal=signals.page_failed)
        connect(self.window_done, signal=signals.window_done)
        connect(self.item_dropped, signal=scrapy_signals.item_dropped)
        connect(self.item_error, signal=scrapy_signals.item_error)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        assert crawler.stats is not None
        threshold = pending_threshold(crawler.settings.get("HARVESTER_PENDING_THRESHOLD"))
        return cls(crawler, crawler.stats, threshold)

    @property
    def run_id(self) -> int | None:
        return self.stats.get_value("harvester/run_id")

    def open_spider(self) -> None:
        from storage.db import session_factory

        source_id = self.crawler.spider.name if self.crawler.spider else ""
        with session_factory()() as session:
            self.record_counts = {u: s.record_count for u, s in load_page_states(session, source_id).items()
                                  if s.record_count != 1}  # 1, the usual count, is the default where it is read

    def snapshot(self, spider: Any, response: Response) -> str | None:
        """Keep the raw bytes of an HTML page (only HTML: exports and APIs are kept by their row fields)."""
        content_type = (_header(response.headers, b"Content-Type") or "").lower()
        if response.status != 200 or "html" not in content_type:
            return None
        if self.snapshots is None:
            self.snapshots = SnapshotWriter(get_settings().data_dir, spider.name, self.run_id)
            shared = getattr(spider, "shared_crawl", None)
            if shared is not None:  # workers of one shared run each append to their own file
                worker = "".join(c if c.isalnum() else "-" for c in shared.worker)
                self.snapshots.relative = self.snapshots.relative.with_name(
                    f"run-{self.run_id or 0}-{worker}.warc.gz")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, vs in response.headers.items() for v in vs]
        return self.snapshots.write(RecordedResponse(response.url, response.status, headers, response.body))

    def process_item(self, item: CandidateItem) -> CandidateItem:
        url = item.canonical_url or canonical_url(item.url)
        if item.gone:
            with transaction() as session:
                gone = mark_gone_for(session, item, url, self.run_id)
                self.item_done(item, session)
            self.stats.inc_value("harvester/store/gone", gone)
            return item
        assert item.record_hash is not None
        key = candidate_key(item.record_key, url)
        self.seen[item.fetched_url].add(key)
        status = CandidateStatus.PENDING if (item.score or 0) >= self.threshold else CandidateStatus.FILTERED
        with transaction() as session:
            result = upsert_candidate(session, source_id=item.source_id, identity_key=key, url=url,
                                      record_hash=item.record_hash,
                                      run_id=self.run_id, initial_status=self.quarantine.status_for(status),
                                      values=candidate_values(item))
            if result.outcome is Outcome.NEW and self.quarantine.stored_new(
                    session, item.source_id, self.run_id, result.candidate_id, status):
                self.stats.set_value("harvester/quarantine/held_at_new", self.quarantine.new_records)
            if result.outcome is not Outcome.NOT_MODIFIED and link_duplicates(
                    session, result.candidate_id, new=result.outcome is Outcome.NEW, cache=self.fingerprints):
                self.stats.inc_value("harvester/dedupe/clustered")
            self.item_done(item, session)  # the page's state, when this was its last item, in the same commit
        self.stats.inc_value(f"harvester/store/{result.outcome.value}")
        if result.outcome is Outcome.NEW:
            self.stats.inc_value(f"harvester/store/new_{status.value}")
        return item

    def item_done(self, item: CandidateItem, session: Session | None = None) -> None:
        page = item.fetched_url
        self.items_done[page] += 1
        waiting = self.waiting_pages.get(page)
        if waiting is not None and self.items_done[page] >= waiting[0]:
            del self.waiting_pages[page]
            self.items_done.pop(page, None)
            self.record_parsed_page(*waiting[1], session=session)

    def item_error(self, item: Any, response: Response | None = None, spider: Any = None,
                   failure: Any = None) -> None:
        if isinstance(item, CandidateItem):
            self.pages_with_drops.add(item.fetched_url)
            self.item_done(item)

    def item_dropped(self, item: Any, response: Response | None = None, exception: Any = None,
                     spider: Any = None) -> None:
        if isinstance(item, CandidateItem):
            self.pages_with_drops.add(item.fetched_url)
            with transaction() as session:
                record_page(session, source_id=item.source_id, url=item.url, canonical_url=canonical_url(item.url),
                            http_status=None, run_id=self.run_id, error=str(exception)[:500])
                self.item_done(item, session)

    def page_parsed(self, spider: Any, response: Response, record_count: int | None, not_modified: bool,
                    complete: bool, content_hash: str | None) -> None:
        args = (spider, response, record_count, not_modified, complete, content_hash)
        if record_count and self.items_done[response.url] < record_count:
            self.waiting_pages[response.url] = (record_count, args)
            return
        self.items_done.pop(response.url, None)
        self.record_parsed_page(*args)

    def record_parsed_page(self, spider: Any, response: Response, record_count: int | None, not_modified: bool,
                           complete: bool, content_hash: str | None, session: Session | None = None) -> None:
        """Write a page's state, in ``session`` when given (the transaction of its last item), else in its own."""
        headers = response.headers
        with _within(session) as session:
            if not_modified:
                previous = self.record_counts.get(response.url, 1)
                self.stats.inc_value("harvester/store/not_modified", previous)
                self.stats.inc_value("harvester/pages/not_modified")
                touch_page_candidates(session, spider.name, response.url, self.run_id)
            else:
                self.stats.inc_value("harvester/pages/parsed")
            record_page(
                session, source_id=spider.name, url=response.url, canonical_url=canonical_url(response.url),
                http_status=response.status, run_id=self.run_id,
                etag=_header(headers, b"ETag"), last_modified=_header(headers, b"Last-Modified"),
                content_hash=content_hash if complete and response.url not in self.pages_with_drops else None,
                record_count=None if not_modified or not complete else record_count,
                sitemap_lastmod=response.meta.get("lastmod"),
                snapshot_ref=None if not_modified else self.snapshot(spider, response),
            )
        seen = self.seen.pop(response.url, set())
        if not getattr(spider, "lists_every_record", False):
            return  # a record missing from a feed, an OAI window or one API page is not gone
        if complete and not not_modified and (len(seen) >= 2 or (self.record_counts.get(response.url) or 0) >= 2):
            self.multi_record_pages[response.url] = seen

    def page_failed(self, spider: Any, url: str, status: int | None, error: str, gone: bool) -> None:
        failed = self.stats.get_value("harvester/failed_urls") or []
        if len(failed) < FAILED_URLS_KEPT:  # the run's per-URL errors; every one is also on its page row
            self.stats.set_value("harvester/failed_urls",
                                 [*failed, {"url": url, "status": status, "error": error, "gone": gone}])
        with transaction() as session:
            record_page(session, source_id=spider.name, url=url, canonical_url=canonical_url(url),
                        http_status=status, run_id=self.run_id, error=error)
            if gone:
                count = mark_gone(session, spider.name, [canonical_url(url)], error, self.run_id)
                self.stats.inc_value("harvester/store/gone", count)

    def window_done(self, spider: Any, window_from: str, window_until: str, records: int) -> None:
        with transaction() as session:
            complete_window(session, spider.name, window_from, window_until, records, self.run_id)
        self.stats.inc_value("harvester/oai/windows_done")

    def close_spider(self) -> None:
        """Records missing from a completely parsed complete export are gone at the source."""
        if self.snapshots is not None:
            self.snapshots.close()
        spider = self.crawler.spider
        if spider is None:
            return
        for page_url in sorted(self.multi_record_pages.keys() - self.pages_with_drops):
            seen = self.multi_record_pages[page_url]
            with transaction() as session:
                gone = mark_missing_gone(session, spider.name, page_url, seen, self.run_id)
            self.stats.inc_value("harvester/store/gone", gone)


def mark_gone_for(session: Any, item: CandidateItem, url: str, run_id: int | None) -> int:
    """A record the partner says is deleted (OAI ``status="deleted"``): its candidate, by identity key."""
    return mark_gone_keys(session, item.source_id, [candidate_key(item.record_key, url)], "deleted at source", run_id)


def candidate_values(item: CandidateItem) -> dict[str, Any]:
    return {
        **{k: v for k, v in item.harvested_fields().items()},
        "record_key": item.record_key, "fetched_url": item.fetched_url,
        "provenance": stored_provenance(item.provenance, item.flags),
        "language": item.language, "language_prob": item.language_prob,
        "criteria": {k: v.as_dict() for k, v in item.criteria.items()}, "score": item.score, "tags": item.tags,
        "classifier_version": item.classifier_version, "text_hash": item.text_hash, "embedding": item.embedding,
    }


@contextmanager
def _within(session: Session | None) -> Iterator[Session]:
    if session is not None:
        yield session
    else:
        with transaction() as own:
            yield own


def _header(headers: Any, name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value else None
