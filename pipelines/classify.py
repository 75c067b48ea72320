"""Stage 4: CBD criteria (a)-(d) with evidence, overall score and CHM tags."""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.statscollectors import StatsCollector

from harvester.items import CandidateItem
from harvester.stages import classify_item


class ClassifyPipeline:
    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        assert crawler.stats is not None
        return cls(crawler.stats)

    def process_item(self, item: CandidateItem) -> CandidateItem:
        if item.gone:
            return item
        classify_item(item)
        self.stats.inc_value("harvester/classify/scored")
        return item
