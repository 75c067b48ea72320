"""Alert delivery: a local SMTP sink and a local webhook receiver on 127.0.0.1; each alert is sent once,
a failing channel is logged and recorded, never raised into the scheduler."""

from __future__ import annotations

import base64
import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, select

import schedules.jobs as jobs
from harvester.crawl.runs_extension import run_stats
from harvester.health.checks import check_source
from harvester.health.notify import deliver_new_alerts
from harvester.settings import get_settings
from storage.db import dispose_engines, transaction
from storage.models import Alert, RunStatus
from storage.runs import ensure_source, finish_run, start_run

SOURCE = "gcf_projects"


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) to receive what smtplib sends."""

    daemon_threads = allow_reuse_address = True

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), SmtpHandler)


class SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpSink

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ready")
        envelope: dict[str, Any] = {"rcpt": []}
        while line := self.rfile.readline().decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink\r\n250 AUTH PLAIN\r\n")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(line.split()[-1]).split(b"\0")
                envelope["auth"] = (user.decode(), password.decode())
                self.reply("235 ok")
            elif verb == "MAIL":
                envelope["from"] = line.split(":", 1)[1]
                self.reply("250 ok")
            elif verb == "RCPT":
                envelope["rcpt"].append(line.split(":", 1)[1])
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                body = []
                while (data := self.rfile.readline().decode()) not in (".\r\n", ""):
                    body.append(data)
                self.server.messages.append(envelope | {"data": "".join(body)})
                envelope = {"rcpt": []}
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int) -> None:
        self.status, self.posts = status, []  # type: list[tuple[str, dict[str, Any]]]
        super().__init__(("127.0.0.1", 0), ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/alerts"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def serving(server: socketserver.BaseServer) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    yield from serving(SmtpSink())


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    yield from serving(Receiver(204))


@pytest.fixture
def db(db_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("HARVESTER_DATABASE_URL", db_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    dispose_engines()
    yield db_engine
    get_settings.cache_clear()
    dispose_engines()


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(f"HARVESTER_{name.upper()}", value)
    get_settings.cache_clear()


def empty_run(engine: Engine) -> None:
    """A finished run that stored nothing: the health check opens a zero_items alert."""
    with transaction(engine) as session:
        ensure_source(session, SOURCE, "GCF", "api", True, True, "h")
        run = start_run(session, SOURCE, "schedule", replay=False)
        finish_run(session, run.id, RunStatus.FINISHED, "finished", run_stats({"downloader/request_count": 1}))


def health(engine: Engine) -> None:
    with transaction(engine) as session:
        check_source(session, SOURCE)


def test_a_new_alert_is_mailed_and_posted_once(
    db: Engine, smtp: SmtpSink, webhook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        monkeypatch,
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=str(smtp.server_address[1]),
        alert_smtp_starttls="false",
        alert_smtp_user="alerts",
        alert_smtp_password="s3cret pass",
        alert_email_from="harvester@example.org",
        alert_email_to="ops@example.org, curator@example.org",
        alert_webhook_url=webhook.url,
    )
    empty_run(db)
    health(db)
    [delivery] = deliver_new_alerts()
    assert (delivery.sent, delivery.errors) == (["email", "webhook"], [])

    [mail] = smtp.messages
    assert mail["auth"] == ("alerts", "s3cret pass")
    assert mail["from"] == "<harvester@example.org>"
    assert mail["rcpt"] == ["<ops@example.org>", "<curator@example.org>"]
    assert "Subject: [CHM Harvester] zero_items on gcf_projects" in mail["data"]
    assert "run 1 on gcf_projects finished with no records" in mail["data"]
    [(content_type, payload)] = webhook.posts
    assert content_type == "application/json"
    assert payload["event"] == "alert"
    assert payload["text"] == (
        "[CHM Harvester] zero_items on gcf_projects: run 1 on gcf_projects finished with no records"
    )
    assert (payload["alert"]["kind"], payload["alert"]["source"], payload["alert"]["run"]) == ("zero_items", SOURCE, 1)

    empty_run(db)  # the problem persists: the open alert is refreshed, not sent again
    health(db)
    assert deliver_new_alerts() == []
    assert (len(smtp.messages), len(webhook.posts)) == (1, 1)
    with transaction(db) as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.notified_at is not None and alert.notify_error is None


def test_a_failing_channel_is_logged_and_recorded_but_never_raised(
    db: Engine, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Receiver(500)
    for _ in serving(broken):
        configure(
            monkeypatch,
            alert_smtp_host="127.0.0.1",
            alert_smtp_port=str(smtp.server_address[1]),
            alert_smtp_starttls="false",
            alert_email_to="ops@example.org",
            alert_webhook_url=broken.url,
        )
        empty_run(db)
        health(db)
        with caplog.at_level(logging.WARNING, logger="harvester.health.notify"):
            [delivery] = deliver_new_alerts()
        assert delivery.sent == ["email"]
        assert delivery.errors == ["webhook: HTTPError: HTTP Error 500: Internal Server Error"]
        assert "not sent by webhook: HTTP Error 500" in caplog.text
        assert deliver_new_alerts() == []  # sent once: a failed channel is not retried on every check
        assert len(broken.posts) == 1
    with transaction(db) as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.notify_error == "webhook: HTTPError: HTTP Error 500: Internal Server Error"
        assert alert.resolved_at is None  # still open, still on the sources page


def test_the_daily_health_job_sends_new_alerts_even_when_the_mail_server_is_down(
    db: Engine, webhook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        monkeypatch,
        alert_smtp_host="127.0.0.1",
        alert_smtp_port="9",
        alert_smtp_starttls="false",
        alert_email_to="ops@example.org",
        alert_webhook_url=webhook.url,
    )
    monkeypatch.setattr(jobs, "load_registry_partly", lambda: ({}, {}))
    empty_run(db)
    assert jobs.health_check() == "health check of 1 sources: 1 new alert(s), 0 still open, 0 resolved"
    assert [p["alert"]["kind"] for _, p in webhook.posts] == ["zero_items"]
    with transaction(db) as session:
        error = session.scalars(select(Alert.notify_error)).one()
    assert error is not None and error.startswith("email: ConnectionRefusedError")
