"""Scrapy extension that owns the crawl-run row: start (with the one-run-per-source lock),
heartbeat with live stats, finish with the final stats and status.

A run in which a record (or a page row, an OAI window) could not be stored ends ``failed`` with the
count in its reason and stats, whatever Scrapy's close reason; opening and closing the run row retry
through a faltering database like the store stage does. ``crawl_outcome`` tells the crawl process
whether to exit non-zero."""

from __future__ import annotations

import json
import logging
from typing import Any, Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_from_coro
from sqlalchemy.exc import SQLAlchemyError
from twisted.internet import task

from harvester.dedupe import record_hash
from harvester.health.checks import field_fill_stats
from storage.db import transaction
from storage.models import RunStatus
from storage.retry import RetryPolicy, StoreError, retrying
from storage.runs import RunLockedError, ensure_source, finish_run, heartbeat, join_run, start_run, worker_report

SKIPPED, DROPPED = "harvester/skipped/", "harvester/dropped/"


def incomplete_reason(raw: dict[str, Any]) -> str | None:
    """Why a run that finished did not harvest all it set out to (an OAI resumption chain that broke), or None."""
    pending, done = raw.get("harvester/oai/windows_pending") or 0, raw.get("harvester/oai/windows_done") or 0
    if done < pending:
        return f"OAI-PMH harvest stopped early: {pending - done} of {pending} windows unfinished (a chain broke)"
    return None


RUN_CLOSED = "harvester/run_closed"  # stat: the run row got its final status
CLOSE_RUN_BUDGET_S = 60.0  # the run's final status is worth waiting for: retried at least this long
logger = logging.getLogger(__name__)


def run_stats(raw: dict[str, Any]) -> dict[str, Any]:
    """The run summary kept on the run row: requests, responses by status, items and outcomes."""
    by_status = {k.rsplit("/", 1)[1]: v for k, v in raw.items() if k.startswith("downloader/response_status_count/")}
    start, end = raw.get("start_time"), raw.get("finish_time")
    return {
        "requests": raw.get("downloader/request_count", 0),
        "responses_by_status": by_status,
        "items": raw.get("item_scraped_count", 0),
        "dropped": raw.get("item_dropped_count", 0),
        "new": raw.get("harvester/store/new", 0),
        "new_pending": raw.get("harvester/store/new_pending", 0),
        "new_filtered": raw.get("harvester/store/new_filtered", 0),
        "updated": raw.get("harvester/store/updated", 0),
        "not_modified": raw.get("harvester/store/not_modified", 0),
        "pages_not_modified": raw.get("harvester/pages/not_modified", 0),
        "pages_parsed": raw.get("harvester/pages/parsed", 0),
        "gone": raw.get("harvester/store/gone", 0),
        "errors": raw.get("harvester/errors", 0)
        + raw.get("harvester/extract/failed", 0)
        + raw.get("harvester/store/failed", 0)
        + raw.get("harvester/store/failed_writes", 0),
        "store_failed": raw.get("harvester/store/failed", 0),
        "store_failed_writes": raw.get("harvester/store/failed_writes", 0),
        "store_failed_reasons": raw.get("harvester/store/failed_reasons", {}),
        "store_failed_urls": raw.get("harvester/store/failed_urls", []),
        "store_retries": raw.get("harvester/store/retries", 0),
        "selector_missed": raw.get("harvester/extract/selector_missed", {}),
        "failed_urls": raw.get("harvester/failed_urls", []),
        # records left out, by reason: skipped on purpose by a spider, dropped by a stage
        "skipped": {k[len(SKIPPED) :]: v for k, v in raw.items() if k.startswith(SKIPPED)},
        "dropped_reasons": {k[len(DROPPED) :]: v for k, v in raw.items() if k.startswith(DROPPED)},
        "replay_missing": raw.get("harvester/replay/missing", 0),
        "incomplete": incomplete_reason(raw),
        "stage_pool_workers": raw.get("harvester/stage_pool/workers", 0),
        "stage_pool_renewed": raw.get("harvester/stage_pool/renewed", 0),
        "stage_pool_restarted": raw.get("harvester/stage_pool/restarted", 0),
        "stage_pool_timed_out": raw.get("harvester/stage_pool/timed_out", 0),
        "requests_queued_on_disk": raw.get("scheduler/enqueued/disk", 0),
        "duration_s": round((end - start).total_seconds(), 3) if start and end else None,
    }


