"""Crawl faults through the real Scrapy stack: one crawl of a local listing whose detail links point
at every fault scenario of :mod:`tests.fault_server`, plus good pages in between.

Each scenario has its expected outcome: how many times the URL was asked for (retried or not),
and either the page stored as a candidate or a clear per-URL error on its ``fetched_pages`` row for
this run (and nothing stored half-way). The good pages prove the rest of the crawl went on.

Two servers, reached under two host names so Scrapy gives them separate download slots: ``main``
on ``127.0.0.1`` (robots.txt disallows ``/ok/private``) and ``slow`` on ``localhost``, whose
robots.txt stalls until the timeout and whose 429/503 answers carry ``Retry-After: 1`` (that slows
only its own slot). ``HARVESTER_DOWNLOAD_TIMEOUT`` is 2.5 s so a stall costs 3 x 2.5 s.
"""

from __future__ import annotations

import itertools
import re
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import session_factory
from storage.models import Candidate, CrawlRun, FetchedPage
from tests.conftest import run_crawl
from tests.fault_server import FaultServer, closed_port, title_of

pytestmark = pytest.mark.slow

SOURCE = "fault_matrix"
TIMEOUT = 2.5  # long enough to stream 32 MiB on a busy 2-core machine
ATTEMPTS = 3  # RETRY_TIMES = 2
TIMED_OUT = r"^DownloadTimeoutError: Getting .* took longer than 2\.5 seconds"
TIMER_SLACK = 0.1  # arrival gaps can be shorter than the delay by connection set-up (see test_politeness)


@dataclass(frozen=True)
class Case:
    """``error``: regex the page row's error must match (None: the page is stored as a candidate)."""

    name: str
    server: str  # "main" or "slow"
    path: str
    hits: int | tuple[int, int]  # requests the server saw for the path (a range: streaming races the timeout)
    error: str | None
    stored_title: str | None = None
    final: str | None = None  # the URL the error is recorded against, when a redirect moved it


CASES = [
    Case("good page", "main", "/ok/alpha", 1, None, title_of("alpha")),
    Case("good page after faults", "main", "/ok/omega", 1, None, title_of("omega")),
    Case("stall before headers", "main", "/stall-headers/1", ATTEMPTS, TIMED_OUT),
    Case("stall mid-body", "main", "/stall-body/1", ATTEMPTS, TIMED_OUT),
    Case("slow drip", "main", "/drip/1", ATTEMPTS, TIMED_OUT),
    Case("connection reset", "main", "/reset/1", ATTEMPTS, r"^DownloadFailedError: ConnectionLost: .*non-clean"),
    Case("closed without answer", "main", "/close/1", ATTEMPTS, r"^DownloadFailedError: ConnectionDone: "),
    Case("500", "main", "/500/1", ATTEMPTS, r"^HttpError: Ignoring non-200 response$"),
    Case("502", "main", "/502/1", ATTEMPTS, r"^HttpError: Ignoring non-200 response$"),
    Case("503 without Retry-After", "main", "/503/1", ATTEMPTS, r"^HttpError: Ignoring non-200 response$"),
    Case("503 then 200", "main", "/flaky/1", ATTEMPTS, None, title_of("1")),
    Case("404 is not retried", "main", "/404/1", 1, r"^HTTP 404$"),
    Case("redirect loop", "main", "/loop/1", 1, r"^redirect loop: .*/loop/1 redirects back to itself"),
    Case(
        "over-long redirect chain",
        "main",
        "/chain/0",
        1,
        r"^IgnoreRequest: max redirections reached \(redirected from .*/chain/0\)$",
        final="/chain/10",
    ),
    Case("two redirects then a page", "main", "/short-redirect/0", 1, None, title_of("redirected")),
    Case(
        "Content-Length over the cap",
        "main",
        "/too-large/1",
        1,
        r"^DownloadCancelledError: Expected to receive 41943040 bytes which is larger than download max size",
    ),
    Case("endless body over the cap", "main", "/endless/1", (1, ATTEMPTS), r"^DownloadCancelledError: .*size cap"),
    Case("gzip bomb", "main", "/bomb/1", 1, r"^IgnoreRequest: .* exceeded DOWNLOAD_MAXSIZE .* during decompression"),
    Case("charset says UTF-8, body is cp1252", "main", "/wrong-charset/1", 1, None, title_of("wrong-charset")),
    Case("no charset anywhere", "main", "/missing-charset/1", 1, None, title_of("missing-charset")),
    Case("truncated HTML", "main", "/truncated-html/1", 1, None, title_of("truncated-html")),
    Case(
        "body shorter than Content-Length",
        "main",
        "/truncated-body/1",
        ATTEMPTS,
        r"^ResponseDataLossError: connection closed before the whole body arrived",
    ),
    Case("robots.txt disallows", "main", "/ok/private", 0, r"^IgnoreRequest: Forbidden by robots\.txt$"),
    Case("unroutable port", "closed", "/ok/nobody-home", 0, r"^DownloadConnectionRefusedError: Connection was refused"),
    Case("429 with Retry-After", "slow", "/429/1", ATTEMPTS, r"^HttpError: Ignoring non-200 response$"),
    Case("503 with Retry-After", "slow", "/503-retry-after/1", ATTEMPTS, r"^HttpError: Ignoring non-200 response$"),
    Case("500 with Retry-After", "slow", "/500-retry-after/1", ATTEMPTS, r"^HttpError: Ignoring non-200 response$"),
    Case("good page behind a robots.txt that times out", "slow", "/ok/beta", 1, None, title_of("beta")),
]


