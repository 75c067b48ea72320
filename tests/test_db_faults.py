"""Database faults injected for real in the middle of a GEF export crawl (the 5,892-record CSV capture,
replayed): no record is lost for good, and the run row and exit code tell the truth in between.

Each fault is triggered when the crawl has stored ``FAULT_AT`` candidates (read through a connection of
the test's own), never after a guessed sleep:

- SQLite: a second connection holds the write lock for 15 s, past the 10 s busy timeout;
- SQLite on a small tmpfs the test mounts: the disk fills for 5 s, then space is freed; and a disk that is
  full before the crawl starts;
- PostgreSQL, a server the test starts on its own port: ``pg_ctl restart -m fast``, and a stop for 15 s.

A fault shorter than the retry budget (``HARVESTER_DB_RETRY_SECONDS``) loses nothing and the run ends
``finished``; with a budget shorter than the fault the run ends ``failed`` with the count, ``harvester
crawl`` exits non-zero, a ``store_failed`` alert is open, and the next crawl re-reads what was missed.
Either way the final candidates equal a clean crawl's, record by record.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from harvester.recordings.replay_build import build_replay
from harvester.registry import load_registry
from harvester.settings import PROJECT_ROOT
from storage.models import Alert, Candidate, CrawlRun

pytestmark = pytest.mark.slow

SOURCE = "gef_projects"
RECORDS = 5892
FAULT_AT = 600
CI = os.environ.get("CI") == "true"
GAVE_UP = "database unavailable while storing"  # the store stage's log line when a write spent its budget
RETRIED_LOCK = "database write failed (database locked"

Snapshot = dict[str, tuple[str, str | None, str, float | None]]  # url -> (record_hash, title, status, score)


def unavailable(why: str) -> None:
    if CI:
        pytest.fail(why)
    pytest.skip(why)


@dataclass
class Target:
    """One database a crawl writes to, seen through the test's own connections."""

    url: str
    env: dict[str, str]

    def query(self, fn: Callable[[Session], Any]) -> Any:
        engine = create_engine(self.url, connect_args={"timeout": 30} if self.url.startswith("sqlite") else {})
        try:
            with Session(engine) as session:
                return fn(session)
        finally:
            engine.dispose()

    def count(self) -> int:
        try:
            return int(self.query(lambda s: s.scalar(select(func.count()).select_from(Candidate))) or 0)
        except Exception:  # the fault itself (server down, file locked) or no schema yet
            return -1

    def snapshot(self) -> Snapshot:
        rows = self.query(
            lambda s: s.execute(
                select(Candidate.url, Candidate.record_hash, Candidate.title, Candidate.status, Candidate.score)
            ).all()
        )
        assert len(rows) == len({r[0] for r in rows}), "duplicated candidates"
        return {r[0]: (r[1], r[2], r[3], None if r[4] is None else round(r[4], 9)) for r in rows}

    def runs(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        return self.query(
            lambda s: [
                tuple(r)
                for r in s.execute(
                    select(CrawlRun.status, CrawlRun.finish_reason, CrawlRun.stats).order_by(CrawlRun.id)
                )
            ]
        )

    def open_alerts(self) -> list[str]:
        return self.query(lambda s: list(s.scalars(select(Alert.kind).where(Alert.resolved_at.is_(None)))))


def harvester(target: Target, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harvester", *args],
        cwd=PROJECT_ROOT,
        env=target.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def new_target(url: str, data_dir: Path, **extra: str) -> Target:
    env = {
        **os.environ,
        "HARVESTER_DATA_DIR": str(data_dir),
        "HARVESTER_DATABASE_URL": url,
        "HARVESTER_STAGE_POOL": "0",
        **extra,
    }
    env.pop("HARVESTER_REGISTRY_DIR", None)
    target = Target(url, env)
    result = harvester(target, "db", "upgrade", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return target


@dataclass
class Background:
    """``harvester crawl`` running in the background, its stderr in a file."""

    child: subprocess.Popen[bytes]
    stderr: Path

    def poll(self) -> int | None:
        return self.child.poll()

    def logged(self, text: str) -> bool:
        """``text`` is in the crawl's log, or the crawl has ended."""
        return text in self.stderr.read_text(encoding="utf-8", errors="replace") or self.poll() is not None

    def finish(self, timeout: float = 900) -> tuple[int, str]:
        code = self.child.wait(timeout=timeout)
        return code, self.stderr.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def crawling(target: Target, replay: Path) -> Iterator[Background]:
    log = Path(tempfile.mkstemp(prefix="harvester-crawl-", suffix=".log")[1])
    with log.open("wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "harvester", "crawl", SOURCE, "--replay", str(replay)],
            cwd=PROJECT_ROOT,
            env=target.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield Background(child, log)
    finally:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, 9)
        child.wait()
        log.unlink()


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def wait_for_progress(target: Target, child: Background, stored: int = FAULT_AT) -> None:
    assert wait_until(lambda: target.count() >= stored or child.poll() is not None, 900, step=0.1)
    assert child.poll() is None, "the crawl ended before the fault"


def clean_crawl(target: Target, replay: Path) -> None:
    result = harvester(target, "crawl", SOURCE, "--replay", str(replay))
    assert result.returncode == 0, result.stderr[-3000:]
    status, reason, stats = target.runs()[-1]
    assert (status, reason, stats["store_failed"]) == ("finished", "finished", 0)
    print(f"follow-up run: {status}; new {stats['new']}, not modified {stats['not_modified']}")


def assert_failed_truthfully(target: Target, code: int, err: str, reasons: set[str]) -> dict[str, Any]:
    """The faulted run: failed with the count and the reason, non-zero exit, an open alert."""
    status, reason, stats = target.runs()[-1]
    assert code != 0, err[-2000:]
    assert status == "failed", (status, reason, err[-2000:])
    assert "records not stored" in (reason or ""), reason
    assert stats["store_failed"] >= 1 and set(stats["store_failed_reasons"]) <= reasons, stats
    # what the run says it stored is there (a commit whose answer was lost may have landed too)
    assert stats["new"] <= target.count() <= min(stats["new"] + stats["store_failed"], RECORDS - 1), stats
    assert "store_failed" in target.open_alerts()
    assert "not stored" in err and "Traceback" not in err, err[-3000:]
    print(
        f"faulted run: exit {code}, {status}: {reason}; stored {stats['new']}, not stored {stats['store_failed']}, "
        f"retries {stats['store_retries']}"
    )  # the figures docs/reliability.md quotes (pytest -s)
    return stats


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gef-replay")
    build_replay([load_registry()[SOURCE]], folder)
    return folder


@pytest.fixture(scope="module")
def reference(replay: Path, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """A clean crawl's candidates."""
    base = tmp_path_factory.mktemp("reference")
    target = new_target(f"sqlite:///{base / 'harvester.sqlite3'}", base)
    clean_crawl(target, replay)
    snap = target.snapshot()
    assert len(snap) == RECORDS
    return snap


# -- SQLite: a write lock held past the busy timeout ---------------------------------------------------


def hold_write_lock(path: Path, until: Callable[[], bool]) -> threading.Thread:
    """Another writer, as a curator's long transaction would be: BEGIN IMMEDIATE held until ``until()``."""
    acquired = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            acquired.set()
            wait_until(until, 300)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert acquired.wait(60), "the lock was never acquired"
    return thread


def test_sqlite_locked_past_the_busy_timeout_fails_the_run_and_the_next_crawl_reads_what_was_missed(
    replay: Path, reference: Snapshot, tmp_path: Path
) -> None:
    db = tmp_path / "harvester.sqlite3"
    target = new_target(f"sqlite:///{db}", tmp_path, HARVESTER_DB_RETRY_SECONDS="2")
    with crawling(target, replay) as child:
        wait_for_progress(target, child)
        # held at least 15 s, past the 10 s busy timeout, and until the crawl gave up (a starved crawl may
        # not try to write at once)
        started = time.monotonic()
        hold_write_lock(db, lambda: time.monotonic() - started > 15 and child.logged(GAVE_UP)).join()
        code, err = child.finish()
    assert_failed_truthfully(target, code, err, {"database locked"})

    clean_crawl(target, replay)
    assert target.snapshot() == reference


def test_sqlite_locked_for_less_than_the_retry_budget_loses_nothing(
    replay: Path, reference: Snapshot, tmp_path: Path
) -> None:
    db = tmp_path / "harvester.sqlite3"
    target = new_target(f"sqlite:///{db}", tmp_path)  # the default budget: 60 s
    with crawling(target, replay) as child:
        wait_for_progress(target, child)
        started = time.monotonic()  # 15 s, and at least until a write of the crawl met the lock
        hold_write_lock(db, lambda: time.monotonic() - started > 15 and child.logged(RETRIED_LOCK)).join()
        code, err = child.finish()
    assert code == 0, err[-3000:]
    status, reason, stats = target.runs()[-1]
    assert (status, stats["store_failed"]) == ("finished", 0) and stats["store_retries"] >= 1, (reason, stats)
    print(f"faulted run: exit {code}, {status}; stored {stats['new']}, retries {stats['store_retries']}")
    assert target.snapshot() == reference


# -- SQLite: the disk fills ------------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 96 MiB tmpfs mounted for the test (root only)."""
    mount = Path(tempfile.mkdtemp(prefix="harvester-small-disk-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        mount.rmdir()
        unavailable(f"cannot mount a small tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(folder: Path) -> Path:
    """Write zeros until the file system is full; returns the filler file (delete it to free the space)."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as f:  # the last partial block
        while True:
            f.write(b"\0" * 4096)
    return filler


def test_disk_full_for_five_seconds_fails_the_run_and_the_next_crawl_reads_what_was_missed(
    replay: Path, reference: Snapshot, small_disk: Path
) -> None:
    target = new_target(f"sqlite:///{small_disk / 'harvester.sqlite3'}", small_disk, HARVESTER_DB_RETRY_SECONDS="1")
    with crawling(target, replay) as child:
        wait_for_progress(target, child)
        filler = fill(small_disk)
        started = time.monotonic()  # 5 s, and at least until the crawl gave up
        wait_until(lambda: time.monotonic() - started > 5 and child.logged(GAVE_UP), 300)
        filler.unlink()
        code, err = child.finish()
    assert_failed_truthfully(target, code, err, {"disk full", "disk I/O error"})

    clean_crawl(target, replay)
    assert target.snapshot() == reference


def test_a_disk_full_from_the_start_exits_non_zero_and_leaves_no_run_running(small_disk: Path, replay: Path) -> None:
    target = new_target(f"sqlite:///{small_disk / 'harvester.sqlite3'}", small_disk, HARVESTER_DB_RETRY_SECONDS="1")
    filler = fill(small_disk)
    try:
        result = harvester(target, "crawl", SOURCE, "--replay", str(replay), timeout=300)
    finally:
        filler.unlink()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert [status for status, _, _ in target.runs()] in ([], ["failed"])
    assert target.count() == 0


# -- PostgreSQL: a server of the test's own, restarted and stopped ------------------------------------------


@dataclass
class Postgres:
    bin: Path
    data: Path
    port: int
    as_owner: list[str]

    def ctl(self, *args: str) -> None:
        """pg_ctl; the server it starts writes to its log file, never to a pipe of ours (that would never end)."""
        log = self.data.parent / "server.log"
        done = subprocess.run(
            [*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-l", str(log), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"pg_ctl {args} failed: {log.read_text()[-2000:] if log.exists() else ''}"

    def start(self) -> None:
        self.ctl("-o", f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL server on a free port, run by the ``postgres`` OS user when we are root."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        unavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    as_owner: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="harvester-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("runuser is missing: initdb refuses to run as root")
        as_owner = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o755)
    server = Postgres(Path(bins[-1]), base / "data", free_port(), as_owner)
    subprocess.run(
        [*as_owner, str(server.bin / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, AssertionError):
            server.ctl("-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
def test_postgres_restarted_mid_crawl_loses_nothing(
    replay: Path, reference: Snapshot, own_postgres: Postgres, tmp_path: Path
) -> None:
    target = new_target(own_postgres.create_database("restart"), tmp_path)
    with crawling(target, replay) as child:
        wait_for_progress(target, child)
        own_postgres.ctl("-m", "fast", "restart")
        code, err = child.finish()
    assert code == 0, err[-3000:]
    status, reason, stats = target.runs()[-1]
    # a crawl that wrote nothing while the server was down reconnects without a retry (pool_pre_ping)
    assert (status, stats["store_failed"]) == ("finished", 0), (reason, stats)
    print(f"faulted run: exit {code}, {status}; stored {stats['new']}, retries {stats['store_retries']}")
    assert target.snapshot() == reference


@pytest.mark.postgres
def test_postgres_stopped_for_15_s_fails_the_run_and_the_next_crawl_reads_what_was_missed(
    replay: Path, reference: Snapshot, own_postgres: Postgres, tmp_path: Path
) -> None:
    target = new_target(own_postgres.create_database("stopped"), tmp_path, HARVESTER_DB_RETRY_SECONDS="3")
    with crawling(target, replay) as child:
        wait_for_progress(target, child)
        own_postgres.ctl("-m", "fast", "stop")
        started = time.monotonic()  # 15 s, and at least until the crawl gave up
        wait_until(lambda: time.monotonic() - started > 15 and child.logged(GAVE_UP), 300)
        own_postgres.start()
        code, err = child.finish()
    assert_failed_truthfully(target, code, err, {"connection lost", "database unreachable"})

    clean_crawl(target, replay)
    assert target.snapshot() == reference
