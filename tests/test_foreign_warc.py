"""WARC files written by other tools replay through the real Scrapy stack: a recorded feed served gzip-encoded
by a local server is captured with warcio's ``capture_http`` (which keeps the gzip bytes and the
``Content-Encoding`` header, as wget does) and crawled with ``--replay``; the stored candidates are the
feed's entries, one by one. The project's own ``--record`` files are written the same standard way."""

from __future__ import annotations

import gzip
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from harvester.extraction.feeds import entry_key, iter_feed
from harvester.recordings.warc import iter_responses
from storage.db import session_factory
from storage.models import Candidate, CrawlRun
from tests.conftest import run_crawl

SOURCE = "foreign_warc_feed"
FEED = "feed/guardian_us.rss"


@pytest.fixture
def captured(tmp_path: Path, fixtures_dir: Path) -> tuple[Path, str, bytes]:
    """A WARC of one gzip-encoded response, written by warcio's capture_http around an http.client request
    (urllib looks ``http.client.HTTPConnection`` up per request, so the import order does not matter)."""
    from urllib.request import Request, urlopen

    from warcio.capture_http import capture_http

    body = (fixtures_dir / "formats" / FEED).read_bytes()
    encoded = gzip.compress(body)
    headers = {"Content-Type": "application/rss+xml; charset=utf-8", "Content-Encoding": "gzip"}
    folder = tmp_path / "warcs"
    folder.mkdir()

    class Gzipped(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Gzipped)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/rss"
        with (
            capture_http(str(folder / "capture.warc.gz")),
            urlopen(Request(url, headers={"Accept-Encoding": "gzip"}), timeout=10) as answer,
        ):
            assert gzip.decompress(answer.read()) == body
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    return folder, url, body


def test_a_gzip_encoded_response_recorded_by_warcio_is_stored_encoded(captured: tuple[Path, str, bytes]) -> None:
    from warcio.archiveiterator import ArchiveIterator

    folder, _, body = captured
    with (folder / "capture.warc.gz").open("rb") as fh:
        records = [
            (r.rec_type, r.http_headers.get_header("Content-Encoding") if r.http_headers else None, r.raw_stream.read())
            for r in ArchiveIterator(fh)
        ]
    response = next(r for r in records if r[0] == "response")
    assert response[1] == "gzip" and response[2][:2] == b"\x1f\x8b", "the WARC holds what the server sent"
    assert sorted(r[0] for r in records) == ["request", "response"]
    with (folder / "capture.warc.gz").open("rb") as fh:
        [replayed] = list(iter_responses(fh))
    assert replayed.body == body and replayed.header("Content-Encoding") is None
    assert replayed.header("Content-Length") == str(len(body))


