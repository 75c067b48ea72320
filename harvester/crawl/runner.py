"""Run crawls. Every crawl runs in a child process (Scrapy's reactor cannot restart in-process);
the parent reads the outcome from the run rows the child wrote.

The child exits non-zero when a record could not be stored or its run row could not be opened or
closed; the parent then marks the runs it left ``running`` as failed. A crawl started from the command
line dies with its parent (Linux ``PR_SET_PDEATHSIG``): killing only ``harvester crawl`` leaves no orphan
crawl behind. A scheduled crawl does not: a daemon killed alone leaves its crawl to finish (systemd's stop
signals the whole unit), and the restarted daemon sees that run and skips the source until it ends."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scrapy.settings import Settings

REPLAY_HANDLER = "harvester.crawl.replay.ReplayDownloadHandler"
PARENT_ENV = "HARVESTER_CRAWL_PARENT_PID"  # set by run_crawls: the child dies with this process
STORE_FAILED_EXIT = 3
log = logging.getLogger("harvester.crawl")


@dataclass(frozen=True)
class CrawlOptions:
    replay_dir: Path | None = None
    record_dir: Path | None = None
    trigger: str = "cli"
    log_level: str = "WARNING"
    progress: bool = True
    time_limit_s: float | None = None  # wall-clock limit of the child (None: registry / HARVESTER_CRAWL_MAX_MINUTES)
    kill_grace_s: float | None = None  # SIGTERM -> SIGKILL (None: HARVESTER_CRAWL_KILL_GRACE_SECONDS)


def crawl_settings(options: CrawlOptions) -> Settings:
    settings = Settings()
    settings.setmodule("harvester.crawl.settings", priority="project")
    over: dict[str, Any] = {
        "HARVESTER_TRIGGER": options.trigger,
        "LOG_LEVEL": options.log_level,
        "HARVESTER_PROGRESS": options.progress,
    }
    if options.replay_dir:
        over |= {
            "HARVESTER_REPLAY_DIR": str(options.replay_dir),
            "DOWNLOAD_HANDLERS": {
                "http": REPLAY_HANDLER,
                "https": REPLAY_HANDLER,
                "file": None,
                "data": None,
                "ftp": None,
                "s3": None,
            },
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
            "RETRY_ENABLED": False,
        }
    if options.record_dir:
        over["HARVESTER_RECORD_DIR"] = str(options.record_dir)
    if os.environ.get("HARVESTER_ALLOW_PRIVATE_HOSTS", "").lower() in ("1", "true", "yes"):
        over["HARVESTER_ALLOW_PRIVATE_HOSTS"] = True
    settings.setdict(over, priority="cmdline")
    return settings


def run_in_this_process(source_ids: list[str], options: CrawlOptions) -> int:
    """Crawl in this process; returns the exit code: ``STORE_FAILED_EXIT`` when a crawl could not store
    everything (or record its run), else 0."""
    from scrapy.crawler import CrawlerProcess

    from harvester.crawl.runs_extension import crawl_outcome
    from harvester.crawl.spider_loader import spider_class_for
    from harvester.registry import get_source, load_registry

    registry = load_registry()
    process = CrawlerProcess(crawl_settings(options))
    crawlers = [process.create_crawler(spider_class_for(get_source(source_id, registry))) for source_id in source_ids]
    for crawler in crawlers:
        process.crawl(crawler)
    process.start()
    failures = [
        (c.spidercls.name, why)
        for c in crawlers
        if (why := crawl_outcome(c.stats.get_stats() if c.stats else {})) is not None
    ]
    for name, why in failures:
        print(f"harvester crawl: {name}: {why}", file=sys.stderr)
    return STORE_FAILED_EXIT if failures else 0


def die_with_parent() -> None:
    """When the process that started this one dies, even by SIGKILL: SIGTERM at once (Linux
    ``PR_SET_PDEATHSIG``; Scrapy then closes the run as interrupted), SIGKILL after the kill grace if
    the graceful stop takes longer (a long export still draining its items)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import threading

    from harvester.settings import get_settings

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    armed = libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0) == 0
    if not armed:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %s", ctypes.get_errno())
    armed = armed and os.getppid() == int(parent)  # else the parent died before prctl took effect
    grace = get_settings().crawl_kill_grace_seconds

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1)
        if not armed:  # a second SIGTERM would make Scrapy stop at once, without closing the run
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def time_limit_s(source_ids: list[str]) -> float:
    """The child's wall-clock limit: the longest ``max_run_minutes`` of its sources, else the global default."""
    from harvester.registry import RegistryError, get_source
    from harvester.settings import get_settings

    default = get_settings().crawl_max_minutes
    minutes = []
    for source_id in source_ids:
        try:
            minutes.append(get_source(source_id).max_run_minutes or default)
        except RegistryError:
            minutes.append(default)  # the child reports the bad id itself
    return 60 * max(minutes, default=default)


