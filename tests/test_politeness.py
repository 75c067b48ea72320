"""Politeness through the real Scrapy stack against a local server: robots.txt ``Disallow`` and
``Crawl-delay`` (with the registry's cap), ``Retry-After`` on a 503, the identifying User-Agent,
and the per-source overrides ``harvester sources check`` reports.

The crawled source is a ``listing`` whose listing page is the recorded ELSA (UNDP) French index
and whose detail pages are recorded ELSA article pages (fixtures/formats/multilingual), served at
paths chosen here. The robots.txt bodies are server configuration written by the tests.

Request times are taken by the server when a request arrives. Scrapy spaces requests from the
moment it sends them, so an arrival gap can be shorter than the delay by the difference in
connection set-up (about 30 ms measured for the first request after robots.txt); ``TIMER_SLACK``
allows 0.1 s for that, far below what Scrapy's default +-50 % delay jitter would take off."""

from __future__ import annotations

import itertools
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from storage.db import session_factory
from storage.models import Candidate, CrawlRun, FetchedPage
from tests.conftest import run_crawl
from tests.recorded_server import RecordedServer, Route, path_of

SOURCE = "test_polite"
HTML = {"Content-Type": "text/html"}
TIMER_SLACK = 0.1
ELSAR = "a[href='articles/elsaR.html']::attr(href)"
ELSAR_AND_DATA_INFO = "a[href='articles/elsaR.html']::attr(href), a[href='articles/data-info.html']::attr(href)"
# path on the local server -> recorded page
PAGES = {
    "/fr/index.html": "elsa-undp_index_fr.html",
    "/fr/articles/elsaR.html": "elsa-undp_article-elsaR_fr.html",
    "/fr/articles/data-info.html": "elsa-undp_article-elsaR_es.html",
    "/private/index.html": "elsa-undp_index_es.html",
    "/private/articles/elsaR.html": "elsa-undp_article-elsaR_es.html",
}


@dataclass(frozen=True)
class Hit:
    at: float
    path: str
    user_agent: str


class PoliteServer(RecordedServer):
    """A :class:`RecordedServer` that answers ``/robots.txt`` with the given body (404 when None)
    and logs the arrival time and User-Agent of every request, robots.txt included."""

    def __init__(self, route: Route, robots: str | None = None) -> None:
        super().__init__(route)
        self.robots = robots
        self.hits: list[Hit] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        base = super()._handler()

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_GET(self) -> None:
                with server._lock:
                    server.hits.append(Hit(time.monotonic(), self.path, self.headers.get("User-Agent", "")))
                if path_of(self.path) != "/robots.txt" or server.robots is None:
                    super().do_GET()
                    return
                with server._lock:
                    server.requests.append(self.path)
                body = server.robots.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def gaps(self) -> list[float]:
        with self._lock:
            times = [h.at for h in self.hits]
        return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture(scope="module")
def html_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "formats" / "multilingual"


@pytest.fixture
def start_server() -> Iterator[Callable[..., PoliteServer]]:
    servers: list[PoliteServer] = []

    def start(route: Route, robots: str | None = None) -> PoliteServer:
        server = PoliteServer(route, robots).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def page_route(html_dir: Path) -> Route:
    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        name = PAGES.get(path_of(path))
        return (200, HTML, (html_dir / name).read_bytes()) if name else None

    return route


