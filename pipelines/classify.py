"""Stage 4: CBD criteria (a)-(d) with evidence, CHM tags, and the score that ranks the queue: the
latest learned model's (loaded once per crawl) when one was trained, else the rules' score."""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.statscollectors import StatsCollector

from harvester.classify.learn import RelevanceModel
from harvester.items import CandidateItem
from harvester.stages import classify_item
from pipelines.pool import load_model, stage_pool_size


class ClassifyPipeline:
    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats
        self.model: RelevanceModel | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if stage_pool_size(crawler.settings):  # the pooled stages pipeline does this stage
            raise NotConfigured
        assert crawler.stats is not None
        return cls(crawler.stats)

    def open_spider(self) -> None:
        self.model = load_model(self.stats)

    def process_item(self, item: CandidateItem) -> CandidateItem:
        if item.gone:
            return item
        classify_item(item, self.model)
        self.stats.inc_value("harvester/classify/scored")
        return item
