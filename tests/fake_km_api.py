"""A local stand-in for the CBD KM API v2013 (127.0.0.1, stdlib ``http.server`` in a thread): it records
every call with its headers, keeps drafts and workflows in memory like the real document store, and
injects the faults the CHM push must survive (5xx, expired tokens, validation errors, slow answers)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EMAIL, PASSWORD = "harvester@example.org", "s3cret-pass"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class FakeKmApi:
    realm: str = "CHM-DEV"
    scheme: str = "Bearer"
    token_ttl: timedelta = timedelta(hours=1)
    calls: list[Call] = field(default_factory=list)
    drafts: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    faults: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    validation_errors: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    draft_rejections: dict[str, dict[str, Any]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKmApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, delay = api.answer(self.command, self.path, dict(self.headers.items()), raw)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if delay:
                    time.sleep(delay)
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- test helpers ---------------------------------------------------------------------------
    def fail(self, route: str, *statuses: int) -> None:
        """Answer the next calls of ``route`` ("PUT /api/v2013/documents/x/validate") with these statuses."""
        self.faults[route].extend(statuses)

    def delay(self, route_prefix: str, seconds: float) -> None:
        """Hold answers to calls starting with ``route_prefix`` for ``seconds`` after doing the work (the
        client is left waiting for a reply to something the server already did)."""
        self.delays[route_prefix] = seconds

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def routes(self) -> list[str]:
        return [c.route for c in self.calls]

    def open_workflows(self, identifier: str | None = None) -> list[dict[str, Any]]:
        return [
            w
            for w in self.workflows.values()
            if w["state"] == "running" and (identifier is None or w["data"]["identifier"] == identifier)
        ]

    def decide(self, workflow_id: str, action: str, reason: str = "") -> None:
        wf = self.workflows[workflow_id]
        wf["state"] = "completed"
        wf["activities"] = [{"name": "publishRecord", "result": {"action": action, "reason": reason}}]

    # --- the API --------------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, float]:
        parts = urlsplit(target)
        body = json.loads(raw) if raw else None
        call = Call(method, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in headers.items()}, body)
        with self.lock:
            self.calls.append(call)
            if self.faults.get(call.route):
                return self.faults[call.route].pop(0), {"message": "injected fault"}, 0.0
            if call.route == "POST /api/v2013/authentication/token":
                return self._token(body)
            delay = max([s for prefix, s in self.delays.items() if call.route.startswith(prefix)], default=0.0)
            if call.headers.get("realm") != self.realm:
                return 400, {"code": "invalidRealm", "message": f"realm must be {self.realm}"}, 0.0
            auth = call.headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme != self.scheme or token not in self.tokens:
                return 401, {"message": "invalid or expired token"}, 0.0
            status, answer, _ = self._route(call)
            return status, answer, delay

    def _token(self, body: Any) -> tuple[int, Any, float]:
        if not isinstance(body, dict) or (body.get("email"), body.get("password")) != (EMAIL, PASSWORD):
            return 400, {"code": "invalidCredentials"}, 0.0
        token = uuid.uuid4().hex
        self.tokens.add(token)
        expiration = (datetime.now(UTC) + self.token_ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, {"authenticationToken": token, "expiration": expiration}, 0.0

    def _route(self, call: Call) -> tuple[int, Any, float]:
        path = call.path.removeprefix("/api/v2013")
        segments = [s for s in path.split("/") if s]
        if call.method == "PUT" and path == "/documents/x/validate":
            ident = (call.body or {}).get("header", {}).get("identifier", "")
            return 200, {"errors": self.validation_errors.get(ident, [])}, 0.0
        if segments[:1] == ["documents"] and segments[2:] == ["versions", "draft"]:
            return self._draft(call, segments[1])
        if segments == ["workflows"] and call.method == "POST":
            return self._start(call)
        if segments == ["workflows"] and call.method == "GET":
            query = json.loads(call.query.get("q", ["{}"])[0])
            found = [
                w
                for w in self.workflows.values()
                if w["data"]["identifier"] == query.get("data.identifier")
                and w["state"] == query.get("state", w["state"])
            ]
            return 200, found, 0.0
        if segments[:1] == ["workflows"] and len(segments) == 2:
            wf = self.workflows.get(segments[1])
            if wf is None:
                return 404, {"message": "no such workflow"}, 0.0
            if call.method == "DELETE":
                wf["state"] = "cancelled"
                return 200, None, 0.0
            return 200, wf, 0.0
        return 404, {"message": f"no route {call.route}"}, 0.0

    def _draft(self, call: Call, identifier: str) -> tuple[int, Any, float]:
        if call.method == "DELETE":
            return (200, None, 0.0) if self.drafts.pop(identifier, None) is not None else (404, None, 0.0)
        if call.method != "PUT":
            draft = self.drafts.get(identifier)
            return (200, draft, 0.0) if draft else (404, None, 0.0)
        if identifier in self.draft_rejections:
            return 400, self.draft_rejections[identifier], 0.0
        if self.open_workflows(identifier):
            return 423, {"message": "draft is locked by a running workflow"}, 0.0
        doc = call.body or {}
        header = doc.get("header", {})
        if header.get("identifier") != identifier or call.query.get("schema") != [header.get("schema")]:
            return 400, {"message": "identifier or schema mismatch"}, 0.0
        previous = self.drafts.get(identifier)
        document_id = previous["documentID"] if previous else 1000 + len(self.drafts)
        title = doc.get("title") or doc.get("name") or {}
        self.drafts[identifier] = {
            "identifier": identifier,
            "documentID": document_id,
            "realm": self.realm,
            "workingDocumentTitle": title,
            "workingDocumentSummary": doc.get("summary"),
            "workingDocumentMetadata": {"schema": doc["header"]["schema"]},
            "body": doc,
        }
        return 200, {k: v for k, v in self.drafts[identifier].items() if k != "body"}, 0.0

    def _start(self, call: Call) -> tuple[int, Any, float]:
        body = call.body or {}
        data = body.get("data") or {}
        if data.get("identifier") not in self.drafts and body.get("type") != "deleteRecord":
            return 400, {"message": "no draft for this identifier"}, 0.0
        wid = uuid.uuid4().hex[:24]
        self.workflows[wid] = {
            "_id": wid,
            "type": body.get("type"),
            "version": body.get("version"),
            "state": "running",
            "data": data,
        }
        return 200, self.workflows[wid], 0.0
