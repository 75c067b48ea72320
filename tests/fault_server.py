"""A misbehaving HTTP server for crawl fault tests: stalls, drips, resets, error codes, redirect
loops, oversized and bomb bodies, bad charsets, truncated bodies and robots.txt faults.

It listens on 127.0.0.1 only, answers every connection from a daemon thread with raw socket writes
(so it can stall, reset or lie about Content-Length), and every wait is bounded: a stalled
connection waits at most ``max_stall`` seconds or until the server stops. The log of requests
(path, in arrival order) and a per-path hit count let a test assert how often a URL was retried.

Scenarios are looked up by the first path segment (``/<scenario>/<anything>``); see ``SCENARIOS``.
Good pages (``/ok/<name>``) are small generated HTML documents with a unique title and enough
text for extraction, so a test can tell which pages made it into the database.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MIB = 1024 * 1024
PARAGRAPH = (
    "Community seed banks keep local crop varieties alive and train farmers to exchange seeds "
    "across borders; the network links partner organisations in several countries. "
)


def page_html(name: str, charset_meta: str | None = None, extra: str = "") -> str:
    """A generated record page: ``Fault test page <name>`` is its title and heading."""
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head>{meta}<title>Fault test page {name}</title></head>'
        f"<body><main><h1>Fault test page {name}</h1><p>{PARAGRAPH * 4}</p>{extra}</main></body></html>"
    )


def title_of(name: str) -> str:
    return f"Fault test page {name}"


@dataclass
class Conn:
    """One accepted connection: the raw socket plus helpers that respect the server's stop event."""

    sock: socket.socket
    stop: threading.Event
    max_stall: float

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def head(self, status: int, reason: str, headers: dict[str, str]) -> bool:
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), "Connection: close"]
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def respond(self, status: int, body: bytes, headers: dict[str, str] | None = None, reason: str = "X") -> None:
        all_headers = {"Content-Type": "text/html; charset=utf-8", **(headers or {}), "Content-Length": str(len(body))}
        if self.head(status, reason, all_headers):
            self.send(body)

    def stall(self, seconds: float | None = None) -> None:
        """Hold the connection open, sending nothing (bounded)."""
        self.stop.wait(min(seconds if seconds is not None else self.max_stall, self.max_stall))

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Scenario = Callable[[Conn, str], None]


def _ok(conn: Conn, path: str) -> None:
    conn.respond(200, page_html(path.rsplit("/", 1)[-1]).encode())


def _stall_before_headers(conn: Conn, path: str) -> None:
    conn.stall()


