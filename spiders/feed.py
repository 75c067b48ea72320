"""``feed`` kind: RSS (0.9x, 1.0 RDF, 2.0), Atom (0.3, 1.0) and JSON Feed; each entry is a record keyed by
its id / guid (``entry_key``), its link kept as the URL (pubDate carried along)."""

from __future__ import annotations

from collections.abc import Iterable

from scrapy.http import Response

from harvester.extraction.feeds import entry_key, iter_feed
from harvester.extraction.records import record_identity
from harvester.items import CandidateItem
from spiders.base import HarvesterSpider


class FeedSpider(HarvesterSpider):
    def records(self, response: Response) -> Iterable[CandidateItem]:
        for entry in iter_feed(response.body, base_url=response.url):
            key, url = record_identity(entry, self.source.record, response.url)
            if url == response.url and entry.get("link"):
                url = response.urljoin(entry["link"])
            yield self.item(
                response, url, record_key=key or entry_key(entry), raw=entry, lastmod=entry.get("published")
            )
