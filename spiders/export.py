"""``export`` kind: a whole catalogue in one file (CSV, XLSX, JSON, JSON Lines, XML, gzip)."""

from __future__ import annotations

from collections.abc import Iterable

from scrapy.http import Response

from harvester.extraction.records import record_identity
from harvester.extraction.structured import iter_export
from harvester.items import CandidateItem
from spiders.base import HarvesterSpider


class ExportSpider(HarvesterSpider):
    @property
    def lists_every_record(self) -> bool:
        return True

    def records(self, response: Response) -> Iterable[CandidateItem]:
        options = self.source.export
        assert options is not None
        for row in iter_export(response.body, options):
            key, url = record_identity(row, self.source.record, response.url)
            yield self.item(response, url, record_key=key, raw=row)