def run_crawls(source_ids: list[str], options: CrawlOptions) -> int:
    """Crawl the sources (concurrently, one child process) and return the child's exit code.

    A child past its wall-clock limit gets SIGTERM (Scrapy closes the spiders), then SIGKILL after the
    grace; its run rows are marked failed with the reason, which also releases the run lock.
    """
    from harvester.settings import get_settings

    cmd = [sys.executable, "-m", "harvester.crawl", "--trigger", options.trigger, "--log-level", options.log_level]
    if options.replay_dir:
        cmd += ["--replay", str(options.replay_dir)]
    if options.record_dir:
        cmd += ["--record", str(options.record_dir)]
    if not options.progress:
        cmd.append("--quiet")
    limit = options.time_limit_s if options.time_limit_s is not None else time_limit_s(source_ids)
    grace = options.kill_grace_s if options.kill_grace_s is not None else get_settings().crawl_kill_grace_seconds
    before = _last_run_id()
    # Its own process group: the signals below also reach the crawl's helper processes (stage pool).
    env = {**os.environ}
    if options.trigger != "schedule":  # the daemon's crawls may outlive it: the next daemon start sees them run
        env[PARENT_ENV] = str(os.getpid())
    child = subprocess.Popen([*cmd, *source_ids], env=env, process_group=0)
    try:
        code = child.wait(timeout=limit)
        if code == STORE_FAILED_EXIT:
            close_left_running(child.pid, before, f"records not stored: the database failed (exit code {code})")
        elif code != 0:
            close_left_running(child.pid, before, f"crawl process exited with code {code}")
        return code
    except subprocess.TimeoutExpired:
        return stop_overdue(child, limit, grace, before)
    except BaseException:  # Ctrl-C or shutdown while waiting: stop the crawl as Scrapy would, leave no orphan
        stop_group(child, grace)
        raise


def _signal_group(child: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


def stop_group(child: subprocess.Popen[bytes], grace_s: float) -> tuple[int, str]:
    """SIGTERM to the child's process group, SIGKILL after ``grace_s``; returns (exit code, last signal)."""
    _signal_group(child, signal.SIGTERM)
    try:
        code, name = child.wait(timeout=grace_s), "SIGTERM"
    except subprocess.TimeoutExpired:
        log.warning("crawl process %s still running %g s after SIGTERM: SIGKILL", child.pid, grace_s)
        _signal_group(child, signal.SIGKILL)
        code, name = child.wait(), "SIGKILL"
    _signal_group(child, signal.SIGKILL)  # helper processes left behind by the crawl
    return code, name


def stop_overdue(child: subprocess.Popen[bytes], limit_s: float, grace_s: float, before_run_id: int) -> int:
    """Terminate a crawl child over its wall-clock limit and mark the runs it started as failed."""
    log.warning("crawl process %s exceeded its wall-clock limit of %g s: SIGTERM", child.pid, limit_s)
    code, signal_name = stop_group(child, grace_s)
    failed = fail_runs_of(child.pid, before_run_id, f"wall-clock limit of {limit_s:g} s exceeded ({signal_name})")
    log.warning(
        "crawl process %s stopped (%s, exit %s); run(s) %s marked failed",
        child.pid,
        signal_name,
        code,
        ", ".join(map(str, failed)) or "none",
    )
    return code


def _last_run_id() -> int:
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import session_factory
    from storage.models import CrawlRun

    try:
        with session_factory()() as session:
            return int(session.scalar(select(func.max(CrawlRun.id))) or 0)
    except SQLAlchemyError:  # no schema yet: the child creates it
        return 0


def close_left_running(pid: int, after_run_id: int, reason: str) -> None:
    """After a crawl child exited non-zero: its runs still ``running`` (it could not close them) fail."""
    from sqlalchemy.exc import SQLAlchemyError

    from storage.retry import RetryPolicy, StoreError, retrying

    try:
        failed = retrying(
            lambda session: fail_runs(session, pid, after_run_id, reason, ("running",)), RetryPolicy.from_settings()
        )
    except (SQLAlchemyError, StoreError) as exc:
        log.error("crawl process %s exited non-zero and its runs could not be marked failed: %s", pid, exc)
        return
    if failed:
        log.warning("run(s) %s of crawl process %s marked failed: %s", ", ".join(map(str, failed)), pid, reason)


def fail_runs_of(pid: int, after_run_id: int, reason: str) -> list[int]:
    """Runs the (now stopped) child process started that are not finished: failed, with the reason."""
    from storage.db import transaction

    with transaction() as session:
        return fail_runs(session, pid, after_run_id, reason, ("running", "interrupted"))


def fail_runs(session: Any, pid: int, after_run_id: int, reason: str, statuses: tuple[str, ...]) -> list[int]:
    """Runs newer than ``after_run_id`` that process ``pid`` of this host left in ``statuses``: failed."""
    from sqlalchemy import select

    from storage.models import CrawlRun, RunStatus
    from storage.runs import now

    rows = session.scalars(
        select(CrawlRun).where(
            CrawlRun.id > after_run_id,
            CrawlRun.pid == pid,
            CrawlRun.host == socket.gethostname(),
            CrawlRun.status.in_(statuses),
        )
    ).all()
    for run in rows:
        run.status, run.finish_reason, run.finished_at = RunStatus.FAILED.value, reason[:100], now()
    return [run.id for run in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run harvester crawls in this process (used by the CLI).")
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--record", type=Path)
    parser.add_argument("--trigger", default="cli")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    die_with_parent()
    sys.exit(
        run_in_this_process(
            args.sources, CrawlOptions(args.replay, args.record, args.trigger, args.log_level, not args.quiet)
        )
    )


if __name__ == "__main__":
    main()
