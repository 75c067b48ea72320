"""Killing only the ``harvester crawl`` parent (SIGKILL, as an OOM killer or a careless ``kill -9`` would)
leaves no orphan crawl: the child gets SIGTERM (``PR_SET_PDEATHSIG``), stops, and closes its run as
interrupted, so the next crawl or the scheduler's catch-up starts cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from harvester.settings import PROJECT_ROOT
from storage.models import Candidate, CrawlRun
from tests.fault_server import FaultServer, wait_for

pytestmark = pytest.mark.slow

SOURCE = "slow_site"
PAGES = 30


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split(") ")[-1][:1] != "Z"
    return True


def test_killing_only_the_crawl_command_leaves_no_orphan_and_the_run_interrupted(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    db = tmp_path / "var" / "harvester.sqlite3"
    with FaultServer() as server:
        server.index_links = [f"{server.url}/ok/page-{i:02d}" for i in range(PAGES)]
        (registry / f"{SOURCE}.yaml").write_text(
            textwrap.dedent(f"""\
            id: {SOURCE}
            name: A slow local site
            kind: listing
            start_urls: ["{server.url}/index"]
            verified: false
            verification: "local test server"
            listing: {{item_links: "a.rec::attr(href)", max_pages: 1}}
            selectors: {{title: "main h1::text", text: "main"}}
            politeness: {{download_delay: 0.5, autothrottle: false, concurrent_requests_per_host: 1}}
            """),
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "HARVESTER_DATA_DIR": str(tmp_path / "var"),
            "HARVESTER_REGISTRY_DIR": str(registry),
            "HARVESTER_ALLOW_PRIVATE_HOSTS": "1",
            "HARVESTER_STAGE_POOL": "0",
        }
        env.pop("HARVESTER_DATABASE_URL", None)
        parent = subprocess.Popen(
            [sys.executable, "-m", "harvester", "crawl", SOURCE],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        engine = create_engine(f"sqlite:///{db}")

        def query(fn):  # type: ignore[no-untyped-def]
            try:
                with Session(engine) as session:
                    return fn(session)
            except Exception:  # not created yet
                return None

        try:
            assert wait_for(
                lambda: (query(lambda s: s.scalar(select(func.count()).select_from(Candidate))) or 0) >= 2, 120
            )
            child = query(lambda s: s.scalar(select(CrawlRun.pid)))
            assert child and child != parent.pid and alive(child)
            parent.send_signal(signal.SIGKILL)  # the parent only, not its process group
            parent.wait()
            assert wait_for(lambda: not alive(child), 60, step=0.2), "the crawl child outlived its parent"
            run = query(lambda s: s.execute(select(CrawlRun.status, CrawlRun.finish_reason)).one())
            stored = query(lambda s: s.scalar(select(func.count()).select_from(Candidate)))
            assert tuple(run) == ("interrupted", "shutdown") and stored < PAGES, (run, stored)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(parent.pid, signal.SIGKILL)
            engine.dispose()
