"""Stage 3: canonical URL and hashes; the same text under two URLs in one crawl is counted.

Near-duplicate clusters across sources and languages need the database: the store stage indexes
every new or changed candidate's fingerprint (``storage.clusters.link_duplicates``) in the same
transaction as its upsert and joins it to the cluster of an existing near-duplicate;
``harvester classify dedupe`` recomputes every cluster.
"""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.statscollectors import StatsCollector

from harvester.items import CandidateItem
from harvester.stages import apply_hashes, mark_same_text
from pipelines.pool import stage_pool_size


class DedupePipeline:
    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats
        self.seen_text: dict[int, int] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if stage_pool_size(crawler.settings):  # the pooled stages pipeline does this stage
            raise NotConfigured
        assert crawler.stats is not None
        return cls(crawler.stats)

    def process_item(self, item: CandidateItem) -> CandidateItem:
        apply_hashes(item)
        if mark_same_text(item, self.seen_text):
            self.stats.inc_value("harvester/dedupe/same_text")
        return item
