"""A small local HTTP server for spider tests that answers with recorded real responses.

The test passes a routing function ``route(path_and_query) -> (status, headers, body)`` (or None for
a 404); the server runs on 127.0.0.1 on a free port in a daemon thread, answers ``/robots.txt``
with 404 and keeps the log of every request it served in ``requests`` (path + query, in order).

Bodies are read by the tests from the shared fixtures folder at run time; this module only serves
them. :func:`recorded_headers` turns a ``*.headers.json`` sidecar into response headers, mapping
the recorded origin in ``Link`` headers to the local server so the spider can follow them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, str], bytes]
Route = Callable[[str], Answer | None]

# Hop-by-hop or recomputed headers that must not be replayed from a recording.
_SKIP_HEADERS = {"status", "content-length", "transfer-encoding", "connection", "content-encoding"}


def query_of(path: str) -> dict[str, str]:
    """The query parameters of ``path`` (first value of each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query, keep_blank_values=True).items()}


def path_of(path: str) -> str:
    return urlsplit(path).path


class RecordedServer:
    """``with RecordedServer(route) as server: server.url`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def served(self, prefix: str = "/") -> list[str]:
        """Logged requests whose path starts with ``prefix`` (robots.txt left out)."""
        with self._lock:
            return [p for p in self.requests if p.startswith(prefix) and path_of(p) != "/robots.txt"]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(self.path)
                if path_of(self.path) == "/robots.txt":
                    answer: Answer | None = (404, {"Content-Type": "text/plain"}, b"not found")
                else:
                    try:
                        answer = server.route(self.path)
                    except Exception as exc:  # a broken route shows up as a 500 in the crawl
                        answer = (500, {"Content-Type": "text/plain"}, f"route error: {exc!r}".encode())
                if answer is None:
                    answer = (404, {"Content-Type": "text/plain"}, b"not found")
                status, headers, body = answer
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in _SKIP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        return Handler

    def start(self) -> RecordedServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="recorded-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RecordedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def recorded_headers(sidecar: Path, origin: str, local: str) -> tuple[int, dict[str, str]]:
    """Status and headers of a ``*.headers.json`` sidecar; ``origin`` in ``Link`` is mapped to ``local``."""
    data = json.loads(sidecar.read_text(encoding="utf-8"))
    headers = {k: v for k, v in data["headers"].items() if k.lower() not in _SKIP_HEADERS}
    if "link" in headers:
        headers["link"] = headers["link"].replace(origin, local)
    return int(data["status"]["status_code"]), headers


class ServerPool:
    """``with ServerPool() as pool: pool.start(route)``: every server started is stopped on exit."""

    def __init__(self) -> None:
        self.servers: list[RecordedServer] = []

    def start(self, route: Route) -> RecordedServer:
        server = RecordedServer(route).start()
        self.servers.append(server)
        return server

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()
