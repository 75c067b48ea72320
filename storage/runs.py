"""Crawl-run rows: one per crawl, at most one running per source, stale ones recovered."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import CrawlRun, RunStatus, Source

STALE_AFTER = timedelta(minutes=10)


class RunLockedError(RuntimeError):
    """Another live run of the same source holds the lock."""


def now() -> datetime:
    return datetime.now(UTC)


def ensure_source(
    session: Session, source_id: str, name: str, kind: str, verified: bool, enabled: bool, config_hash: str
) -> None:
    """Register the source or bring its row up to date. Safe when several processes (distributed workers)
    register the same new source at once: the losers of the insert race update the winner's row."""
    row = session.get(Source, source_id)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    Source(
                        id=source_id, name=name, kind=kind, verified=verified, enabled=enabled, config_hash=config_hash
                    )
                )
            return
        except IntegrityError:
            row = session.get(Source, source_id)
            assert row is not None
    if row.config_hash != config_hash or row.name != name:
        row.name, row.kind, row.verified, row.enabled = name, kind, verified, enabled
        row.config_hash, row.updated_at = config_hash, now()
    session.flush()


def recover_stale(session: Session, source_id: str, stale_after: timedelta = STALE_AFTER) -> int:
    """Mark running rows whose heartbeat stopped (a killed process) as interrupted."""
    cutoff = now() - stale_after
    result = session.execute(
        update(CrawlRun)
        .where(CrawlRun.source_id == source_id, CrawlRun.status == RunStatus.RUNNING, CrawlRun.heartbeat_at < cutoff)
        .values(status=RunStatus.INTERRUPTED, finished_at=now(), finish_reason="stale heartbeat")
    )
    same_host_dead = [
        r
        for r in session.scalars(
            select(CrawlRun).where(
                CrawlRun.source_id == source_id,
                CrawlRun.status == RunStatus.RUNNING,
                CrawlRun.host == socket.gethostname(),
            )
        )
        if r.pid is not None and not pid_alive(r.pid) and not _shared_run_alive(r)
    ]
    for run in same_host_dead:
        run.status, run.finished_at, run.finish_reason = RunStatus.INTERRUPTED, now(), "process gone"
    return int(getattr(result, "rowcount", 0) or 0) + len(same_host_dead)


def _shared_run_alive(run: CrawlRun) -> bool:
    """A shared (distributed) run lives while any of its unfinished workers does; workers on other
    hosts count as alive (their staleness shows in the heartbeat)."""
    if run.crawl_key is None:
        return False
    host = socket.gethostname()
    return any(
        w.get("host") != host or pid_alive(int(w.get("pid") or 0))
        for w in (run.stats or {}).get("worker_stats", {}).values()
        if not w.get("finished")
    )


def pid_alive(pid: int) -> bool:
    """A process with this id runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_run(session: Session, source_id: str, trigger: str, replay: bool) -> CrawlRun:
    recover_stale(session, source_id)
    run = CrawlRun(
        source_id=source_id,
        trigger=trigger,
        status=RunStatus.RUNNING,
        pid=os.getpid(),
        host=socket.gethostname(),
        heartbeat_at=now(),
        replay=replay,
        stats={},
    )
    session.add(run)
    try:
        session.flush()
    except IntegrityError:
        raise RunLockedError(f"source {source_id!r} already has a running crawl") from None
    return run


def join_run(session: Session, source_id: str, crawl_key: str, trigger: str, replay: bool) -> CrawlRun:
    """The running run of the shared crawl ``crawl_key`` (distributed workers join it), or a new one.

    Raises ``RunLockedError`` when another crawl of the source (another key, or none) is running."""
    run = session.scalars(
        select(CrawlRun)
        .where(
            CrawlRun.source_id == source_id,
            CrawlRun.status == RunStatus.RUNNING,
            CrawlRun.crawl_key == crawl_key,
        )
        .with_for_update()
    ).first()
    if run is not None:
        return run
    run = start_run(session, source_id, trigger, replay)
    run.crawl_key = crawl_key
    session.flush()
    return run


def merge_worker_stats(workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run stats of a shared run: every worker's counts added up (durations: the longest)."""

    def add(into: dict[str, Any], part: dict[str, Any]) -> None:
        for key, value in part.items():
            if isinstance(value, dict):
                add(into.setdefault(key, {}), value)
            elif isinstance(value, list):
                into.setdefault(key, []).extend(value)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                into.setdefault(key, value)
            elif key == "duration_s":
                into[key] = max(into.get(key) or 0, value)
            else:
                into[key] = into.get(key, 0) + value

    total: dict[str, Any] = {}
    for worker in workers.values():
        add(total, worker.get("stats", {}))
    return total


def worker_report(
    session: Session, run_id: int, worker: str, stats: dict[str, Any], finished: str | None = None
) -> bool:
    """Record one worker's stats (and, with ``finished``, its finish reason) on a shared run; the
    run's stats become the sum over workers. True when every worker that joined has finished."""
    run = session.get(CrawlRun, run_id, with_for_update=True)
    assert run is not None
    workers = dict((run.stats or {}).get("worker_stats", {}))
    workers[worker] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "heartbeat": now().isoformat(),
        "finished": finished,
        "stats": stats,
    }
    run.stats = merge_worker_stats(workers) | {"workers": len(workers), "worker_stats": workers}
    run.heartbeat_at = now()
    session.flush()
    return all(w.get("finished") for w in workers.values())


def heartbeat(session: Session, run_id: int, stats: dict[str, Any]) -> None:
    session.execute(update(CrawlRun).where(CrawlRun.id == run_id).values(heartbeat_at=now(), stats=stats))


def finish_run(session: Session, run_id: int, status: str, reason: str, stats: dict[str, Any]) -> None:
    session.execute(
        update(CrawlRun)
        .where(CrawlRun.id == run_id)
        .values(status=status, finish_reason=reason, finished_at=now(), heartbeat_at=now(), stats=stats)
    )


def list_runs(session: Session, source_id: str | None = None, limit: int = 50) -> list[CrawlRun]:
    query = select(CrawlRun).order_by(CrawlRun.id.desc()).limit(limit)
    if source_id:
        query = query.where(CrawlRun.source_id == source_id)
    return list(session.scalars(query))
