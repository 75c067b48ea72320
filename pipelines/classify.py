"""Stage 4: CBD criteria (a)-(d) with evidence, CHM tags, and the score that ranks the queue: the
latest learned model's (loaded once per crawl) when one was trained, else the rules' score."""

from __future__ import annotations

import logging
from typing import Self

from scrapy.crawler import Crawler
from scrapy.statscollectors import StatsCollector

from harvester.classify.learn import RelevanceModel
from harvester.items import CandidateItem
from harvester.stages import classify_item

logger = logging.getLogger(__name__)


class ClassifyPipeline:
    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats
        self.model: RelevanceModel | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        assert crawler.stats is not None
        return cls(crawler.stats)

    def open_spider(self) -> None:
        from storage.db import session_factory
        from storage.model_store import ModelUnavailable, latest_model

        try:
            with session_factory()() as session:
                self.model = latest_model(session)
        except ModelUnavailable as exc:
            logger.warning("scoring with the rules only: %s", exc)
            self.model = None
        self.stats.set_value("harvester/classify/model", self.model.version if self.model else "rules")

    def process_item(self, item: CandidateItem) -> CandidateItem:
        if item.gone:
            return item
        classify_item(item, self.model)
        self.stats.inc_value("harvester/classify/scored")
        return item
