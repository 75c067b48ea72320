"""Downloader middlewares: conditional re-crawls, robots Crawl-delay, Retry-After, WARC recording."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import Request, signals
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import NotConfigured
from warcio.warcwriter import WARCWriter

from harvester.dedupe import body_hash
from harvester.recordings.warc import ExchangeWriter

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

CONDITIONAL = "harvester_conditional"
NOT_MODIFIED = "harvester_not_modified"
CONTENT_HASH = "harvester_content_hash"
SKIP_UNCHANGED = "harvester_skip_unchanged"


class IncrementalMiddleware:
    """Sends If-None-Match / If-Modified-Since for record pages seen before, and flags a 200 whose
    body hash equals the stored one as not modified (no extraction, no new candidate)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.states: dict[str, Any] = {}
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> IncrementalMiddleware:
        if not crawler.settings.getbool("HARVESTER_INCREMENTAL", True):
            raise NotConfigured
        return cls(crawler)

    def spider_opened(self, spider: Spider) -> None:
        from storage.db import session_factory
        from storage.pages import load_page_states

        with session_factory()() as session:
            self.states = load_page_states(session, spider.name)

    def process_request(self, request: Request) -> None:
        state = self.states.get(request.url)
        if state is None or not request.meta.get(CONDITIONAL):
            return
        if state.etag:
            request.headers.setdefault(b"If-None-Match", state.etag.encode())
        if state.last_modified:
            request.headers.setdefault(b"If-Modified-Since", state.last_modified.encode())

    def process_response(self, request: Request, response: Response) -> Response:
        stats = self.crawler.stats
        if response.status == 304:
            request.meta[NOT_MODIFIED] = True
            if stats is not None:
                stats.inc_value("harvester/incremental/http_304")
        elif response.status == 200:
            digest = body_hash(response.body)
            request.meta[CONTENT_HASH] = digest
            state = self.states.get(request.url)
            if request.meta.get(SKIP_UNCHANGED) and state is not None and state.content_hash == digest:
                request.meta[NOT_MODIFIED] = True
                if stats is not None:
                    stats.inc_value("harvester/incremental/same_hash")
        return response


class CrawlDelayMiddleware:
    """Applies robots.txt ``Crawl-delay`` per host (Scrapy parses it but does not apply it), capped."""

    def __init__(self, crawler: Crawler, cap: float, user_agent: str) -> None:
        self.crawler, self.cap, self.user_agent = crawler, cap, user_agent
        self.delays: dict[str, float] = {}
        crawler.signals.connect(self.robots_parsed, signal=signals.robots_parsed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlDelayMiddleware:
        s = crawler.settings
        return cls(crawler, s.getfloat("HARVESTER_CRAWL_DELAY_CAP", 30.0), s.get("USER_AGENT", ""))

    def robots_parsed(self, robotparser: Any, request: Request) -> None:
        from urllib.parse import urlsplit

        delay = robotparser.crawl_delay(self.user_agent)
        if delay:
            host = urlsplit(request.url).hostname or ""
            self.delays[host] = min(float(delay), self.cap)
            if self.crawler.stats is not None:
                self.crawler.stats.set_value(f"harvester/crawl_delay/{host}", self.delays[host])

    def process_request(self, request: Request) -> None:
        from urllib.parse import urlsplit

        host = urlsplit(request.url).hostname or ""
        delay = self.delays.get(host)
        engine = self.crawler.engine
        if delay is None or engine is None:
            return
        slot_key = request.meta.get("download_slot", host)
        slot = engine.downloader.slots.get(slot_key)
        if slot is not None:
            enforce_min_delay(slot, delay)


class RetryAfterMiddleware(RetryMiddleware):
    """Retries like Scrapy, but the retry of a 429/503 with ``Retry-After`` waits that long (capped) first.

    Only the retried request waits: later requests to the same host keep their pace (a host that says
    "retry this in 120 s" once must not slow the rest of the run).
    """

    NOT_BEFORE = "harvester_retry_not_before"

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        self.cap = crawler.settings.getfloat("HARVESTER_RETRY_AFTER_CAP", 120.0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request, spider: Spider | None = None) -> None:
        from scrapy.utils.defer import maybe_deferred_to_future
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        wait = request.meta.get(self.NOT_BEFORE, 0.0) - time.monotonic()
        if wait > 0:
            await maybe_deferred_to_future(deferLater(reactor, wait, lambda: None))  # type: ignore[arg-type]

    def process_response(self, request: Request, response: Response, spider: Spider | None = None) -> Any:
        wait = retry_after_seconds(response.headers.get(b"Retry-After"))
        result = super().process_response(request, response)
        if wait is not None and response.status in (429, 503) and isinstance(result, Request):
            result.meta[self.NOT_BEFORE] = time.monotonic() + min(wait, self.cap)
            if self.crawler.stats is not None:
                self.crawler.stats.inc_value("harvester/retry_after")
        return result


def enforce_min_delay(slot: Any, seconds: float) -> None:
    """Make ``seconds`` the least gap between two requests of a downloader slot. Scrapy varies each
    delay by a random jitter (default +-50 %), which would undercut a Crawl-delay or Retry-After,
    so a slot whose shortest jittered delay is below ``seconds`` gets that fixed delay instead."""
    jitter = getattr(slot, "jitter", None)
    if jitter is None:  # Scrapy before DOWNLOAD_DELAY_JITTER: randomize_delay means +-50 %
        jitter = 0.5 if getattr(slot, "randomize_delay", False) else 0.0
    if slot.delay * (1 - min(float(jitter), 1.0)) >= seconds:
        return
    slot.delay = max(slot.delay, seconds)
    if hasattr(slot, "jitter"):
        slot.jitter = 0.0
    else:
        slot.randomize_delay = False


def retry_after_seconds(value: bytes | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or invalid."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RecordMiddleware:
    """``--record DIR``: every exchange is appended to ``DIR/<source>-<timestamp>.warc.gz`` as it happens,
    written as web archivers write it (``harvester.recordings.warc.ExchangeWriter``). It sits next to the downloader,
    so it sees the bytes the server sent (before decompression) and every redirect hop."""

    def __init__(self, crawler: Crawler, directory: Path) -> None:
        self.crawler, self.directory = crawler, directory
        self.exchanges: ExchangeWriter | None = None
        self.fh: Any = None
        self.count = 0
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RecordMiddleware:
        directory = crawler.settings.get("HARVESTER_RECORD_DIR")
        if not directory:
            raise NotConfigured
        return cls(crawler, Path(directory))

    def process_response(self, request: Request, response: Response) -> Response:
        if self.exchanges is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = getattr(self.crawler.spider, "name", "crawl")
            self.fh = (self.directory / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.warc.gz").open("ab")
            self.exchanges = ExchangeWriter(WARCWriter(self.fh, gzip=True))
        self.exchanges.write(
            request.method,
            response.url,
            _pairs(request.headers),
            response.status,
            _pairs(response.headers),
            response.body,
        )
        self.fh.flush()
        self.count += 1
        return response

    def spider_closed(self, spider: Spider) -> None:
        if self.fh is not None:
            self.fh.close()


def _pairs(headers: Any) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, vs in headers.items() for v in vs]
