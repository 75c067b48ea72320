"""The Scrapy runtime of one crawl: runner, Scrapy settings, request queue, spider loader, middlewares,
extensions, replay, distributed mode and offline runs."""
