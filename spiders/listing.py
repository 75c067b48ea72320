"""``listing`` kind: HTML listing pages -> detail pages (by a link selector, or found by their shape), with
pagination; ``page`` kind: the start URLs are the record pages themselves."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from email.utils import parsedate_to_datetime

from scrapy.http import Request, Response

from harvester.extraction.html import select
from harvester.extraction.links import discover_links
from harvester.items import CandidateItem
from harvester.registry import ListingOptions
from spiders.base import HarvesterSpider


def fetched_on(response: Response) -> str | None:
    """The day the server sent the response (its ``Date`` header), as ISO."""
    raw = response.headers.get(b"Date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw.decode("latin-1")).date().isoformat()
    except (TypeError, ValueError):
        return None


def html_item(spider: HarvesterSpider, response: Response) -> CandidateItem:
    """A detail page as a candidate: the body goes to the extract stage with the source's selectors."""
    content_type = response.headers.get(b"Content-Type", b"").decode("latin-1") or None
    return spider.item(
        response, response.url, body=response.body, content_type=content_type, fetched_on=fetched_on(response)
    )


class ListingSpider(HarvesterSpider):
    recently_fetched: frozenset[str] = frozenset()

    def start_requests_for_source(self) -> Iterable[Request]:
        options = self.source.listing or ListingOptions()
        if options is not None and options.revisit_days:
            from storage.db import session_factory
            from storage.pages import load_recently_fetched

            with session_factory()() as session:
                self.recently_fetched = load_recently_fetched(session, self.name, options.revisit_days)
        for url in self.source.start_urls:
            yield self.nav_request(url, self.parse_listing, meta={"listing_page": 1})

    def parse_listing(self, response: Response) -> Iterator[Request]:
        if response.status != 200:
            self._failed(response.url, response.status, f"HTTP {response.status}", gone=False)
            return
        options = self.source.listing or ListingOptions()
        links = (
            [response.urljoin(h.strip()) for h in select(response.selector, options.item_links)]
            if options.item_links
            else discover_links(response, self.source.hosts)
        )
        for url in links:
            if url in self.recently_fetched:
                if self.crawler.stats is not None:
                    self.crawler.stats.inc_value("harvester/listing/recently_fetched")
                continue
            yield self.record_request(url)
        page = response.meta.get("listing_page", 1)
        if options.next_page and page < options.max_pages:
            for href in select(response.selector, options.next_page)[:1]:
                yield self.nav_request(
                    response.urljoin(href.strip()), self.parse_listing, meta={"listing_page": page + 1}
                )

    def records(self, response: Response) -> Iterable[CandidateItem]:
        yield html_item(self, response)


class PageSpider(ListingSpider):
    """``page`` kind: every start URL is a record page."""

    def start_requests_for_source(self) -> Iterable[Request]:
        for url in self.source.start_urls:
            yield self.record_request(url)
