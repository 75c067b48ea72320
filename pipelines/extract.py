"""Stage 1: fill normalised fields from the raw record or HTML body (selectors first, trafilatura after)."""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.statscollectors import StatsCollector

from harvester.extraction.html import ExtractionError
from harvester.extraction.item import extract_item
from harvester.extraction.structured import StructuredBodyError
from harvester.items import CandidateItem
from harvester.registry import SourceSpec
from harvester.stages import drop_reason
from pipelines.pool import stage_pool_size


class ExtractPipeline:
    def __init__(self, stats: StatsCollector, spec: SourceSpec) -> None:
        self.stats, self.spec = stats, spec

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if stage_pool_size(crawler.settings):  # the pooled stages pipeline does this stage
            raise NotConfigured
        assert crawler.stats is not None and crawler.spidercls is not None
        return cls(crawler.stats, crawler.spidercls.source)  # type: ignore[attr-defined]

    def process_item(self, item: CandidateItem) -> CandidateItem:
        if item.gone:
            return item
        try:
            extract_item(item, self.spec)
        except (ExtractionError, StructuredBodyError) as exc:
            self.stats.inc_value("harvester/extract/failed")
            self.stats.inc_value(f"harvester/dropped/{drop_reason(exc)}")
            raise DropItem(f"extraction failed for {item.url}: {exc}") from exc
        finally:
            item.body = None
        self.stats.inc_value("harvester/extract/ok")
        return item
