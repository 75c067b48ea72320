"""Stages 1-4 in a process pool: extract, language, hashes and classify of each item run in worker
processes (``harvester.stages.run_cpu_stages``, item in, item out), so the CPU-heavy work uses every
core instead of serialising the crawl on Scrapy's reactor thread.

On when ``HARVESTER_STAGE_POOL`` is ``auto`` on a machine with more than one CPU, or a number > 0; the
in-line stage pipelines then switch themselves off (``NotConfigured``). Storage stays in the crawl
process: an item reaches the store stage only after its own CPU stages, and the store stage records a
page only once every item of it was stored or dropped, so what it assumes still holds. The pool starts
with the first item (an unchanged re-crawl starts none), in a thread: starting the forkserver waits for it
to import the stages (seconds on a slow machine), which on the reactor thread stalled every download and
stretched the politeness delay; workers exit when their crawl process is gone (killed).

The workers are renewed after ``HARVESTER_STAGE_POOL_MAX_TASKS`` items per worker, which keeps their memory
flat: new items wait while the current pool finishes its items and exits, then a new pool starts (from
the forkserver, already warm: about 0.2 s). Not the executor's own ``max_tasks_per_child``: on Python 3.11
and 3.12 that deadlocks once a worker exits at its limit with items queued (CPython gh-115634), which hung
every crawl past 5,000 items per worker.

A worker that dies (killed by the OOM killer, a crash in a C extension) breaks the whole executor; the pool
is then restarted and the items it held are sent again, up to ``ATTEMPTS`` times each. An item still in the
pool after ``HARVESTER_STAGE_TIMEOUT`` seconds is dropped as an error and the pool restarted (its workers
terminated), so one pathological page cannot hang a crawl.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Self

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.settings import BaseSettings
from scrapy.statscollectors import StatsCollector

from harvester.crawl.memory_trim import WORKER_TRIM_EVERY, malloc_trim
from harvester.items import CandidateItem
from harvester.registry import SourceSpec
from harvester.stages import StagesOutcome, apply_hashes, mark_same_text, run_cpu_stages

if TYPE_CHECKING:
    from harvester.classify.learn import RelevanceModel

logger = logging.getLogger(__name__)

_worker: dict[str, Any] = {}
ATTEMPTS = 3  # tries per item when workers die under it: a page that kills its worker every time is dropped


def stage_pool_size(settings: BaseSettings) -> int:
    """Worker processes for the CPU stages: ``auto`` = one per CPU when there are several, else 0;
    unset (components built outside a harvester crawl) = 0."""
    value = settings.get("HARVESTER_STAGE_POOL")
    if value is None or value == "":
        return 0
    if str(value).lower() == "auto":
        cpus = os.cpu_count() or 1
        return cpus if cpus > 1 else 0
    return max(0, int(value))


def _init_worker(spec: SourceSpec, seed: int, model: Any, crawl_pid: int) -> None:
    _worker.update(spec=spec, seed=seed, model=model)
    threading.Thread(target=_exit_with, args=(crawl_pid,), daemon=True).start()


def _exit_with(crawl_pid: int) -> None:
    """A worker leaves when its crawl process is gone (a killed crawl must not leave idle workers behind)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(crawl_pid, 0)
        except ProcessLookupError:
            os._exit(0)


def _run(item: CandidateItem) -> StagesOutcome:
    outcome = run_cpu_stages(item, _worker["spec"], _worker["seed"], _worker["model"])
    _worker["items"] = _worker.get("items", 0) + 1
    if _worker["items"] % WORKER_TRIM_EVERY == 0:
        malloc_trim()
    return outcome


