"""Stage 2: language and its probability (the page's lang attribute for short text), then the countries
the text names when the record gives none (they need the language)."""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.statscollectors import StatsCollector

from harvester.items import CandidateItem
from harvester.stages import apply_language, apply_text_countries
from pipelines.pool import stage_pool_size


class LanguagePipeline:
    def __init__(self, stats: StatsCollector, seed: int) -> None:
        self.stats, self.seed = stats, seed

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if stage_pool_size(crawler.settings):  # the pooled stages pipeline does this stage
            raise NotConfigured
        assert crawler.stats is not None
        return cls(crawler.stats, crawler.settings.getint("HARVESTER_LANGDETECT_SEED", 0))

    def process_item(self, item: CandidateItem) -> CandidateItem:
        if item.gone:
            return item
        guess = apply_language(item, self.seed)
        apply_text_countries(item)
        self.stats.inc_value(f"harvester/language/{guess.source}")
        return item
