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


def ensure_source(session: Session, source_id: str, name: str, kind: str, verified: bool, enabled: bool,
                  config_hash: str) -> None:
    row = session.get(Source, source_id)
    if row is None:
        session.add(Source(id=source_id, name=name, kind=kind, verified=verified, enabled=enabled,
                           config_hash=config_hash))
    elif row.config_hash != config_hash or row.name != name:
        row.name, row.kind, row.verified, row.enabled = name, kind, verified, enabled
        row.config_hash, row.updated_at = config_hash, now()
    session.flush()


def recover_stale(session: Session, source_id: str, stale_after: timedelta = STALE_AFTER) -> int:
    """Mark running rows whose heartbeat stopped (a killed process) as interrupted."""
    cutoff = now() - stale_after
    result = session.execute(
        update(CrawlRun)
        .where(CrawlRun.source_id == source_id, CrawlRun.status == RunStatus.RUNNING,
               CrawlRun.heartbeat_at < cutoff)
        .values(status=RunStatus.INTERRUPTED, finished_at=now(), finish_reason="stale heartbeat")
    )
    same_host_dead = [
        r for r in session.scalars(
            select(CrawlRun).where(CrawlRun.source_id == source_id, CrawlRun.status == RunStatus.RUNNING,
                                   CrawlRun.host == socket.gethostname())
        )
        if r.pid is not None and not _alive(r.pid)
    ]
    for run in same_host_dead:
        run.status, run.finished_at, run.finish_reason = RunStatus.INTERRUPTED, now(), "process gone"
    return int(getattr(result, "rowcount", 0) or 0) + len(same_host_dead)


def _alive(pid: int) -> bool:
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
    run = CrawlRun(source_id=source_id, trigger=trigger, status=RunStatus.RUNNING, pid=os.getpid(),
                   host=socket.gethostname(), heartbeat_at=now(), replay=replay, stats={})
    session.add(run)
    try:
        session.flush()
    except IntegrityError:
        raise RunLockedError(f"source {source_id!r} already has a running crawl") from None
    return run


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
