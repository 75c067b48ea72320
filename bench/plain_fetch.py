"""Baseline: plain Scrapy fetching a sitemap's pages with no processing (``python -m bench.plain_fetch URL``)."""

from __future__ import annotations

import sys
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.http import Response
from scrapy.spiders import SitemapSpider


class PlainSitemapSpider(SitemapSpider):
    name = "plain"

    def parse(self, response: Response, **kwargs: Any) -> None:
        self.crawler.stats.inc_value("plain/pages")  # type: ignore[union-attr]


def main(argv: list[str]) -> None:
    process = CrawlerProcess(
        {
            "LOG_LEVEL": "WARNING",
            "CONCURRENT_REQUESTS": 16,
            "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "ROBOTSTXT_OBEY": True,
            "TELNETCONSOLE_ENABLED": False,
        }
    )
    process.crawl(PlainSitemapSpider, sitemap_urls=[argv[0]])
    process.start()


if __name__ == "__main__":
    main(sys.argv[1:])
