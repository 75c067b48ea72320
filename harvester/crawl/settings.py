"""Scrapy settings for every harvester crawl (``scrapy.cfg`` points here).

Polite by default: robots.txt obeyed, an identifying User-Agent, one request at a time per host
with a delay, AutoThrottle, capped sizes, redirects and timeouts. Per-source overrides come from
the registry entry's ``politeness`` section.
"""

from harvester.settings import get_settings

BOT_NAME = "chm-harvester"
SPIDER_LOADER_CLASS = "harvester.crawl.spider_loader.RegistrySpiderLoader"
SPIDER_MODULES = ["spiders"]

USER_AGENT = get_settings().user_agent
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = 1.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
HARVESTER_CRAWL_DELAY_CAP = 30.0
HARVESTER_RETRY_AFTER_CAP = 120.0
# Tests and local mirrors only: lets crawls reach loopback and private addresses.
HARVESTER_ALLOW_PRIVATE_HOSTS = False

DOWNLOAD_TIMEOUT = get_settings().download_timeout
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024
REDIRECT_MAX_TIMES = 10
RETRY_TIMES = 2
DOWNLOAD_FAIL_ON_DATALOSS = True

TELNETCONSOLE_ENABLED = False
DOWNLOAD_HANDLERS = {"file": None, "data": None, "ftp": None, "s3": None}
COOKIES_ENABLED = False

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "harvester.crawl.ssrf.SsrfGuardMiddleware": 50,
    "harvester.crawl.middlewares.RetryAfterMiddleware": 550,
    "harvester.crawl.middlewares.CrawlDelayMiddleware": 560,
    "harvester.crawl.middlewares.IncrementalMiddleware": 580,
    # next to the downloader: the bytes as sent (before HttpCompression, 590) and every redirect hop (600)
    "harvester.crawl.middlewares.RecordMiddleware": 890,
}

ITEM_PIPELINES = {
    "pipelines.pool.PooledStagesPipeline": 90,  # stages 100-400 in a process pool (HARVESTER_STAGE_POOL)
    "pipelines.extract.ExtractPipeline": 100,
    "pipelines.language.LanguagePipeline": 200,
    "pipelines.dedupe.DedupePipeline": 300,
    "pipelines.classify.ClassifyPipeline": 400,
    "pipelines.store.StorePipeline": 500,
}
EXTENSIONS = {
    "harvester.crawl.runs_extension.RunExtension": 500,
    "harvester.crawl.progress.ProgressExtension": 510,
    "harvester.crawl.memory_trim.MallocTrimExtension": 520,
}

SCHEDULER = "harvester.crawl.request_queue.DiskQueueScheduler"  # request queue on disk: a sitemap's 50,000 URLs
# Distributed mode (HARVESTER_REDIS_URL): scrapy-redis's scheduler and dupefilter, shared by every worker.
if get_settings().redis_url:
    from harvester.crawl.distributed import scrapy_settings as _distributed_settings

    globals().update(_distributed_settings(str(get_settings().redis_url), EXTENSIONS))
# Processes for the CPU-heavy stages (None: one per CPU when there are several; 0: in the crawl process).
HARVESTER_STAGE_POOL = get_settings().stage_pool
HARVESTER_STAGE_POOL_MAX_TASKS = get_settings().stage_pool_max_tasks
HARVESTER_STAGE_TIMEOUT = get_settings().stage_timeout

HARVESTER_LANGDETECT_SEED = get_settings().langdetect_seed
HARVESTER_HEARTBEAT_SECONDS = 15
HARVESTER_MALLOC_TRIM_SECONDS = 30  # free heap handed back to the OS (harvester.crawl.memory_trim)
HARVESTER_TRIGGER = "cli"

LOG_LEVEL = "INFO"
LOG_FORMATTER = "harvester.crawl.logformatter.HarvesterLogFormatter"
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
FEED_EXPORT_ENCODING = "utf-8"
