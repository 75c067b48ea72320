"""Progress lines on stderr during long crawls (``HARVESTER_PROGRESS``)."""

from __future__ import annotations

import sys
from typing import Any, Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from twisted.internet import task


class ProgressExtension:
    def __init__(self, crawler: Crawler, interval: float) -> None:
        self.crawler, self.interval = crawler, interval
        self.loop: task.LoopingCall | None = None
        crawler.signals.connect(self.opened, signal=signals.spider_opened)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("HARVESTER_PROGRESS", False):
            raise NotConfigured
        return cls(crawler, crawler.settings.getfloat("HARVESTER_PROGRESS_SECONDS", 5.0))

    def line(self, spider: Any, final: str = "") -> str:
        s = self.crawler.stats.get_stats() if self.crawler.stats else {}
        return (
            f"[{spider.name}] requests={s.get('downloader/request_count', 0)} "
            f"items={s.get('item_scraped_count', 0)} new={s.get('harvester/store/new', 0)} "
            f"not_modified={s.get('harvester/store/not_modified', 0)} errors={s.get('harvester/errors', 0)}"
            f"{final}"
        )

    def opened(self, spider: Any) -> None:
        self.loop = task.LoopingCall(lambda: print(self.line(spider), file=sys.stderr, flush=True))
        self.loop.start(self.interval, now=False)

    def closed(self, spider: Any, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        print(self.line(spider, f" ({reason})"), file=sys.stderr, flush=True)