@dataclass
class Matrix:
    main: FaultServer
    slow: FaultServer
    closed: int
    run: CrawlRun
    pages: dict[str, FetchedPage]
    stored: dict[str, str | None]
    seconds: float

    def url(self, case: Case) -> str:
        if case.server == "main":
            return self.main.url + case.path
        if case.server == "slow":
            return f"http://localhost:{self.slow.port}{case.path}"
        return f"http://127.0.0.1:{self.closed}{case.path}"


def write_source(registry: Path, index_url: str) -> None:
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: Fault matrix source
        kind: listing
        start_urls: ["{index_url}"]
        verified: false
        verification: "local fault server"
        allowed_hosts: ["127.0.0.1", "localhost"]
        listing: {{item_links: "a.rec::attr(href)", max_pages: 1}}
        selectors: {{title: "main h1::text", text: "main"}}
        politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 8}}
        """),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    """Runs the fault crawl once for the module (a module-scoped data dir and registry)."""
    base = tmp_path_factory.mktemp("faults")
    registry = base / "registry"
    registry.mkdir()
    env = {
        "HARVESTER_DATA_DIR": str(base / "var"),
        "HARVESTER_REGISTRY_DIR": str(registry),
        "HARVESTER_DOWNLOAD_TIMEOUT": str(TIMEOUT),
    }
    with (
        pytest.MonkeyPatch.context() as mp,
        FaultServer(robots="User-agent: *\nDisallow: /ok/private\n") as main,
        FaultServer(robots_stall=True) as slow,
    ):
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("HARVESTER_DATABASE_URL", raising=False)
        from harvester.settings import get_settings
        from storage.db import dispose_engines, upgrade

        get_settings.cache_clear()
        dispose_engines()
        upgrade()
        closed = closed_port()
        probe = Matrix(main, slow, closed, None, {}, {}, 0.0)  # type: ignore[arg-type]
        main.index_links = [probe.url(c) for c in CASES]
        write_source(registry, main.url + "/index")
        started = time.monotonic()
        result = run_crawl(SOURCE, timeout=180)
        seconds = time.monotonic() - started
        assert result.returncode == 0, result.stderr[-3000:]
        with session_factory()() as session:
            run = session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE)).one()
            pages = {p.url: p for p in session.scalars(select(FetchedPage).where(FetchedPage.last_run_id == run.id))}
            stored = {c.url: c.title for c in session.scalars(select(Candidate).where(Candidate.source_id == SOURCE))}
            session.expunge_all()
        yield Matrix(main, slow, closed, run, pages, stored, seconds)
        get_settings.cache_clear()
        dispose_engines()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fault_scenario_has_its_expected_outcome(matrix: Matrix, case: Case) -> None:
    server = {"main": matrix.main, "slow": matrix.slow}.get(case.server)
    url = matrix.url(case)
    page = matrix.pages.get(matrix.main.url + case.final if case.final else url)
    if server is not None:
        low, high = case.hits if isinstance(case.hits, tuple) else (case.hits, case.hits)
        assert low <= server.count(case.path) <= high, (page.error if page else None, server.requests)
    if case.error is None:
        final = [u for u, t in matrix.stored.items() if t == case.stored_title]
        assert final, f"{case.name}: {case.stored_title!r} not stored; stored {sorted(matrix.stored.values())}"
        return
    assert page is not None, f"{case.name}: no page row for {url}"
    assert page.error and re.search(case.error, page.error), page.error
    assert page.content_hash is None and page.record_count in (None, 0), "nothing stored half-way"
    assert url not in matrix.stored


def test_the_crawl_goes_on_and_counts_every_failure(matrix: Matrix) -> None:
    failing = [c for c in CASES if c.error is not None]
    good = [c for c in CASES if c.error is None]
    assert matrix.run.status == "finished"
    assert sorted(matrix.stored.values()) == sorted(c.stored_title for c in good)
    # A 404 on a record page counts as gone at the source, not as an error.
    assert matrix.run.stats["errors"] == len(failing) - 1
    listed = {f["url"]: f["error"] for f in matrix.run.stats["failed_urls"]}
    for url, page in matrix.pages.items():
        if page.error:
            assert listed[url] == page.error, "every per-URL error is also listed in the run stats"
    assert matrix.run.stats["new"] == len(good)
    # A stall costs at most ATTEMPTS timeouts; all run side by side, and Retry-After slows one slot only.
    assert matrix.seconds < 60, matrix.seconds


@pytest.mark.parametrize("path", ["/429/1", "/503-retry-after/1"])
def test_retry_after_spaces_the_retries_of_its_own_host(matrix: Matrix, path: str) -> None:
    times = matrix.slow.times(path)
    assert len(times) == ATTEMPTS
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 1 - TIMER_SLACK for gap in gaps), gaps


def test_a_robots_txt_that_times_out_is_retried_then_the_host_is_crawled(matrix: Matrix) -> None:
    assert matrix.slow.count("/robots.txt") == ATTEMPTS
    assert matrix.slow.requests[:ATTEMPTS] == ["/robots.txt"] * ATTEMPTS


def test_wrong_and_missing_charsets_decode_without_replacement_characters(matrix: Matrix) -> None:
    with session_factory()() as session:
        texts = {c.title: c.text for c in session.scalars(select(Candidate).where(Candidate.source_id == SOURCE))}
    assert "Atelier régional “semences” à Dakar" in (texts[title_of("wrong-charset")] or "")
    assert "Gestión comunitaria de semillas en Perú" in (texts[title_of("missing-charset")] or "")
    assert not any("\ufffd" in (t or "") for t in texts.values())