@pytest.mark.slow
def test_replay_of_a_foreign_gzip_warc_stores_every_entry(registry: Path, captured: tuple[Path, str, bytes]) -> None:
    folder, url, body = captured
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: feed captured by warcio
        kind: feed
        start_urls: ["{url}"]
        verified: false
        verification: "local capture"
        politeness: {{download_delay: 0, autothrottle: false}}
        """),
        encoding="utf-8",
    )
    result = run_crawl(SOURCE, replay=folder, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {entry_key(e): " ".join(e["title"].split()) for e in iter_feed(body, base_url=url)}  # spaces folded
    with session_factory()() as session:
        stored = {c.record_key: c.title for c in session.scalars(select(Candidate))}
        run = session.scalars(select(CrawlRun)).one()
    assert len(expected) == 55
    assert stored == expected, "every entry, none lost or merged"
    assert run.stats["errors"] == 0 and run.stats["responses_by_status"].get("200") == 1


@pytest.mark.slow
def test_a_url_missing_from_the_recording_is_an_error_not_a_gone_record(
    registry: Path, captured: tuple[Path, str, bytes]
) -> None:
    """The replay answers 404 for what it never recorded: that must not read as the partner's 404."""
    from harvester.dedupe import canonical_url
    from storage.db import transaction
    from storage.models import CandidateStatus
    from storage.queue import upsert_candidate
    from storage.runs import ensure_source

    folder, url, _ = captured
    missing = url.replace("/rss", "/news/42")  # a record page that was never recorded
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: feed captured by warcio
        kind: feed
        start_urls: ["{url}", "{missing}"]
        verified: false
        verification: "local capture"
        politeness: {{download_delay: 0, autothrottle: false}}
        """),
        encoding="utf-8",
    )
    with transaction() as session:
        ensure_source(session, SOURCE, "feed", "feed", False, True, "h")
        upsert_candidate(
            session,
            source_id=SOURCE,
            url=canonical_url(missing),
            record_hash="h",
            run_id=None,
            initial_status=CandidateStatus.ACCEPTED,
            values={"title": "Curated", "fetched_url": missing},
        )
    result = run_crawl(SOURCE, replay=folder, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    with session_factory()() as session:
        kept = session.scalars(select(Candidate).where(Candidate.url == canonical_url(missing))).one()
        run = session.scalars(select(CrawlRun)).one()
    assert (kept.gone_at_source, kept.status) == (False, "accepted")
    assert run.stats["gone"] == 0 and run.stats["replay_missing"] >= 1  # robots.txt is not recorded either
    assert [(f["url"], f["gone"], f["error"]) for f in run.stats["failed_urls"]] == [
        (missing, False, "not in the recording (replay has no response for this URL)")
    ]


class ConditionalGzipFeed(BaseHTTPRequestHandler):
    """``/old`` redirects to ``/rss``; ``/rss`` is the feed gzip-encoded with an ETag, 304 when it matches."""

    body = b""
    etag = '"feed-1"'

    def do_GET(self) -> None:
        if self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/rss")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/rss":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("If-None-Match") == self.etag:
            self.send_response(304)
            self.send_header("ETag", self.etag)
            self.end_headers()
            return
        encoded = gzip.compress(self.body)
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("ETag", self.etag)
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, *args: Any) -> None:
        return


@pytest.mark.slow
def test_own_recordings_are_standard_warcs_that_replay_to_the_same_candidates(
    registry: Path, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--record`` writes request + response records with the bytes as sent (gzip kept), the redirect hop,
    a revisit for a 304; ``warcio check`` passes; replaying the recording stores the same candidates."""
    import os
    import subprocess
    import sys

    from warcio.archiveiterator import ArchiveIterator

    from harvester.settings import PROJECT_ROOT, get_settings
    from storage.db import dispose_engines

    ConditionalGzipFeed.body = (fixtures_dir / "formats" / FEED).read_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ConditionalGzipFeed)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: recorded feed
        kind: feed
        start_urls: ["{base}/old"]
        verified: false
        verification: "local server"
        politeness: {{download_delay: 0, autothrottle: false}}
        """),
        encoding="utf-8",
    )
    env = {"HARVESTER_REGISTRY_DIR": str(registry)}

    def crawl(*args: str) -> None:
        cmd = [sys.executable, "-m", "harvester", "crawl", SOURCE, *args]
        done = subprocess.run(
            cmd,
            env={**os.environ, **env, "HARVESTER_ALLOW_PRIVATE_HOSTS": "1"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=PROJECT_ROOT,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def records(folder: Path) -> list[tuple[str, str, str | None, str | None, bytes]]:
        out = []
        for path in sorted(folder.glob("*.warc.gz")):
            check = subprocess.run(
                [str(Path(sys.executable).parent / "warcio"), "check", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert check.returncode == 0, check.stdout + check.stderr
            with path.open("rb") as fh:
                for r in ArchiveIterator(fh):
                    uri = r.rec_headers.get_header("WARC-Target-URI")
                    status = r.http_headers.get_statuscode() if r.rec_type != "request" else None
                    encoding = r.http_headers.get_header("Content-Encoding") if r.http_headers else None
                    out.append((r.rec_type, uri[len(base) :], status, encoding, r.raw_stream.read()))
        return out

    try:
        crawl("--record", str(tmp_path / "first"))
        first = records(tmp_path / "first")
        crawl("--record", str(tmp_path / "second"))
        second = records(tmp_path / "second")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

    kinds = sorted((t, p, s) for t, p, s, _, _ in first)
    assert kinds == [
        ("request", "/old", None),
        ("request", "/robots.txt", None),
        ("request", "/rss", None),
        ("response", "/old", "301"),
        ("response", "/robots.txt", "404"),
        ("response", "/rss", "200"),
    ]
    feed = next(r for r in first if r[0] == "response" and r[1] == "/rss")
    assert feed[3] == "gzip" and gzip.decompress(feed[4]) == ConditionalGzipFeed.body, "the bytes as sent"
    assert ("revisit", "/rss", "304", None, b"") in second, "the unchanged feed is a revisit, not a copy"
    with session_factory()() as session:
        live = {c.record_key: c.title for c in session.scalars(select(Candidate))}
    assert len(live) == 55

    monkeypatch.setenv("HARVESTER_DATA_DIR", str(tmp_path / "replayed"))
    env["HARVESTER_DATA_DIR"] = str(tmp_path / "replayed")
    get_settings.cache_clear()
    dispose_engines()
    crawl("--replay", str(tmp_path / "first"))
    with session_factory()() as session:
        replayed = {c.record_key: c.title for c in session.scalars(select(Candidate))}
    assert replayed == live