def write_listing(registry: Path, start_urls: list[str], item_links: str, politeness: str) -> None:
    urls = ", ".join(f'"{u}"' for u in start_urls)
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: Politeness test source
        kind: listing
        start_urls: [{urls}]
        verified: false
        verification: "local test server"
        listing: {{item_links: "{item_links}", max_pages: 1}}
        selectors: {{title: "main h1::text", text: "main"}}
        politeness: {politeness}
        """),
        encoding="utf-8",
    )


def crawl(registry: Path) -> None:
    result = run_crawl(SOURCE, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def stored_urls() -> dict[str, str | None]:
    with session_factory()() as session:
        return {c.url: c.title for c in session.scalars(select(Candidate).where(Candidate.source_id == SOURCE))}


def the_run() -> CrawlRun:
    with session_factory()() as session:
        return session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE)).one()


@pytest.mark.slow
def test_robots_disallow_is_obeyed_and_the_user_agent_identifies_us(
    registry: Path, html_dir: Path, start_server
) -> None:
    """``/private`` is disallowed except its listing page (``Allow`` is the longer match): the
    article that listing links to is never requested; the French listing and its article are."""
    server = start_server(
        page_route(html_dir), robots="User-agent: *\nAllow: /private/index.html\nDisallow: /private\n"
    )
    write_listing(
        registry,
        [server.url + "/fr/index.html", server.url + "/private/index.html"],
        ELSAR,
        "{download_delay: 0, autothrottle: false}",
    )

    crawl(registry)
    paths = [h.path for h in server.hits]
    assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1
    assert sorted(paths[1:]) == ["/fr/articles/elsaR.html", "/fr/index.html", "/private/index.html"]
    assert "/private/articles/elsaR.html" not in paths
    assert stored_urls() == {server.url + "/fr/articles/elsaR.html": "Un Exemple de Flux de Travail ELSA"}
    for hit in server.hits:
        assert hit.user_agent.startswith("CHM-Harvester/"), hit
        assert "+http" in hit.user_agent, hit
    assert the_run().status == "finished"


@pytest.mark.slow
def test_robots_crawl_delay_spaces_requests(registry: Path, html_dir: Path, start_server) -> None:
    server = start_server(page_route(html_dir), robots="User-agent: *\nCrawl-delay: 2\n")
    write_listing(
        registry, [server.url + "/fr/index.html"], ELSAR_AND_DATA_INFO, "{download_delay: 0, autothrottle: false}"
    )

    crawl(registry)
    paths = [h.path for h in server.hits]
    assert paths[:2] == ["/robots.txt", "/fr/index.html"]
    assert sorted(paths[2:]) == ["/fr/articles/data-info.html", "/fr/articles/elsaR.html"], "3 pages"
    gaps = server.gaps()
    assert len(gaps) == 3
    assert all(gap >= 2 - TIMER_SLACK for gap in gaps), gaps
    assert len(stored_urls()) == 2
    run = the_run()
    assert run.status == "finished"
    assert run.stats["duration_s"] >= 3 * 2 - TIMER_SLACK


@pytest.mark.slow
def test_crawl_delay_is_capped_by_the_registry(registry: Path, html_dir: Path, start_server) -> None:
    server = start_server(page_route(html_dir), robots="User-agent: *\nCrawl-delay: 100\n")
    write_listing(
        registry,
        [server.url + "/fr/index.html"],
        ELSAR_AND_DATA_INFO,
        "{download_delay: 0, autothrottle: false, crawl_delay_cap: 1}",
    )

    started = time.monotonic()
    crawl(registry)
    assert time.monotonic() - started < 60, "a 100 s Crawl-delay was not capped"
    assert len(server.hits) == 4  # robots.txt + 3 pages
    gaps = server.gaps()
    assert all(1 - TIMER_SLACK <= gap < 2 for gap in gaps), gaps
    assert len(stored_urls()) == 2


@pytest.mark.slow
def test_retry_after_on_503_waits_then_stores_the_page_once(registry: Path, html_dir: Path, start_server) -> None:
    lock = threading.Lock()
    answered: list[int] = []
    pages = page_route(html_dir)

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path_of(path) == "/fr/articles/elsaR.html":
            with lock:
                first = not answered
                answered.append(503 if first else 200)
            if first:
                return 503, {"Retry-After": "2", "Content-Type": "text/plain"}, b""
        return pages(path)

    server = start_server(route)
    write_listing(registry, [server.url + "/fr/index.html"], ELSAR, "{download_delay: 0, autothrottle: false}")

    crawl(registry)
    article = [h for h in server.hits if h.path == "/fr/articles/elsaR.html"]
    assert answered == [503, 200]
    assert len(article) == 2
    assert article[1].at - article[0].at >= 2 - TIMER_SLACK
    assert stored_urls() == {server.url + "/fr/articles/elsaR.html": "Un Exemple de Flux de Travail ELSA"}
    with session_factory()() as session:
        (page,) = session.scalars(select(FetchedPage).where(FetchedPage.url.like("%/articles/elsaR.html")))
    assert (page.http_status, page.error, page.record_count) == (200, None, 1)
    run = the_run()
    assert run.status == "finished"
    assert run.stats["responses_by_status"] == {"404": 1, "200": 2, "503": 1}
    assert (run.stats["new"], run.stats["items"], run.stats["errors"]) == (1, 1, 0)


@pytest.mark.slow
def test_retry_after_delays_only_the_retried_request(registry: Path, html_dir: Path, start_server) -> None:
    """A 503 with ``Retry-After: 4`` on one article: its retry waits 4 s, the other article does not."""
    answered: list[int] = []
    pages = page_route(html_dir)

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path_of(path) == "/fr/articles/elsaR.html" and not answered:
            answered.append(503)
            return 503, {"Retry-After": "4", "Content-Type": "text/plain"}, b""
        return pages(path)

    server = start_server(route)
    write_listing(
        registry, [server.url + "/fr/index.html"], ELSAR_AND_DATA_INFO, "{download_delay: 0, autothrottle: false}"
    )
    crawl(registry)
    elsar = [h.at for h in server.hits if h.path == "/fr/articles/elsaR.html"]
    other = [h.at for h in server.hits if h.path == "/fr/articles/data-info.html"]
    assert len(elsar) == 2 and len(other) == 1
    assert elsar[1] - elsar[0] >= 4 - TIMER_SLACK, "the retry waited as the server asked"
    assert other[0] < elsar[0] + 2, "the other page of the host was not held back for the retry's wait"
    assert len(stored_urls()) == 2 and the_run().stats["errors"] == 0


def test_sources_check_shows_per_source_politeness_overrides(registry: Path) -> None:
    from harvester.cli import cli

    for source_id, politeness in (
        (
            "polite_custom",
            "{download_delay: 3.5, concurrent_requests_per_host: 2, autothrottle: false, crawl_delay_cap: 7}",
        ),
        ("polite_default", None),
    ):
        (registry / f"{source_id}.yaml").write_text(
            textwrap.dedent(f"""\
            id: {source_id}
            name: {source_id}
            kind: sitemap
            start_urls: ["https://example.org/sitemap.xml"]
            verified: false
            verification: "test entry"
            """)
            + (f"politeness: {politeness}\n" if politeness else ""),
            encoding="utf-8",
        )

    result = CliRunner().invoke(cli, ["sources", "check", "--json"])
    assert result.exit_code == 0, result.output
    report = {entry["id"]: entry["politeness"] for entry in json.loads(result.output)}
    assert set(report) == {"polite_custom", "polite_default"}
    custom, default = report["polite_custom"], report["polite_default"]
    assert (
        custom["download_delay_s"],
        custom["concurrent_requests_per_host"],
        custom["autothrottle"],
        custom["crawl_delay_cap_s"],
    ) == (3.5, 2, False, 7)
    assert (
        default["download_delay_s"],
        default["concurrent_requests_per_host"],
        default["autothrottle"],
        default["crawl_delay_cap_s"],
    ) == (1.0, 1, True, 30.0)
    assert custom["robots_txt"] is default["robots_txt"] is True
    assert custom["user_agent"] == default["user_agent"]
    assert custom["user_agent"].startswith("CHM-Harvester/") and "+http" in custom["user_agent"]
