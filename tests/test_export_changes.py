"""Re-crawls of a changed catalogue through the real Scrapy stack: an ``export`` source mapped like
``gef_projects`` against a local server that serves the real GEF CSV export (fixtures/gef) with an
ETag and answers ``If-None-Match`` with 304; then a derived changed file (one title changed, one
project removed, one appended); then the same bytes without any validator, where only the content
hash can tell nothing changed. And a ``listing`` source whose detail page (a recorded ELSA
article) disappears: 404 / 410 on the next crawl marks its candidate gone at the source."""

from __future__ import annotations

import csv
import hashlib
import io
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from storage.db import session_factory, transaction
from storage.models import Candidate, CrawlRun, Decision
from tests.conftest import run_crawl

pytestmark = pytest.mark.slow

SOURCE = "test_export"
EXPORT_PATH = "/projects-operations/database/export.csv"
GEF_COUNT = 5892

# The record mapping of harvester/sources/gef_projects.yaml, copied so a later edit of that entry
# does not silently change what this test checks.
GEF_RECORD = textwrap.dedent("""\
    export: {format: csv}
    record:
      key: ID
      url: "https://www.thegef.org/projects-operations/projects/{ID}"
      fields:
        title: {path: Title, prefix_strip: "^Project Title:\\\\s*"}
        countries: {path: Countries, split: ","}
        organisations: {path: Agencies, split: ", "}
        keywords: {path: Focal Areas, split: ","}
        status: Status
        record_type: Type
        amount: {path: GEF Grant, type: money}
        cofinancing: {path: Cofinancing, type: money}
        published: {path: Approval FY, type: date}
    """)


@dataclass
class Served:
    """What the local server answers for one path: body, content type, ETag (None: send none),
    and whether conditional request headers are honoured."""

    body: bytes
    content_type: str = "text/csv; charset=utf-8"
    etag: str | None = None
    conditional: bool = True
    status: int = 200


