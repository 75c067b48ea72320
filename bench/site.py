"""A generated partner site on 127.0.0.1 for benchmarks and scale tests.

Detail pages are the recorded partner and multilingual pages in ``fixtures/formats/multilingual``
(read at run time, never copied), each served under many numbered URLs with its title numbered and one
numbered paragraph added, so every page has its own text and hash but the size, markup and language mix
of real pages. Listing pages link 50 details each with a next link; ``/sitemap.xml`` is a sitemap
index over urlsets of at most 50,000 URLs with ``lastmod``; ``/feed.xml`` is an RSS feed of the newest
100. Pages are built on request (memory stays flat at 100,000 pages) and carry an ``ETag`` and
``Last-Modified``, answered with 304 to a matching conditional request.
"""

from __future__ import annotations

import html
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

from harvester.jsonl import jsonl_lines

PER_LISTING = 50
PER_SITEMAP = 50_000
LASTMOD = "2026-11-01"
LAST_MODIFIED = "Sun, 01 Nov 2026 00:00:00 GMT"
GATE_TIMEOUT_S = 120.0
TEMPLATE_LANGS = {"en", "fr", "es", "ru", "zh", "ar"}


def load_templates(fixtures_dir: Path) -> list[bytes]:
    """The recorded HTML pages of the multilingual folder, in index order."""
    folder = fixtures_dir / "formats" / "multilingual"
    out = []
    for _, line in jsonl_lines((folder / "index.jsonl").read_text(encoding="utf-8")):
        if not line.strip():
            continue
        entry = json.loads(line)
        if (
            entry.get("content_type") == "text/html"
            and entry.get("lang") in TEMPLATE_LANGS
            and "index" not in entry["file"]
        ):
            out.append((folder / entry["file"]).read_bytes())
    if not out:
        raise FileNotFoundError(f"no recorded HTML pages in {folder}")
    return out


_TITLE = re.compile(rb"<title>(.*?)</title>", re.S | re.I)
_BODY = re.compile(rb"<body[^>]*>", re.I)


@dataclass
class PartnerSite:
    """``with PartnerSite(templates, pages) as site: site.url``; ``site.served`` counts served paths.

    With ``gate`` set, every request waits until the gate opens (tests use it to hold a crawl until all
    of its workers have joined)."""

    templates: list[bytes]
    pages: int
    log_paths: bool = False
    served: dict[str, int] = field(default_factory=dict)
    count: int = 0
    gate: threading.Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def detail(self, i: int) -> bytes:
        page = self.templates[i % len(self.templates)]
        marker = f"Record {i} of the benchmark partner site".encode()
        page = _TITLE.sub(lambda m: b"<title>" + m.group(1).strip() + b" - " + marker + b"</title>", page, count=1)
        return _BODY.sub(lambda m: m.group(0) + b"<p>" + marker + b".</p>", page, count=1)

    def listing(self, n: int) -> bytes:
        first = n * PER_LISTING
        links = "".join(
            f'<li><a class="record" href="/record/{i}.html">Record {i}</a></li>'
            for i in range(first, min(first + PER_LISTING, self.pages))
        )
        more = f'<a rel="next" href="/list/{n + 1}.html">next</a>' if first + PER_LISTING < self.pages else ""
        return f"<html><body><h1>Records, page {n + 1}</h1><ul>{links}</ul>{more}</body></html>".encode()

    def sitemap_index(self) -> bytes:
        parts = "".join(
            f"<sitemap><loc>{self.url}/sitemap-{k}.xml</loc></sitemap>"
            for k in range((self.pages + PER_SITEMAP - 1) // PER_SITEMAP)
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
            f'sitemap/0.9">{parts}</sitemapindex>'
        ).encode()

    def sitemap(self, k: int) -> bytes:
        urls = "".join(
            f"<url><loc>{self.url}/record/{i}.html</loc><lastmod>{LASTMOD}</lastmod></url>"
            for i in range(k * PER_SITEMAP, min((k + 1) * PER_SITEMAP, self.pages))
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/'
            f'sitemap/0.9">{urls}</urlset>'
        ).encode()

    def feed(self) -> bytes:
        items = "".join(
            f"<item><title>Record {i}</title><link>{self.url}/record/{i}.html</link>"
            f"<pubDate>{LAST_MODIFIED}</pubDate></item>"
            for i in range(max(0, self.pages - 100), self.pages)
        )
        return (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>{html.escape("Partner")}</title>'
            f"{items}</channel></rss>"
        ).encode()

    def answer(self, path: str) -> tuple[int, str, bytes] | None:
        if m := re.fullmatch(r"/record/(\d+)\.html", path):
            i = int(m.group(1))
            return (200, "text/html; charset=utf-8", self.detail(i)) if i < self.pages else None
        if m := re.fullmatch(r"/list/(\d+)\.html", path):
            return 200, "text/html; charset=utf-8", self.listing(int(m.group(1)))
        if path == "/sitemap.xml":
            return 200, "application/xml", self.sitemap_index()
        if m := re.fullmatch(r"/sitemap-(\d+)\.xml", path):
            return 200, "application/xml", self.sitemap(int(m.group(1)))
        if path == "/feed.xml":
            return 200, "application/rss+xml", self.feed()
        return None

    def __enter__(self) -> Self:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if site.gate is not None and not site.gate.wait(GATE_TIMEOUT_S):
                    self.send_error(503, "gate never opened")
                    return
                with site._lock:
                    site.count += 1
                    if site.log_paths:
                        site.served[path] = site.served.get(path, 0) + 1
                found = site.answer(path) if path != "/robots.txt" else None
                etag = f'"{path}"'
                if found is not None and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, ctype, body = found or (404, "text/plain", b"not found")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if found is not None:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", LAST_MODIFIED)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client closing a kept-alive connection is normal at the end of a crawl; report anything else."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]