class RunExtension:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.run_id: int | None = None
        self.beat: task.LoopingCall | None = None
        self.worker: str | None = None  # distributed mode: this worker's id in the shared run
        self.interval = crawler.settings.getfloat("HARVESTER_HEARTBEAT_SECONDS", 15)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        spec = spider.source
        config_hash = record_hash(json.loads(spec.model_dump_json()))

        def open_run(session: Any) -> int:
            ensure_source(session, spec.id, spec.name, spec.kind.value, spec.verified, spec.enabled, config_hash)
            return int(self._start_or_join(session, spider).id)

        try:
            run_id = retrying(open_run, RetryPolicy.from_settings())
        except RunLockedError as exc:
            spider.logger.error(str(exc))
            self._close(spider, "locked")
            return
        except (SQLAlchemyError, StoreError) as exc:  # never crawl without a run: nothing would record what was fetched
            spider.logger.error("cannot open the crawl run of %s: %s", spec.id, exc)
            self._close(spider, "run_error")
            return
        self.run_id = run_id
        assert self.crawler.stats is not None
        self.crawler.stats.set_value("harvester/run_id", self.run_id)
        self.beat = task.LoopingCall(self._heartbeat)
        self.beat.start(self.interval, now=False)

    def _close(self, spider: Any, reason: str) -> None:
        engine = self.crawler.engine
        assert engine is not None
        deferred_from_coro(engine.close_spider_async(reason=reason))

    def _start_or_join(self, session: Any, spider: Any) -> Any:
        """A new run; in distributed mode the shared crawl's run (a worker that lost the race to create
        it joins it in a fresh transaction)."""
        settings = self.crawler.settings
        trigger, replay = settings.get("HARVESTER_TRIGGER", "cli"), bool(settings.get("HARVESTER_REPLAY_DIR"))
        shared = getattr(spider, "shared_crawl", None)
        if shared is None:
            return start_run(session, spider.source.id, trigger, replay)
        self.worker = shared.worker
        try:
            with session.begin_nested():
                run = join_run(session, spider.source.id, shared.token, trigger, replay)
        except RunLockedError:
            run = join_run(session, spider.source.id, shared.token, trigger, replay)
        worker_report(session, run.id, shared.worker, {})
        return run

    def _heartbeat(self) -> None:
        """Live stats on the run row; a beat the database misses is skipped (the next one tries again)."""
        if self.run_id is not None and self.crawler.stats is not None:
            try:
                with transaction() as session:
                    stats = run_stats(self.crawler.stats.get_stats())
                    if self.worker is not None:
                        worker_report(session, self.run_id, self.worker, stats)
                    else:
                        heartbeat(session, self.run_id, stats)
            except SQLAlchemyError as exc:
                self.crawler.stats.inc_value("harvester/heartbeats_missed")
                logger.warning("heartbeat of run %s not written: %s", self.run_id, str(exc).splitlines()[0])

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.beat is not None and self.beat.running:
            self.beat.stop()
        if self.run_id is None or self.crawler.stats is None:
            return
        stats = run_stats(self.crawler.stats.get_stats())
        status = (
            RunStatus.FINISHED
            if reason == "finished"
            else (RunStatus.INTERRUPTED if reason == "shutdown" else RunStatus.FAILED)
        )
        if stats["store_failed"] or stats["store_failed_writes"]:
            status, reason = RunStatus.FAILED, store_failure_reason(stats)
        run_id, worker = self.run_id, self.worker

        def close_run(session: Any) -> None:
            final, final_status, final_reason = dict(stats), status, reason
            if worker is not None:  # a shared run finishes with its last worker, with the summed stats
                if not worker_report(session, run_id, worker, final, finished=final_reason):
                    return
                final, final_status, final_reason = shared_run_outcome(session, run_id)
            final |= field_fill_stats(session, run_id)  # per-field fill rates: selector drift checks
            finish_run(session, run_id, final_status, final_reason, final)

        try:
            retrying(close_run, RetryPolicy.from_settings().at_least(CLOSE_RUN_BUDGET_S))
        except (SQLAlchemyError, StoreError) as exc:
            logger.error("run %s could not be closed as %s (%s): %s", run_id, status, reason, exc)
            return
        self.crawler.stats.set_value(RUN_CLOSED, True)


def store_failure_reason(stats: dict[str, Any]) -> str:
    """``312 records not stored (connection lost)``: the run's finish reason after store failures."""
    reasons = ", ".join(sorted(stats.get("store_failed_reasons") or {})) or "database error"
    if stats["store_failed"]:
        return f"{stats['store_failed']} records not stored ({reasons})"[:100]
    return f"{stats['store_failed_writes']} page/window writes failed ({reasons})"[:100]


def crawl_outcome(stats: dict[str, Any]) -> str | None:
    """Why a crawl process must exit non-zero, from one crawler's final Scrapy stats; None when it need not."""
    if stats.get("harvester/store/failed") or stats.get("harvester/store/failed_writes"):
        return store_failure_reason(run_stats(stats))
    if stats.get("finish_reason") == "run_error":
        return "the crawl run could not be opened in the database"
    if stats.get("harvester/run_id") is not None and not stats.get(RUN_CLOSED):
        return f"run {stats['harvester/run_id']} could not be closed in the database"
    return None


def shared_run_outcome(session: Any, run_id: int) -> tuple[dict[str, Any], RunStatus, str]:
    """Stats, status and reason of a shared run whose workers have all finished: finished only when
    every worker finished normally."""
    from storage.models import CrawlRun

    run = session.get(CrawlRun, run_id)
    reasons = {w["finished"] for w in run.stats["worker_stats"].values()}
    if reasons == {"finished"}:
        return dict(run.stats), RunStatus.FINISHED, "finished"
    reason = sorted(reasons - {"finished"})[0]
    return dict(run.stats), RunStatus.INTERRUPTED if reason == "shutdown" else RunStatus.FAILED, reason
