"""``feed`` kind: RSS 2.0, Atom and JSON Feed; each entry is a record (pubDate carried along)."""

from __future__ import annotations

from collections.abc import Iterable

from scrapy.http import Response

from harvester.extraction.feeds import iter_feed
from harvester.extraction.records import record_identity
from harvester.items import CandidateItem
from spiders.base import HarvesterSpider


class FeedSpider(HarvesterSpider):
    def records(self, response: Response) -> Iterable[CandidateItem]:
        for entry in iter_feed(response.body):
            key, url = record_identity(entry, self.source.record, response.url)
            if url == response.url and entry.get("link"):
                url = response.urljoin(entry["link"])
            yield self.item(response, url, record_key=key or entry.get("id"), raw=entry,
                            lastmod=entry.get("published"))