def _ready() -> bool:
    return True


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now. The executor has no public way to before Python 3.14 (``terminate_workers``);
    its ``_processes`` map is what that method uses."""
    for process in list((pool._processes or {}).values()):  # type: ignore[attr-defined]
        process.terminate()


class PooledStagesPipeline:
    def __init__(
        self, stats: StatsCollector, spec: SourceSpec, seed: int, size: int, max_tasks: int, timeout: float
    ) -> None:
        self.stats, self.spec, self.seed, self.size, self.max_tasks = stats, spec, seed, size, max_tasks
        self.timeout = timeout
        self.pool: ProcessPoolExecutor | None = None
        self.generation = 0  # which pool is current: a broken or timed-out pool is replaced once
        self.pool_items = 0
        self.model: Any = None
        self.renewal = asyncio.Lock()
        self.seen_text: dict[int, int] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        size = stage_pool_size(crawler.settings)
        if not size:
            raise NotConfigured
        assert crawler.stats is not None and crawler.spidercls is not None
        s = crawler.settings
        return cls(
            crawler.stats,
            crawler.spidercls.source,
            s.getint("HARVESTER_LANGDETECT_SEED", 0),  # type: ignore[attr-defined]
            size,
            s.getint("HARVESTER_STAGE_POOL_MAX_TASKS", 5000),
            s.getfloat("HARVESTER_STAGE_TIMEOUT", 120.0),
        )

    def open_spider(self) -> None:
        self.model = load_model(self.stats)
        self.stats.set_value("harvester/stage_pool/workers", self.size)

    def _start_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["pipelines.pool_warm"])
        pool = ProcessPoolExecutor(
            self.size,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.spec, self.seed, self.model, os.getpid()),
        )
        for _ in range(self.size):  # start the workers now, not on the first items
            pool.submit(_ready)
        self.pool_items = 0
        self.generation += 1
        return pool

    async def _replace(self, generation: int, stat: str, *, terminate: bool) -> None:
        """Replace pool ``generation`` by a new one (once, whoever asks first). Its workers finish their items
        and exit, or with ``terminate`` are stopped at once; a worker still busy after the item timeout is
        stopped too."""
        async with self.renewal:
            old = self.pool
            if generation != self.generation or old is None:
                return
            if terminate:
                _terminate_workers(old)
            try:
                await asyncio.wait_for(asyncio.to_thread(old.shutdown, wait=True), self.timeout)
            except TimeoutError:
                _terminate_workers(old)
                await asyncio.to_thread(old.shutdown, wait=True)
            self.pool = await asyncio.to_thread(self._start_pool)
            self.stats.inc_value(f"harvester/stage_pool/{stat}")

    async def _submit(self, item: CandidateItem) -> StagesOutcome:
        for _ in range(ATTEMPTS):
            while True:  # checked again after every wait: the pool may have been replaced or filled meanwhile
                if self.renewal.locked():  # a pool being replaced takes no new items: wait for the new one
                    async with self.renewal:
                        pass
                elif self.pool is None:  # the first item: a crawl that finds nothing new starts no workers
                    async with self.renewal:
                        if self.pool is None:
                            self.pool = await asyncio.to_thread(self._start_pool)
                elif self.pool_items >= self.max_tasks * self.size:
                    await self._replace(self.generation, "renewed", terminate=False)
                else:
                    break
            pool, generation = self.pool, self.generation
            assert pool is not None
            self.pool_items += 1
            try:
                return await asyncio.wait_for(asyncio.wrap_future(pool.submit(_run, item)), self.timeout)
            except BrokenProcessPool:
                await self._replace(generation, "restarted", terminate=True)
            except TimeoutError:
                await self._replace(generation, "timed_out", terminate=True)
                return StagesOutcome(
                    item,
                    error=f"CPU stages took over {self.timeout:g} s for {item.url}",
                    reason=f"CPU stages took over {self.timeout:g} s",
                )
        return StagesOutcome(
            item, error=f"a stage worker died on {item.url} {ATTEMPTS} times", reason="a stage worker died"
        )

    async def process_item(self, item: CandidateItem) -> CandidateItem:
        if item.gone:
            apply_hashes(item)
            return item
        outcome = await self._submit(item)
        if outcome.error is not None:
            item.body = None
            self.stats.inc_value("harvester/extract/failed")
            self.stats.inc_value(f"harvester/dropped/{outcome.reason or 'extraction failed'}")
            raise DropItem(outcome.error)
        done = outcome.item
        self.stats.inc_value("harvester/extract/ok")
        self.stats.inc_value(f"harvester/language/{outcome.language_source}")
        self.stats.inc_value("harvester/classify/scored")
        if mark_same_text(done, self.seen_text):
            self.stats.inc_value("harvester/dedupe/same_text")
        return done

    def close_spider(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def load_model(stats: StatsCollector) -> RelevanceModel | None:
    """The newest learned model for the classify stage, in the pool or in-line (None: the rules rank), once
    per crawl; its version goes into the stats."""
    from storage.db import session_factory
    from storage.model_store import ModelUnavailable, latest_model

    try:
        with session_factory()() as session:
            model = latest_model(session)
    except ModelUnavailable as exc:
        logger.warning("scoring with the rules only: %s", exc)
        model = None
    stats.set_value("harvester/classify/model", model.version if model else "rules")
    return model
