"""Stage 5: idempotent upsert, one short transaction per item; page state; gone-at-source.

Receives the spiders' page signals too, so every database write of a crawl happens here. A page's
state (content hash, record count) is written only after every item it yielded was stored or dropped:
with the CPU stages in a process pool, items finish after their page was parsed, and a page recorded
as unchanged before its records were stored would skip them on the next crawl.

No record that was not stored counts as seen. Every write goes through ``storage.retry``: a transient
database error (connection lost, server restarting, SQLite locked past its busy timeout, disk full) is
retried on a fresh connection with back-off. A record still not stored is counted with its reason in
the run stats (``harvester/store/failed``), its page's validators and content hash are not kept (the next
crawl reads the page again in full) and the run ends failed. Once a write has spent its whole budget the
stage stops trying for the rest of the run and closes the spider: the database is down, not one record.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Self, TypeVar

from scrapy import signals as scrapy_signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.http import Response
from scrapy.statscollectors import StatsCollector
from scrapy.utils.defer import deferred_from_coro
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from harvester.classify.routing import pending_threshold
from harvester.crawl import signals
from harvester.dedupe import candidate_key, canonical_url
from harvester.extraction.provenance import stored_provenance
from harvester.health.quarantine import QuarantineGate
from harvester.items import CandidateItem
from harvester.recordings.snapshots import SnapshotWriter
from harvester.recordings.warc import RecordedResponse
from harvester.settings import get_settings
from storage.clusters import FingerprintCache, link_duplicates
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
from storage.retry import RetryPolicy, StoreError, first_line, retrying
from storage.windows import complete_window

FAILED_URLS_KEPT = 200
CLOSE_REASON = "store_failed"
READ_AGAIN = "records not stored: read again by the next crawl"
T = TypeVar("T")
log = logging.getLogger(__name__)


class NotStored(DropItem):
    """The record could not be written; the run counts it and its page is read again next time."""


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
        self.policy = RetryPolicy.from_settings()
        self.unavailable: str | None = None  # why the database is given up on for the rest of the run
        self.failed_pages: set[str] = set()  # pages with a record not stored: validators and hash not kept
        self.pending_windows: list[tuple[str, str, str, int]] = []  # OAI windows whose records may be in flight
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
            self.record_counts = {
                u: s.record_count for u, s in load_page_states(session, source_id).items() if s.record_count != 1
            }  # 1, the usual count, is the default where it is read

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
                self.snapshots.relative = self.snapshots.relative.with_name(f"run-{self.run_id or 0}-{worker}.warc.gz")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, vs in response.headers.items() for v in vs]
        return self.snapshots.write(RecordedResponse(response.url, response.status, headers, response.body))

    def write(self, work: Callable[[Session], T], what: str) -> T:
        """One write transaction through the retry policy. Raises ``StoreError`` when the database stays
        unavailable (and from then on at once, for the rest of the run) and ``SQLAlchemyError`` for an
        error retrying cannot help."""
        if self.unavailable is not None:
            raise StoreError(self.unavailable, "not tried: the database failed earlier in this run")
        try:
            return retrying(work, self.policy, on_retry=lambda _: self.stats.inc_value("harvester/store/retries"))
        except StoreError as exc:
            self.give_up(exc, what)
            raise

    def give_up(self, exc: StoreError, what: str) -> None:
        """The database failed past the retry budget: stop writing and close the spider (nothing more is fetched)."""
        self.unavailable = exc.reason
        log.error(
            "database unavailable while storing %s (%s): the run fails, unstored records are read again "
            "by the next crawl",
            what,
            exc,
        )
        try:
            engine = self.crawler.engine
        except RuntimeError:  # the stage used on its own, outside a crawl
            return
        if engine is not None and self.crawler.spider is not None:
            deferred_from_coro(engine.close_spider_async(reason=CLOSE_REASON))

    def count_failure(self, reason: str, records: int = 1) -> None:
        """``records`` records not stored (0: another write, a page row or window, failed)."""
        key = "harvester/store/failed" if records else "harvester/store/failed_writes"
        self.stats.inc_value(key, records or 1)
        reasons = dict(self.stats.get_value("harvester/store/failed_reasons") or {})
        reasons[reason] = reasons.get(reason, 0) + (records or 1)
        self.stats.set_value("harvester/store/failed_reasons", reasons)

    def process_item(self, item: CandidateItem) -> CandidateItem:
        url = item.canonical_url or canonical_url(item.url)
        page = self.completing_page(item)
        try:
            if item.gone:
                return self.store_gone(item, url, page)
            return self.store_record(item, url, page)
        except StoreError as exc:
            raise self.not_stored(item, exc.reason, str(exc)) from exc
        except SQLAlchemyError as exc:  # this record cannot be written (bad value, bug); the others go on
            log.exception("cannot store %s", url)
            raise self.not_stored(item, type(exc).__name__, first_line(exc)) from exc

    def store_gone(self, item: CandidateItem, url: str, page: tuple[Any, ...] | None) -> CandidateItem:
        def work(session: Session) -> int:
            gone = mark_gone_for(session, item, url, self.run_id)
            if page is not None:
                self.write_page(session, *page)
            return gone

        gone = self.write(work, url)
        self.stats.inc_value("harvester/store/gone", gone)
        self.item_done(item, written=True)
        return item

    def store_record(self, item: CandidateItem, url: str, page: tuple[Any, ...] | None) -> CandidateItem:
        assert item.record_hash is not None
        key = candidate_key(item.record_key, url)
        self.seen[item.fetched_url].add(key)
        status = CandidateStatus.PENDING if (item.score or 0) >= self.threshold else CandidateStatus.FILTERED
        gate = copy.copy(self.quarantine)  # a rolled-back attempt must not count its new record
        held_at: list[int] = []

        def work(session: Session) -> Any:
            self.quarantine = copy.copy(gate)
            result = upsert_candidate(
                session,
                source_id=item.source_id,
                identity_key=key,
                url=url,
                record_hash=item.record_hash,
                run_id=self.run_id,
                initial_status=self.quarantine.status_for(status),
                values=candidate_values(item),
            )
            if result.outcome is Outcome.NEW and self.quarantine.stored_new(
                session, item.source_id, self.run_id, result.candidate_id, status
            ):
                held_at.append(self.quarantine.new_records)
            clustered = result.outcome is not Outcome.NOT_MODIFIED and link_duplicates(
                session, result.candidate_id, new=result.outcome is Outcome.NEW, cache=self.fingerprints
            )
            if page is not None:  # the page's state, when this was its last item, in the same commit
                self.write_page(session, *page)
            return result, clustered

        try:
            result, clustered = self.write(work, url)
        except BaseException:
            self.quarantine = gate
            raise
        self.count_selector_misses(item)
        if held_at:
            self.stats.set_value("harvester/quarantine/held_at_new", held_at[0])
        if clustered:
            self.stats.inc_value("harvester/dedupe/clustered")
        self.item_done(item, written=True)
        self.stats.inc_value(f"harvester/store/{result.outcome.value}")
        if result.outcome is Outcome.NEW:
            self.stats.inc_value(f"harvester/store/new_{status.value}")
        return item

    def count_selector_misses(self, item: CandidateItem) -> None:
        """Per field, the stored records whose registry selector matched nothing (the field then came
        from a fallback such as trafilatura, or stayed empty): selector drift is reported, not silent."""
        spec = getattr(self.crawler.spidercls, "source", None)
        selectors = getattr(spec, "selectors", None) or {}
        missed = [name for name, query in selectors.items() if (item.provenance or {}).get(name) != f"selector:{query}"]
        if missed:
            counts = dict(self.stats.get_value("harvester/extract/selector_missed") or {})
            for name in missed:
                counts[name] = counts.get(name, 0) + 1
            self.stats.set_value("harvester/extract/selector_missed", counts)
        if selectors:
            self.stats.inc_value("harvester/extract/selector_pages")

    def not_stored(self, item: CandidateItem, reason: str, detail: str) -> NotStored:
        """Count the record as not stored and keep its page from being recorded as read."""
        self.count_failure(reason)
        self.failed_pages.add(item.fetched_url)
        self.pages_with_drops.add(item.fetched_url)
        failed = self.stats.get_value("harvester/store/failed_urls") or []
        if len(failed) < FAILED_URLS_KEPT:
            self.stats.set_value("harvester/store/failed_urls", [*failed, {"url": item.url, "error": detail[:300]}])
        self.item_done(item)
        return NotStored(f"not stored ({reason}): {item.url}")

    def completing_page(self, item: CandidateItem) -> tuple[Any, ...] | None:
        """The ``page_parsed`` arguments of the page this item is the last awaited item of, if it is."""
        waiting = self.waiting_pages.get(item.fetched_url)
        if waiting is not None and self.items_done[item.fetched_url] + 1 >= waiting[0]:
            return waiting[1]
        return None

    def item_done(self, item: CandidateItem, written: bool = False) -> None:
        """Count the item against its page; after its last item the page's state is recorded (already
        written in the item's own transaction when ``written``)."""
        page = item.fetched_url
        self.items_done[page] += 1
        waiting = self.waiting_pages.get(page)
        if waiting is not None and self.items_done[page] >= waiting[0]:
            del self.waiting_pages[page]
            self.items_done.pop(page, None)
            if written and page not in self.failed_pages:
                self.page_recorded(*waiting[1])
            else:
                self.record_parsed_page(*waiting[1])

    def item_error(self, item: Any, response: Response | None = None, spider: Any = None, failure: Any = None) -> None:
        if isinstance(item, CandidateItem):
            self.pages_with_drops.add(item.fetched_url)
            self.item_done(item)

    def item_dropped(
        self, item: Any, response: Response | None = None, exception: Any = None, spider: Any = None
    ) -> None:
        if not isinstance(item, CandidateItem) or isinstance(exception, NotStored):
            return  # a record not stored was counted and its page settled when it was dropped
        self.pages_with_drops.add(item.fetched_url)
        page = self.completing_page(item)

        def work(session: Session) -> None:
            record_page(
                session,
                source_id=item.source_id,
                url=item.url,
                canonical_url=canonical_url(item.url),
                http_status=None,
                run_id=self.run_id,
                error=str(exception)[:500],
            )
            if page is not None:
                self.write_page(session, *page)

        try:
            self.write(work, item.url)
        except (StoreError, SQLAlchemyError) as exc:
            self.count_failure(getattr(exc, "reason", type(exc).__name__), records=0)
            self.failed_pages.add(item.fetched_url)
            self.item_done(item)
            return
        self.item_done(item, written=True)

    def page_parsed(
        self,
        spider: Any,
        response: Response,
        record_count: int | None,
        not_modified: bool,
        complete: bool,
        content_hash: str | None,
    ) -> None:
        args = (spider, response, record_count, not_modified, complete, content_hash)
        if record_count and self.items_done[response.url] < record_count:
            self.waiting_pages[response.url] = (record_count, args)
            return
        self.items_done.pop(response.url, None)
        self.record_parsed_page(*args)

    def record_parsed_page(
        self,
        spider: Any,
        response: Response,
        record_count: int | None,
        not_modified: bool,
        complete: bool,
        content_hash: str | None,
    ) -> None:
        """Write a page's state in its own transaction (a page with a record not stored: without its
        validators and hash, so the next crawl reads it again in full)."""
        try:
            self.write(
                lambda session: self.write_page(
                    session, spider, response, record_count, not_modified, complete, content_hash
                ),
                response.url,
            )
        except (StoreError, SQLAlchemyError) as exc:
            self.count_failure(getattr(exc, "reason", type(exc).__name__), records=0)
            self.failed_pages.add(response.url)
            return
        self.page_recorded(spider, response, record_count, not_modified, complete, content_hash)

    def write_page(
        self,
        session: Session,
        spider: Any,
        response: Response,
        record_count: int | None,
        not_modified: bool,
        complete: bool,
        content_hash: str | None,
    ) -> None:
        headers = response.headers
        if response.url in self.failed_pages:
            # no status: the page is neither asked for conditionally nor skipped as recently fetched, so the
            # next crawl reads it in full; validators kept from an earlier run belong to a version stored whole
            record_page(
                session,
                source_id=spider.name,
                url=response.url,
                canonical_url=canonical_url(response.url),
                http_status=None,
                run_id=self.run_id,
                error=READ_AGAIN,
            )
            return
        if not_modified:
            touch_page_candidates(session, spider.name, response.url, self.run_id)
        record_page(
            session,
            source_id=spider.name,
            url=response.url,
            canonical_url=canonical_url(response.url),
            http_status=response.status,
            run_id=self.run_id,
            etag=_header(headers, b"ETag"),
            last_modified=_header(headers, b"Last-Modified"),
            content_hash=content_hash if complete and response.url not in self.pages_with_drops else None,
            record_count=None if not_modified or not complete else record_count,
            sitemap_lastmod=response.meta.get("lastmod"),
            snapshot_ref=None if not_modified else self.snapshot_of(spider, response),
        )

    def snapshot_of(self, spider: Any, response: Response) -> str | None:
        """The page's snapshot, written once however often its transaction is tried."""
        key = ("snapshot", response.url)
        if key not in response.meta:
            response.meta[key] = self.snapshot(spider, response)
        return response.meta[key]

    def page_recorded(
        self,
        spider: Any,
        response: Response,
        record_count: int | None,
        not_modified: bool,
        complete: bool,
        content_hash: str | None,
    ) -> None:
        """Stats and gone-at-source bookkeeping of a page whose state is committed; OAI windows that
        waited for it are committed."""
        self.flush_windows()
        if not_modified:
            self.stats.inc_value("harvester/store/not_modified", self.record_counts.get(response.url, 1))
            self.stats.inc_value("harvester/pages/not_modified")
        else:
            self.stats.inc_value("harvester/pages/parsed")
        seen = self.seen.pop(response.url, set())
        if not getattr(spider, "lists_every_record", False):
            return  # a record missing from a feed, an OAI window or one API page is not gone
        if complete and not not_modified and (len(seen) >= 2 or (self.record_counts.get(response.url) or 0) >= 2):
            self.multi_record_pages[response.url] = seen

    def page_failed(self, spider: Any, url: str, status: int | None, error: str, gone: bool) -> None:
        failed = self.stats.get_value("harvester/failed_urls") or []
        if len(failed) < FAILED_URLS_KEPT:  # the run's per-URL errors; every one is also on its page row
            self.stats.set_value(
                "harvester/failed_urls", [*failed, {"url": url, "status": status, "error": error, "gone": gone}]
            )

        def work(session: Session) -> int:
            record_page(
                session,
                source_id=spider.name,
                url=url,
                canonical_url=canonical_url(url),
                http_status=status,
                run_id=self.run_id,
                error=error,
            )
            return mark_gone(session, spider.name, [canonical_url(url)], error, self.run_id) if gone else 0

        try:
            self.stats.inc_value("harvester/store/gone", self.write(work, url))
        except (StoreError, SQLAlchemyError) as exc:
            self.count_failure(getattr(exc, "reason", type(exc).__name__), records=0)

    def window_done(self, spider: Any, window_from: str, window_until: str, records: int) -> None:
        """An OAI window is committed as complete once every record of its pages is stored (no page waits
        for items any more); after a record was not stored it never is, and is harvested again."""
        self.pending_windows.append((spider.name, window_from, window_until, records))
        self.flush_windows()

    def flush_windows(self) -> None:
        if not self.pending_windows or self.waiting_pages:
            return
        windows, self.pending_windows = self.pending_windows, []
        if self.stats.get_value("harvester/store/failed") or self.failed_pages:
            return

        def work(session: Session) -> None:
            for source_id, window_from, window_until, records in windows:
                complete_window(session, source_id, window_from, window_until, records, self.run_id)

        try:
            self.write(work, "OAI windows")
        except (StoreError, SQLAlchemyError) as exc:
            self.count_failure(getattr(exc, "reason", type(exc).__name__), records=0)
            return
        self.stats.inc_value("harvester/oai/windows_done", len(windows))

    def close_spider(self) -> None:
        """Records missing from a completely parsed complete export are gone at the source."""
        if self.snapshots is not None:
            self.snapshots.close()
        spider = self.crawler.spider
        if spider is None:
            return
        pages = self.stats.get_value("harvester/extract/selector_pages") or 0
        for name, missed in sorted((self.stats.get_value("harvester/extract/selector_missed") or {}).items()):
            log.warning(
                "%s: the selector of %s matched nothing on %d of %d record pages", spider.name, name, missed, pages
            )
        self.flush_windows()
        for page_url in sorted(self.multi_record_pages.keys() - self.pages_with_drops):
            seen = self.multi_record_pages[page_url]
            try:
                gone = self.write(
                    lambda session, page_url=page_url, seen=seen: mark_missing_gone(
                        session, spider.name, page_url, seen, self.run_id
                    ),
                    page_url,
                )
            except (StoreError, SQLAlchemyError) as exc:
                self.count_failure(getattr(exc, "reason", type(exc).__name__), records=0)
                continue
            self.stats.inc_value("harvester/store/gone", gone)


def mark_gone_for(session: Any, item: CandidateItem, url: str, run_id: int | None) -> int:
    """A record the partner says is deleted (OAI ``status="deleted"``): its candidate, by identity key."""
    return mark_gone_keys(session, item.source_id, [candidate_key(item.record_key, url)], "deleted at source", run_id)


def candidate_values(item: CandidateItem) -> dict[str, Any]:
    return {
        **{k: v for k, v in item.harvested_fields().items()},
        "record_key": item.record_key,
        "fetched_url": item.fetched_url,
        "provenance": stored_provenance(item.provenance, item.flags),
        "language": item.language,
        "language_prob": item.language_prob,
        "criteria": {k: v.as_dict() for k, v in item.criteria.items()},
        "score": item.score,
        "tags": item.tags,
        "classifier_version": item.classifier_version,
        "text_hash": item.text_hash,
        "embedding": item.embedding,
    }


def _header(headers: Any, name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value else None