@dataclass
class ConditionalServer:
    """A local HTTP server on 127.0.0.1 whose answers can change between crawls. Logs
    (path, If-None-Match sent, status answered) for every request but robots.txt (always 404)."""

    routes: dict[str, Served] = field(default_factory=dict)
    log: list[tuple[str, str | None, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def answers(self, path: str) -> list[tuple[str | None, int]]:
        with self._lock:
            return [(inm, status) for p, inm, status in self.log if p == path]

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                served = server.routes.get(self.path)
                inm = self.headers.get("If-None-Match")
                headers: dict[str, str] = {}
                if self.path == "/robots.txt" or served is None:
                    status, body = 404, b"not found"
                    headers["Content-Type"] = "text/plain"
                elif served.status != 200:
                    status, body = served.status, b"gone"
                    headers["Content-Type"] = "text/plain"
                else:
                    if served.etag:
                        headers["ETag"] = served.etag
                    if served.conditional and served.etag and inm == served.etag:
                        status, body = 304, b""
                    else:
                        status, body = 200, served.body
                        headers["Content-Type"] = served.content_type
                if self.path != "/robots.txt":
                    with server._lock:
                        server.log.append((self.path, inm, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        return Handler

    def start(self) -> ConditionalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[ConditionalServer]:
    srv = ConditionalServer().start()
    yield srv
    srv.stop()


def write_source(registry: Path, source_id: str, kind: str, start_url: str, body: str) -> None:
    (registry / f"{source_id}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {source_id}
        name: {kind} change test source
        kind: {kind}
        start_urls: ["{start_url}"]
        verified: false
        verification: "local test server"
        politeness: {{download_delay: 0, autothrottle: false}}
        """)
        + body,
        encoding="utf-8",
    )


def crawl(registry: Path, source_id: str) -> dict[str, Any]:
    """One crawl in a child process; the stats of the run it wrote."""
    result = run_crawl(source_id, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    with session_factory()() as session:
        run = session.scalars(
            select(CrawlRun).where(CrawlRun.source_id == source_id).order_by(CrawlRun.id.desc()).limit(1)
        ).one()
        assert run.status == "finished", (run.status, run.finish_reason, run.stats)
        return dict(run.stats)


@dataclass(frozen=True)
class Row:
    record_hash: str
    updated_at: Any
    title: str | None
    status: str
    gone: bool
    changed_since_review: bool


def snapshot(source_id: str = SOURCE) -> dict[str, Row]:
    """Candidates keyed by record key (or URL)."""
    with session_factory()() as session:
        return {
            c.record_key or c.url: Row(
                c.record_hash, c.updated_at, c.title, c.status, c.gone_at_source, c.changed_since_review
            )
            for c in session.scalars(select(Candidate).where(Candidate.source_id == source_id))
        }


def gone_decisions(source_id: str = SOURCE) -> list[tuple[str | None, str | None]]:
    """(record key or URL, note) of every gone_at_source decision."""
    with session_factory()() as session:
        rows = session.execute(
            select(Candidate.record_key, Candidate.url, Decision.note)
            .join(Decision, Decision.candidate_id == Candidate.id)
            .where(Candidate.source_id == source_id, Decision.reason_code == "gone_at_source")
        )
        return [(r[0] or r[1], r[2]) for r in rows]


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def changed_export(original: bytes) -> tuple[bytes, dict[str, str]]:
    """The capture with one project's Title changed, one project removed and one new project
    appended (a new ID), re-written with the csv module (quoting like the capture: minimal)."""
    header, *rows = list(csv.reader(io.StringIO(original.decode("utf-8"), newline="")))
    ids = [row[header.index("ID")] for row in rows]
    changed_at, removed_at = 10, 20
    title, key = header.index("Title"), header.index("ID")
    changed_id, removed_id = rows[changed_at][key], rows[removed_at][key]
    rows[changed_at][title] = rows[changed_at][title] + " (revised)"
    new = list(rows[0])
    new_id = str(max(int(i) for i in ids) + 1)
    new[key], new[title] = new_id, "Project Title: \tA new project appended to the export for this test"
    rows = [r for i, r in enumerate(rows) if i != removed_at] + [new]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue().encode("utf-8"), {"changed": changed_id, "removed": removed_id, "new": new_id}


def test_export_recrawl_304_then_changed_file_then_same_bytes_without_etag(
    registry: Path, server: ConditionalServer, fixtures_dir: Path
) -> None:
    original = (fixtures_dir / "gef" / "dump-gef-project-database-export.csv").read_bytes()
    server.routes[EXPORT_PATH] = Served(original, etag=etag_of(original))
    write_source(registry, SOURCE, "export", server.url + EXPORT_PATH, GEF_RECORD)

    # (a) first crawl: every project is a new candidate
    stats = crawl(registry, SOURCE)
    assert server.answers(EXPORT_PATH) == [(None, 200)]
    assert (stats["new"], stats["updated"], stats["not_modified"], stats["gone"]) == (GEF_COUNT, 0, 0, 0)
    first = snapshot()
    assert len(first) == GEF_COUNT
    assert first["11305"].title.startswith("Lebanon’s First Biennial Transparency Reports")
    assert not any(r.gone for r in first.values())

    # (b) the unchanged file: the stored ETag is sent, the server answers 304, nothing is rewritten
    server.clear()
    stats = crawl(registry, SOURCE)
    assert server.answers(EXPORT_PATH) == [(etag_of(original), 304)]
    assert stats["responses_by_status"] == {"304": 1, "404": 1}  # the export, robots.txt
    assert (stats["new"], stats["updated"], stats["not_modified"], stats["gone"]) == (0, 0, GEF_COUNT, 0)
    assert stats["pages_not_modified"] == 1 and stats["items"] == 0
    second = snapshot()
    assert {k: (r.record_hash, r.updated_at) for k, r in second.items()} == {
        k: (r.record_hash, r.updated_at) for k, r in first.items()
    }

    # (c) a changed file under a new ETag; the project to be changed was accepted by a curator
    changed, ids = changed_export(original)
    assert ids["changed"] in first and ids["removed"] in first and ids["new"] not in first
    with transaction() as session:
        row = session.scalars(
            select(Candidate).where(Candidate.source_id == SOURCE, Candidate.record_key == ids["changed"])
        ).one()
        row.status = "accepted"
    server.routes[EXPORT_PATH] = Served(changed, etag=etag_of(changed))
    server.clear()
    stats = crawl(registry, SOURCE)
    assert server.answers(EXPORT_PATH) == [(etag_of(original), 200)]
    assert (stats["new"], stats["updated"], stats["gone"], stats["not_modified"]) == (1, 1, 1, GEF_COUNT - 2)
    third = snapshot()
    assert len(third) == GEF_COUNT + 1, "the removed project is flagged, never deleted"
    assert [k for k, r in third.items() if r.gone] == [ids["removed"]]
    assert gone_decisions() == [(ids["removed"], f"no longer in {server.url}{EXPORT_PATH}")]
    revised = third[ids["changed"]]
    assert revised.title == first[ids["changed"]].title + " (revised)"
    assert (revised.status, revised.changed_since_review) == ("accepted", True)
    assert revised.record_hash != first[ids["changed"]].record_hash
    assert third[ids["new"]].title == "A new project appended to the export for this test"
    untouched = set(first) - {ids["changed"], ids["removed"]}
    assert all(
        (third[k].record_hash, third[k].updated_at, third[k].changed_since_review)
        == (first[k].record_hash, first[k].updated_at, False)
        for k in untouched
    )

    # (d) the same bytes with no ETag from a server that ignores conditional headers: always 200,
    # and only the stored content hash tells that nothing changed
    server.routes[EXPORT_PATH] = Served(changed, etag=None, conditional=False)
    server.clear()
    stats = crawl(registry, SOURCE)
    assert server.answers(EXPORT_PATH) == [(etag_of(changed), 200)]
    assert stats["responses_by_status"] == {"200": 1, "404": 1}
    assert (stats["new"], stats["updated"], stats["gone"], stats["not_modified"]) == (0, 0, 0, GEF_COUNT)
    assert stats["pages_not_modified"] == 1 and stats["items"] == 0
    fourth = snapshot()
    assert {k: (r.record_hash, r.updated_at, r.gone) for k, r in fourth.items()} == {
        k: (r.record_hash, r.updated_at, r.gone) for k, r in third.items()
    }


ELSA_INDEX = "/elsar/fr/index.html"
ELSA_ARTICLE = "/elsar/fr/articles/elsaR.html"


@pytest.mark.parametrize("gone_status", [404, 410])
def test_listing_detail_page_that_disappears_is_gone_at_source(
    registry: Path, server: ConditionalServer, fixtures_dir: Path, gone_status: int
) -> None:
    """The recorded French ELSA index links ``articles/elsaR.html``; the first crawl stores the
    recorded article, the second finds the article answering ``gone_status``."""
    multilingual = fixtures_dir / "formats" / "multilingual"
    html = "text/html; charset=utf-8"
    server.routes[ELSA_INDEX] = Served((multilingual / "elsa-undp_index_fr.html").read_bytes(), html)
    server.routes[ELSA_ARTICLE] = Served((multilingual / "elsa-undp_article-elsaR_fr.html").read_bytes(), html)
    source = "test_listing"
    # Only the relative link: the index also links the article by its absolute github.io URL.
    write_source(
        registry,
        source,
        "listing",
        server.url + ELSA_INDEX,
        textwrap.dedent("""\
        listing: {item_links: "a[href='articles/elsaR.html']::attr(href)", max_pages: 1}
        selectors:
          title: "main h1::text"
          text: "main"
        """),
    )

    stats = crawl(registry, source)
    assert [p for p, _inm, _s in server.log] == [ELSA_INDEX, ELSA_ARTICLE]
    assert (stats["new"], stats["gone"]) == (1, 0)
    article_url = server.url + ELSA_ARTICLE
    first = snapshot(source)
    assert list(first) == [article_url]
    assert first[article_url].title == "Un Exemple de Flux de Travail ELSA"
    assert not first[article_url].gone

    server.routes[ELSA_ARTICLE] = Served(b"", status=gone_status)
    server.clear()
    stats = crawl(registry, source)
    assert [(p, s) for p, _inm, s in server.log] == [(ELSA_INDEX, 200), (ELSA_ARTICLE, gone_status)]
    assert (stats["new"], stats["updated"], stats["gone"]) == (0, 0, 1)
    second = snapshot(source)
    assert list(second) == [article_url], "the candidate is kept"
    assert second[article_url].gone
    assert second[article_url].title == first[article_url].title
    assert gone_decisions(source) == [(article_url, f"HTTP {gone_status}")]
