"""Distributed mode: several crawl processes (on one or many machines) share one crawl of a source.

With ``HARVESTER_REDIS_URL`` set, every crawl uses scrapy-redis's scheduler and dupefilter on Redis, so
the workers of one crawl pop requests from one shared queue and each URL is fetched once. PostgreSQL is
the shared database; the workers join one crawl-run row (``storage.runs.join_run``) and report their
stats into it, so the run's figures are the sum over workers.

Each shared crawl has a key (``harvester:<source>:crawl`` holds it): the first worker sets it, later
workers join it, the last worker to leave deletes it with the crawl's queue and seen-set, so the next
crawl of the source starts fresh. Start requests are seeded by every worker: the shared dupefilter keeps
all but the first copy. A worker whose queue is empty waits while another worker is still busy (its
responses may add requests) and leaves when every worker is idle.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any, Self

from redis import Redis
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.scheduler import Scheduler
from twisted.internet import task

PREFIX = "harvester"
STALE_WORKER_SECONDS = 60.0
BEAT_SECONDS = 1.0


def scrapy_settings(redis_url: str, extensions: dict[str, int]) -> dict[str, Any]:
    """The Scrapy settings that turn a crawl into a worker of a shared crawl."""
    return {
        "REDIS_URL": redis_url,
        "SCHEDULER": "harvester.crawl.distributed.SharedScheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_PERSIST": True,  # the last worker cleans up, not the first one to finish
        # After the run extension (500): a worker finishes its share of the run before it leaves the shared
        # crawl, so a worker starting meanwhile cannot begin a new crawl while this one's run is still open.
        "EXTENSIONS": {**extensions, "harvester.crawl.distributed.WorkerExtension": 505},
    }


class SharedCrawl:
    """One shared crawl of a source in Redis, as seen by one worker."""

    def __init__(self, server: Redis, source_id: str, token: str, worker: str) -> None:
        self.server, self.source_id, self.token, self.worker = server, source_id, token, worker

    @staticmethod
    def pointer(source_id: str) -> str:
        return f"{PREFIX}:{source_id}:crawl"

    def key(self, name: str) -> str:
        return f"{PREFIX}:{self.source_id}:{self.token}:{name}"

    @classmethod
    def attach(cls, server: Redis, source_id: str) -> Self:
        """Join the source's running shared crawl, or start one."""
        pointer = cls.pointer(source_id)
        server.set(pointer, uuid.uuid4().hex, nx=True)
        raw = server.get(pointer)
        assert raw is not None
        token = raw.decode() if isinstance(raw, bytes) else str(raw)
        crawl = cls(server, source_id, token, f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
        crawl.beat(busy=True)
        return crawl

    def beat(self, busy: bool) -> None:
        self.server.hset(self.key("workers"), self.worker, json.dumps({"busy": busy, "at": time.time()}))

    def workers(self) -> dict[str, dict[str, Any]]:
        """Live workers (a worker that stopped beating for a minute was killed)."""
        raw = self.server.hgetall(self.key("workers"))
        cutoff = time.time() - STALE_WORKER_SECONDS
        states = {_text(k): json.loads(_text(v)) for k, v in raw.items()}
        return {w: s for w, s in states.items() if s["at"] >= cutoff}

    def others_busy(self) -> bool:
        return any(s["busy"] for w, s in self.workers().items() if w != self.worker)

    def leave(self) -> bool:
        """Unregister; the last live worker deletes the crawl's keys. True for the last one."""
        self.server.hdel(self.key("workers"), self.worker)
        if self.workers():
            return False
        with self.server.pipeline() as pipe:
            pipe.delete(self.key("requests"), self.key("seen"), self.key("workers"))
            pipe.execute()
        _delete_if_equal(self.server, self.pointer(self.source_id), self.token)
        return True


_DELETE_IF_EQUAL = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _delete_if_equal(server: Redis, key: str, value: str) -> None:
    server.eval(_DELETE_IF_EQUAL, 1, key, value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SharedScheduler(Scheduler):
    """scrapy-redis's scheduler with the queue and seen-set of the source's current shared crawl."""

    def open(self, spider: Any) -> Any:
        crawl = SharedCrawl.attach(self.server, spider.name)
        spider.shared_crawl = crawl
        self.queue_key = crawl.key("requests")
        self.df = RFPDupeFilter(self.server, key=crawl.key("seen"), debug=spider.settings.getbool("DUPEFILTER_DEBUG"))
        return super().open(spider)


class WorkerExtension:
    """Keeps a worker's busy flag fresh in Redis and holds an idle worker while others may add work."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.loop: task.LoopingCall | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.get("REDIS_URL"):
            raise NotConfigured
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        self.loop = task.LoopingCall(self._beat, spider)
        self.loop.start(BEAT_SECONDS, now=False)

    def _beat(self, spider: Any) -> None:
        engine = self.crawler.engine
        if engine is not None and hasattr(spider, "shared_crawl"):
            spider.shared_crawl.beat(busy=not engine.spider_is_idle())

    def spider_idle(self, spider: Any) -> None:
        crawl: SharedCrawl | None = getattr(spider, "shared_crawl", None)
        if crawl is None:
            return
        crawl.beat(busy=False)
        if crawl.server.zcard(crawl.key("requests")) or crawl.others_busy():
            if self.crawler.stats is not None:
                self.crawler.stats.inc_value("harvester/distributed/waited_for_peers")
            raise DontCloseSpider

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        crawl: SharedCrawl | None = getattr(spider, "shared_crawl", None)
        if crawl is not None and crawl.leave() and self.crawler.stats is not None:
            self.crawler.stats.set_value("harvester/distributed/last_worker", True)