def _stall_mid_body(conn: Conn, path: str) -> None:
    body = page_html("stalled").encode()
    if conn.head(200, "OK", {"Content-Type": "text/html", "Content-Length": str(len(body))}):
        conn.send(body[: len(body) // 3])
        conn.stall()


def _slow_drip(conn: Conn, path: str) -> None:
    """One byte every 0.2 s: each chunk arrives well within an idle timeout, the whole never in time."""
    body = page_html("drip").encode()
    if not conn.head(200, "OK", {"Content-Type": "text/html", "Content-Length": str(len(body))}):
        return
    for byte in body:
        if conn.stop.wait(0.2) or not conn.send(bytes([byte])):
            return


def _reset(conn: Conn, path: str) -> None:
    conn.reset()


def _close_without_answer(conn: Conn, path: str) -> None:
    conn.sock.close()


def _status(code: int, retry_after: str | None = None) -> Scenario:
    def answer(conn: Conn, path: str) -> None:
        headers = {"Content-Type": "text/plain"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        conn.respond(code, f"status {code}".encode(), headers)

    return answer


def _flaky(server: FaultServer) -> Scenario:
    """503 the first two times a path is asked for, then the page: retried, stored once."""

    def answer(conn: Conn, path: str) -> None:
        if server.hits[path] <= 2:
            conn.respond(503, b"busy", {"Content-Type": "text/plain"})
        else:
            _ok(conn, path)

    return answer


def _redirect_loop(conn: Conn, path: str) -> None:
    conn.respond(302, b"", {"Location": path})


def _redirect_chain(conn: Conn, path: str) -> None:
    """``/chain/<n>`` -> ``/chain/<n+1>`` ... up to 30 hops, then a page (never reached with 10 allowed)."""
    hop = int(path.rsplit("/", 1)[-1] or 0)
    if hop >= 30:
        _ok(conn, f"/ok/chain-end-{hop}")
    else:
        conn.respond(302, b"", {"Location": f"/chain/{hop + 1}"})


def _short_redirect(conn: Conn, path: str) -> None:
    """Two hops, then a good page: redirects within the limit are followed."""
    hop = int(path.rsplit("/", 1)[-1] or 0)
    if hop >= 2:
        _ok(conn, "/ok/redirected")
    else:
        conn.respond(301, b"", {"Location": f"/short-redirect/{hop + 1}"})


def _declared_too_large(conn: Conn, path: str) -> None:
    """Content-Length over the cap: Scrapy cancels before the body."""
    if conn.head(200, "OK", {"Content-Type": "text/html", "Content-Length": str(40 * MIB)}):
        conn.send(b"<html>" + b"x" * 1024)
        conn.stall(2)


def _endless_body(conn: Conn, path: str) -> None:
    """No Content-Length, body runs past the 32 MiB cap (bounded at 40 MiB)."""
    if not conn.head(200, "OK", {"Content-Type": "text/html"}):
        return
    chunk = b"<p>" + b"y" * (MIB - 3)
    for _ in range(40):
        if conn.stop.is_set() or not conn.send(chunk):
            return


@functools.cache
def gzip_bomb() -> bytes:
    """About 40 KiB of gzip that inflates to 40 MiB of zeros (over the 32 MiB cap)."""
    return gzip.compress(b"\0" * (40 * MIB), compresslevel=9)


def _gzip_bomb(conn: Conn, path: str) -> None:
    conn.respond(200, gzip_bomb(), {"Content-Type": "text/html", "Content-Encoding": "gzip"})


def _wrong_charset(conn: Conn, path: str) -> None:
    """Header says UTF-8, body is windows-1252 (accented letters and curly quotes)."""
    body = page_html("wrong-charset", extra="<p>Atelier régional “semences” à Dakar</p>").encode("cp1252")
    conn.respond(200, body, {"Content-Type": "text/html; charset=utf-8"})


def _missing_charset(conn: Conn, path: str) -> None:
    """No charset anywhere; the body is ISO-8859-1."""
    body = page_html("missing-charset", extra="<p>Gestión comunitaria de semillas en Perú</p>").encode("latin-1")
    conn.respond(200, body, {"Content-Type": "text/html"})


def _truncated_html(conn: Conn, path: str) -> None:
    """A complete HTTP answer whose HTML stops mid-element: extractable text, unclosed tags."""
    html = page_html("truncated-html")
    conn.respond(200, html[: html.index("</p>") - 20].encode())


def _truncated_body(conn: Conn, path: str) -> None:
    """Content-Length promises more than is sent, then the connection closes: data loss."""
    body = page_html("truncated-body").encode()
    if conn.head(200, "OK", {"Content-Type": "text/html", "Content-Length": str(len(body) + 5000)}):
        conn.send(body)
        conn.sock.close()


@dataclass
class FaultServer:
    """``with FaultServer() as server: server.url``; ``robots`` is served at /robots.txt (404 when
    None); ``robots_stall`` makes /robots.txt stall instead; ``/index`` is a listing page linking
    to ``index_links`` (``a.rec`` elements)."""

    robots: str | None = None
    robots_stall: bool = False
    index_links: list[str] = field(default_factory=list)
    max_stall: float = 15.0
    requests: list[str] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    arrivals: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), path)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self.scenarios: dict[str, Scenario] = {
            "ok": _ok,
            "stall-headers": _stall_before_headers,
            "stall-body": _stall_mid_body,
            "drip": _slow_drip,
            "reset": _reset,
            "close": _close_without_answer,
            "500": _status(500),
            "502": _status(502),
            "503": _status(503),
            "503-retry-after": _status(503, "1"),
            "500-retry-after": _status(500, "1"),
            "429": _status(429, "1"),
            "404": _status(404),
            "flaky": _flaky(self),
            "loop": _redirect_loop,
            "chain": _redirect_chain,
            "short-redirect": _short_redirect,
            "too-large": _declared_too_large,
            "endless": _endless_body,
            "bomb": _gzip_bomb,
            "wrong-charset": _wrong_charset,
            "missing-charset": _missing_charset,
            "truncated-html": _truncated_html,
            "truncated-body": _truncated_body,
        }

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, path: str) -> int:
        with self._lock:
            return self.hits[path]

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [at for at, p in self.arrivals if p == path]

    def _serve(self, conn: Conn) -> None:
        data = b""
        conn.sock.settimeout(5)
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.sock.recv(4096)
                if not chunk:
                    return
                data += chunk
        except OSError:
            return
        conn.sock.settimeout(None)
        target = data.split(b" ", 2)[1].decode("latin-1") if data.count(b" ") >= 2 else "/"
        path = urlsplit(target).path
        with self._lock:
            self.requests.append(path)
            self.hits[path] += 1
            self.arrivals.append((time.monotonic(), path))
        if path == "/robots.txt":
            if self.robots_stall:
                conn.stall()
            elif self.robots is None:
                conn.respond(404, b"no robots", {"Content-Type": "text/plain"})
            else:
                conn.respond(200, self.robots.encode(), {"Content-Type": "text/plain"})
            return
        if path == "/index":
            links = "".join(f'<li><a class="rec" href="{href}">{href}</a></li>' for href in self.index_links)
            conn.respond(200, f"<html><body><ul>{links}</ul></body></html>".encode())
            return
        scenario = self.scenarios.get(path.strip("/").split("/", 1)[0])
        if scenario is None:
            conn.respond(404, b"unknown scenario", {"Content-Type": "text/plain"})
        else:
            scenario(conn, path)

    def start(self) -> FaultServer:
        server = self
        gzip_bomb()  # built before the crawl, so serving it takes no time

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = Conn(self.request, server._stop, server.max_stall)
                server._serve(conn)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def shutdown_request(self, request: socket.socket) -> None:  # a reset socket is already closed
                with contextlib.suppress(OSError):
                    super().shutdown_request(request)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
