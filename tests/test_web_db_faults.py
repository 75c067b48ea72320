"""The review app and a faltering database: a login's session row is committed before its redirect is
sent (PostgreSQL showed the race), and a database that cannot be reached answers 503 with Retry-After."""

from __future__ import annotations

import http.cookiejar
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from harvester.settings import PROJECT_ROOT
from harvester.web.app import create_app
from harvester.web.auth import add_user
from storage.db import make_engine, transaction
from tests.conftest import reset_postgres

LOGINS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_is_a_503_with_retry_after_not_a_500() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/harvester?connect_timeout=2")
    client = TestClient(create_app(engine), follow_redirects=False, raise_server_exceptions=False)
    client.cookies.set("chm_session", "a-session-token")
    for response in (
        client.get("/api/v1/candidates"),
        client.get("/queue"),
        client.post("/login", data={"name": "ada", "password": "curator-pass-1"}),
    ):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "database is unavailable" in response.text
        assert "content-security-policy" in response.headers  # the security headers still apply
    engine.dispose()


@pytest.fixture
def served_on_postgresql(postgres_url: str, tmp_path: Path) -> Iterator[str]:
    """``harvester serve`` on PostgreSQL in a child process, with one curator account."""
    engine = reset_postgres(postgres_url)
    with transaction(engine) as session:
        add_user(session, "ada", "curator", "curator-pass-1")
    engine.dispose()
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "HARVESTER_DATABASE_URL": postgres_url, "HARVESTER_DATA_DIR": str(tmp_path)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harvester", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{base}/login", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


class Browser:
    """Cookies kept, redirects not followed: each hop is a request of its own, sent at once."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), self._NoRedirect
        )

    def send(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers={"Origin": self.base})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.headers.get("location", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("location", "")


@pytest.mark.postgres
def test_every_login_on_postgresql_is_usable_by_the_very_next_request(served_on_postgresql: str) -> None:
    refused = []
    for i in range(LOGINS):
        browser = Browser(served_on_postgresql)
        status, location = browser.send("/login", {"name": "ada", "password": "curator-pass-1", "next": "/queue"})
        assert (status, location) == (303, "/queue")
        queue, _ = browser.send(location)  # what a browser does with the redirect, at once
        me, _ = browser.send("/api/v1/me")
        if (queue, me) != (200, 200):
            refused.append((i, queue, me))
    assert refused == []
