"""``sitemap`` kind: sitemap indexes and urlsets (gzip too); lastmod skips unchanged pages before fetching."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from lxml import etree
from scrapy.http import Request, Response

from harvester.extraction.structured import StructuredBodyError, maybe_gunzip, safe_parser
from harvester.items import CandidateItem
from spiders.base import HarvesterSpider
from spiders.listing import html_item

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
MAX_URLS = 50_000


def parse_sitemap(body: bytes) -> tuple[str, list[tuple[str, str | None]]]:
    """('index' | 'urlset', [(loc, lastmod)]), capped at the protocol's 50,000 entries."""
    kind, entries, _ = parse_sitemap_capped(body)
    return kind, entries


def parse_sitemap_capped(body: bytes) -> tuple[str, list[tuple[str, str | None]], int]:
    """``parse_sitemap`` and the number of entries the file holds beyond the 50,000 cap (left out).

    Raises ``StructuredBodyError`` for a body that is not well-formed XML or declares entities
    (billion laughs, external entities): a sitemap never needs them, and an unexpanded entity
    would silently cut a ``<loc>`` short."""
    try:
        root = etree.fromstring(maybe_gunzip(body).lstrip(), parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise StructuredBodyError(f"bad sitemap XML: {exc}") from exc
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise StructuredBodyError("sitemap declares XML entities; refused")
    kind = "index" if etree.QName(root).localname == "sitemapindex" else "urlset"
    entries, over = [], 0
    for node in root:
        if not isinstance(node.tag, str):
            continue
        loc = next(
            (c.text.strip() for c in node if isinstance(c.tag, str) and etree.QName(c).localname == "loc" and c.text),
            None,
        )
        lastmod = next(
            (
                c.text.strip()
                for c in node
                if isinstance(c.tag, str) and etree.QName(c).localname == "lastmod" and c.text
            ),
            None,
        )
        if loc:
            if len(entries) >= MAX_URLS:
                over += 1
                continue
            entries.append((loc, lastmod))
    return kind, entries, over


class SitemapSpider(HarvesterSpider):
    def start_requests_for_source(self) -> Iterable[Request]:
        from storage.db import session_factory
        from storage.pages import load_sitemap_lastmods

        with session_factory()() as session:
            self.known_lastmod = load_sitemap_lastmods(session, self.name)
        for url in self.source.start_urls:
            yield self.nav_request(url, self.parse_sitemap)

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        if response.status != 200:
            self._failed(response.url, response.status, f"HTTP {response.status}", gone=False)
            return
        try:
            kind, entries, over = parse_sitemap_capped(response.body)
        except StructuredBodyError as exc:
            self.logger.warning("sitemap refused %s: %s", response.url, exc)
            self._failed(response.url, response.status, f"sitemap refused: {exc}"[:500], gone=False)
            return
        if over:
            self.logger.warning("sitemap %s lists %d URLs beyond the protocol's 50,000: left out", response.url, over)
            self.skipped(f"sitemap entry beyond the protocol's {MAX_URLS:,} URLs", over)
        options = self.source.sitemap
        follow = [re.compile(p) for p in (options.follow if options else [])]
        after = options.lastmod_after if options else None
        for loc, lastmod in entries:
            url = response.urljoin(loc)
            if kind == "index":
                yield self.nav_request(url, self.parse_sitemap)
                continue
            if follow and not any(p.search(url) for p in follow):
                continue
            if after and lastmod and lastmod[:10] < after:
                continue
            if lastmod and self.known_lastmod.get(url) == lastmod:
                if self.crawler.stats is not None:
                    self.crawler.stats.inc_value("harvester/sitemap/lastmod_unchanged")
                continue
            yield self.record_request(url, meta={"lastmod": lastmod})

    def records(self, response: Response) -> Iterable[CandidateItem]:
        yield html_item(self, response)

    def item(self, response: Response, url: str, **fields: Any) -> CandidateItem:
        return super().item(response, url, lastmod=response.meta.get("lastmod"), **fields)
