"""What every generic spider shares: the registry entry, record vs navigation requests,
not-modified handling, errbacks that record failures, and page signals for the store stage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Self

import scrapy
from scrapy import signals as scrapy_signals
from scrapy.http import Request, Response
from twisted.python.failure import Failure

from harvester.crawl import signals
from harvester.crawl.middlewares import CONDITIONAL, CONTENT_HASH, NOT_MODIFIED, SKIP_UNCHANGED
from harvester.crawl.replay import not_recorded
from harvester.items import CandidateItem
from harvester.registry import SourceSpec

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

GONE_STATUSES = (404, 410)  # from the partner itself: a replay's miss is not one (``not_recorded``)
SKIPPED_PREFIX = "harvester/skipped/"
NOT_RECORDED_ERROR = "not in the recording (replay has no response for this URL)"
# Scrapy raises these without a message; say what happened instead of an empty error.
SILENT_FAILURES = {
    "ResponseDataLossError": "connection closed before the whole body arrived (shorter than its Content-Length)",
    "DownloadCancelledError": "download cancelled: body over the size cap (DOWNLOAD_MAXSIZE)",
}


def failure_message(failure: Failure) -> str:
    """``Type: message`` for a failed request, with Twisted's wrapped reasons spelled out."""
    exc = failure.value
    name = type(exc).__name__
    message = failure.getErrorMessage().strip()
    reasons = getattr(exc.__cause__, "reasons", None) or getattr(exc, "reasons", None)
    if not message and name in SILENT_FAILURES:
        message = SILENT_FAILURES[name]
    elif reasons and (not message or message.startswith("[<")):  # a repr of Twisted Failure objects
        message = "; ".join(f"{r.type.__name__}: {r.getErrorMessage()}" for r in reasons)
    elif not message:
        message = ((type(exc).__doc__ or "").strip().splitlines() or [""])[0]
    return f"{name}: {message}"


class HarvesterSpider(scrapy.Spider):
    """A spider built from a registry entry. Subclasses implement ``records`` and may add ``follow``."""

    source: ClassVar[SourceSpec]
    handle_httpstatus_list: ClassVar[list[int]] = [304, 404, 410]

    @property
    def lists_every_record(self) -> bool:
        """True when a completely parsed record response holds every record the partner has (a whole export):
        only then is a record missing from it gone. Feeds, OAI windows and API pages show part of the records."""
        return False

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.request_dropped, signal=scrapy_signals.request_dropped)
        return spider

    async def start(self) -> AsyncIterator[Any]:
        for request in self.start_requests_for_source():
            yield request

    def start_requests_for_source(self) -> Iterable[Request]:
        for url in self.source.start_urls:
            yield self.record_request(url)

    def record_request(
        self,
        url: str,
        callback: Any = None,
        conditional: bool = True,
        meta: dict[str, Any] | None = None,
        skip_unchanged: bool | None = None,
        **kwargs: Any,
    ) -> Request:
        """A request whose response holds records. ``conditional``: send the stored validators;
        ``skip_unchanged`` (default: same as conditional): a body with the stored hash yields nothing."""
        skip = conditional if skip_unchanged is None else skip_unchanged
        meta = {**(meta or {}), CONDITIONAL: conditional, SKIP_UNCHANGED: skip, "harvester_role": "record"}
        return Request(url, callback=callback or self.parse, errback=self.on_error, meta=meta, **kwargs)

    def nav_request(
        self, url: str, callback: Any, meta: dict[str, Any] | None = None, errback: Any = None, **kw: Any
    ) -> Request:
        """A request for a page that only leads to records (listing, sitemap index): never skipped."""
        meta = {**(meta or {}), "harvester_role": "navigation"}
        return Request(url, callback=callback, errback=errback or self.on_error, meta=meta, dont_filter=False, **kw)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not_recorded(response):
            self._failed(response.url, None, NOT_RECORDED_ERROR, gone=False)
            return
        if response.status in GONE_STATUSES:
            self._failed(response.url, response.status, f"HTTP {response.status}", gone=True)
            return
        if response.status != 304:
            yield from self.follow(response)
        if response.status == 304 or response.meta.get(NOT_MODIFIED):
            self.crawler.signals.send_catch_log(
                signals.page_parsed,
                spider=self,
                response=response,
                record_count=None,
                not_modified=True,
                complete=True,
                content_hash=response.meta.get(CONTENT_HASH),
            )
            return
        count, complete = 0, True
        try:
            for item in self.records(response):
                count += 1
                yield item
        except Exception as exc:  # a malformed body: keep what parsed, record the error, go on
            complete = False
            self.logger.warning("parse error on %s: %s", response.url, exc)
            self._failed(response.url, response.status, f"parse error: {type(exc).__name__}: {exc}", gone=False)
        self.crawler.signals.send_catch_log(
            signals.page_parsed,
            spider=self,
            response=response,
            record_count=count,
            not_modified=False,
            complete=complete,
            content_hash=response.meta.get(CONTENT_HASH),
        )
        if complete:
            yield from self.page_finished(response)

    def page_finished(self, response: Response) -> Iterable[Request]:
        """Requests that may only follow a completely parsed page (OAI resumption); none by default."""
        return ()

    def follow(self, response: Response) -> Iterable[Request]:
        """Requests for further pages (pagination, resumption tokens); none by default."""
        return ()

    def records(self, response: Response) -> Iterable[CandidateItem]:
        """The candidates in a record response; each kind's spider overrides this."""
        return ()

    def item(self, response: Response, url: str, **fields: Any) -> CandidateItem:
        return CandidateItem(source_id=self.name, url=url, fetched_url=response.url, **fields)

    def on_error(self, failure: Failure) -> None:
        request = getattr(failure, "request", None)
        response = getattr(failure.value, "response", None)
        status = getattr(response, "status", None)
        url = request.url if request is not None else "?"
        gone = status in GONE_STATUSES and (request is None or request.meta.get("harvester_role") == "record")
        message = failure_message(failure)
        if not_recorded(response):
            status, gone, message = None, False, NOT_RECORDED_ERROR
        redirects = request.meta.get("redirect_urls") if request is not None else None
        if redirects:
            message += f" (redirected from {redirects[0]})"
        self._failed(url, status, message[:500], gone=gone)

    def request_dropped(self, request: Request) -> None:
        """A redirect back to a URL already requested is dropped by the duplicate filter without any
        errback: record it as a redirect loop against the URL the crawl asked for."""
        redirects = request.meta.get("redirect_urls") or []
        if request.url in redirects:
            self._failed(
                redirects[0],
                None,
                f"redirect loop: {request.url} redirects back to itself after {len(redirects)} hop(s)",
                gone=False,
            )

    def skipped(self, reason: str, count: int = 1) -> None:
        """A record left out on purpose: counted by reason in the run's stats (``harvester/skipped/<reason>``),
        shown by ``runs`` and ``runs --json``, never silently."""
        if getattr(self, "crawler", None) is not None and self.crawler.stats is not None:
            self.crawler.stats.inc_value(f"{SKIPPED_PREFIX}{reason}", count)

    def _failed(self, url: str, status: int | None, error: str, gone: bool) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value("harvester/errors" if not gone else "harvester/gone_pages")
        self.crawler.signals.send_catch_log(
            signals.page_failed, spider=self, url=url, status=status, error=error, gone=gone
        )
