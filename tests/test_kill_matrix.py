"""SIGKILL at random points, then re-run: zero lost, zero duplicated candidates, curator decisions untouched.

One small local site (a listing of ``PAGES`` generated pages from :mod:`tests.fault_server`) is crawled
once cleanly into its own database: the reference. Then the same site is crawled into a second
database by a series of crawl processes, each killed with SIGKILL (the whole process group, as a
supervisor or the OOM killer of a cgroup would) at a seeded random point: during start-up, or once
1-3 more candidates were stored than before. Each killed process is the re-run of the one before.
After every kill the stored rows must be a subset of the reference with identical record hashes
(nothing half-stored, nothing doubled); after a final uninterrupted run they must equal it, every
killed run must be marked ``interrupted``, and a decision a curator made between two kills must
still be there. The scheduler daemon gets the same treatment: killed with its crawl child, it
queues a catch-up crawl at the next start.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from harvester.settings import PROJECT_ROOT
from storage.models import Candidate, CrawlRun, Decision
from tests.fault_server import FaultServer, wait_for

pytestmark = pytest.mark.slow

SOURCE = "kill_matrix"
PAGES = 24
KILLS = 20
SCHEDULER_KILLS = 4
SEED = 20261124

Snapshot = dict[str, tuple[str, str | None]]  # url -> (record_hash, title)


@dataclass
class Site:
    server: FaultServer
    registry: Path


@dataclass
class Database:
    data_dir: Path
    env: dict[str, str]
    kills: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.data_dir / 'harvester.sqlite3'}"

    def query(self, fn):  # type: ignore[no-untyped-def]
        engine = create_engine(self.url)
        try:
            with Session(engine) as session:
                return fn(session)
        finally:
            engine.dispose()

    def count(self) -> int:
        try:
            return self.query(lambda s: s.scalar(select(func.count()).select_from(Candidate)) or 0)
        except Exception:  # database not created yet, or locked for a moment by the crawl
            return -1

    def snapshot(self) -> Snapshot:
        rows = self.query(lambda s: s.execute(select(Candidate.url, Candidate.record_hash, Candidate.title)).all())
        urls = [r[0] for r in rows]
        assert len(urls) == len(set(urls)), "duplicated candidates"
        return {r[0]: (r[1], r[2]) for r in rows}

    def run_statuses(self) -> list[str]:
        return self.query(lambda s: list(s.scalars(select(CrawlRun.status).order_by(CrawlRun.id))))


def harvester_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def start(db: Database, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        harvester_cmd(*args),
        cwd=PROJECT_ROOT,
        env=db.env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def crawl(db: Database) -> None:
    result = subprocess.run(
        harvester_cmd("harvester.crawl", "--quiet", SOURCE),
        cwd=PROJECT_ROOT,
        env=db.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    registry = tmp_path_factory.mktemp("kill-registry")
    with FaultServer() as server:
        server.index_links = [f"{server.url}/ok/page-{i:02d}" for i in range(PAGES)]
        (registry / f"{SOURCE}.yaml").write_text(
            textwrap.dedent(f"""\
            id: {SOURCE}
            name: Kill matrix site
            kind: listing
            start_urls: ["{server.url}/index"]
            verified: false
            verification: "local test server"
            listing: {{item_links: "a.rec::attr(href)", max_pages: 1}}
            selectors: {{title: "main h1::text", text: "main"}}
            politeness: {{download_delay: 0.1, autothrottle: false, concurrent_requests_per_host: 1}}
            """),
            encoding="utf-8",
        )
        yield Site(server, registry)


def new_database(site: Site, base: Path, **extra: str) -> Database:
    env = {
        **os.environ,
        "HARVESTER_DATA_DIR": str(base),
        "HARVESTER_REGISTRY_DIR": str(site.registry),
        "HARVESTER_ALLOW_PRIVATE_HOSTS": "1",
        **extra,
    }
    env.pop("HARVESTER_DATABASE_URL", None)
    db = Database(base, env)
    subprocess.run(
        harvester_cmd("harvester", "db", "upgrade"), cwd=PROJECT_ROOT, env=env, check=True, capture_output=True
    )
    return db


@pytest.fixture(scope="module")
def reference(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    db = new_database(site, tmp_path_factory.mktemp("reference"))
    crawl(db)
    snap = db.snapshot()
    assert len(snap) == PAGES
    return snap


def accept_one(db: Database) -> tuple[int, str]:
    """A curator accepts the first stored candidate (with an audited decision) between two kills."""
    engine = create_engine(db.url)
    try:
        with Session(engine) as session, session.begin():
            row = session.scalars(select(Candidate).order_by(Candidate.id).limit(1)).one()
            row.status = "accepted"
            session.add(
                Decision(
                    candidate_id=row.id, actor="curator", from_status="pending", to_status="accepted", field_diff={}
                )
            )
            return row.id, row.url
    finally:
        engine.dispose()


def assert_consistent_with(db: Database, reference: Snapshot) -> Snapshot:
    snap = db.snapshot()
    for url, value in snap.items():
        assert reference.get(url) == value, f"half-stored or altered candidate {url}: {value}"
    return snap


def kill_series(
    db: Database,
    reference: Snapshot,
    rng: random.Random,
    kills: int,
    *cmd: str,
    decide: bool = True,
    progress_timeout: float = 90,
) -> tuple[int, str] | None:
    """Start ``cmd`` again and again, SIGKILL each at a random point, until ``kills`` kills landed
    (counted over the database's whole history). ``decide``: a curator accepts a candidate after
    the first kill that left one stored."""
    decided: tuple[int, str] | None = None
    attempts = 0
    while len(db.kills) < kills:
        attempts += 1
        assert attempts <= kills * 2, f"only {len(db.kills)} kills landed in {attempts - 1} attempts"
        before = max(db.count(), 0)
        complete = before >= PAGES
        mode = "start-up" if complete or rng.random() < 0.25 else "items"
        child = start(db, *cmd)
        if mode == "start-up":
            delay = rng.uniform(0.3, 8.0)
            wait_for(lambda: child.poll() is not None, delay)  # noqa: B023
            point = f"start-up +{delay:.1f}s"
        else:
            target = before + rng.randint(1, 3)
            wait_for(lambda: db.count() >= target or child.poll() is not None, progress_timeout)  # noqa: B023
            point = f"{db.count()} stored (target {target})"
        if child.poll() is not None:
            child.wait()
            continue  # it finished (or failed) before the kill point: not a kill
        kill_group(child)
        db.kills.append(point)
        assert_consistent_with(db, reference)
        if decide and decided is None and db.count() > 0:
            decided = accept_one(db)
    return decided


def assert_decision_untouched(db: Database, decided: tuple[int, str] | None) -> None:
    assert decided is not None, "no kill landed after a candidate was stored"
    candidate_id, url = decided

    def check(session: Session) -> None:
        row = session.get(Candidate, candidate_id)
        assert row is not None and (row.url, row.status) == (url, "accepted")
        assert session.scalar(select(func.count()).select_from(Decision)) == 1

    db.query(check)


def test_crawl_killed_twenty_times_then_rerun_loses_and_doubles_nothing(
    site: Site, reference: Snapshot, tmp_path: Path
) -> None:
    # Stages in the crawl process (no stage pool) keep each start-up short; the scheduler test below
    # and the reference crawl run with the default pool, so both paths are killed.
    db = new_database(site, tmp_path / "var", HARVESTER_STAGE_POOL="0")
    rng = random.Random(SEED)
    decided = kill_series(db, reference, rng, KILLS, "harvester.crawl", "--quiet", SOURCE)
    assert len(db.kills) == KILLS, db.kills

    crawl(db)
    assert db.snapshot() == reference
    assert_decision_untouched(db, decided)
    statuses = db.run_statuses()
    # An attempt that finished before its kill point leaves a finished run; a kill during start-up
    # may land before the run row exists.
    assert statuses[-1] == "finished" and set(statuses) <= {"interrupted", "finished"}, statuses
    assert 0 < statuses.count("interrupted") <= KILLS


def test_scheduler_killed_with_its_crawl_catches_up_at_the_next_start(
    site: Site, reference: Snapshot, tmp_path: Path
) -> None:
    db = new_database(site, tmp_path / "var")
    rng = random.Random(SEED + 1)
    # A first crawl killed mid-way leaves an interrupted run: every scheduler start queues a catch-up.
    decided = kill_series(db, reference, rng, 1, "harvester.crawl", "--quiet", SOURCE)
    kill_series(
        db,
        reference,
        rng,
        1 + SCHEDULER_KILLS,
        "harvester",
        "schedule",
        "run",
        "--log-level",
        "WARNING",
        decide=decided is None,
    )
    decided = (
        decided
        or db.query(
            lambda s: s.execute(select(Candidate.id, Candidate.url).where(Candidate.status == "accepted")).one()
        ).tuple()
    )
    assert len(db.kills) == 1 + SCHEDULER_KILLS, db.kills

    daemon = start(db, "harvester", "schedule", "run", "--log-level", "WARNING")
    try:
        finished = wait_for(lambda: (db.run_statuses() or [""])[-1] == "finished", 180, step=0.5)
        assert finished, db.run_statuses()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    finally:
        kill_group(daemon)
    assert db.snapshot() == reference
    assert_decision_untouched(db, decided)
    statuses = db.run_statuses()
    assert statuses[-1] == "finished" and set(statuses) <= {"interrupted", "finished"}, statuses
    triggers = db.query(lambda s: list(s.scalars(select(CrawlRun.trigger).order_by(CrawlRun.id))))
    assert triggers[-1] == "schedule"


def test_a_killed_crawl_leaves_no_worker_processes_behind(site: Site, tmp_path: Path) -> None:
    db = new_database(site, tmp_path / "var")
    child = start(db, "harvester.crawl", "--quiet", SOURCE)
    try:
        assert wait_for(lambda: db.count() >= 2 or child.poll() is not None, 90)
        assert child.poll() is None, "the crawl ended before the kill"
        child.kill()  # the crawl process only, as the OOM killer would
        child.wait()

        def survivors() -> list[str]:
            return subprocess.run(
                ["pgrep", "-g", str(child.pid)], capture_output=True, text=True, check=False
            ).stdout.split()

        assert wait_for(lambda: not survivors(), 10, step=0.5), f"orphans: {survivors()}"
    finally:
        kill_group(child)
