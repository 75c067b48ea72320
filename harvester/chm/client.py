"""A small KM API v2013 client on the standard library: token sign-in (refreshed before expiry and
once on 401), ``Realm`` and ``Authorization`` headers on every call, retries with exponential
backoff on 5xx, timeouts and connection errors. Paths as in ``reference/chm/CHM-API.md``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

V2013 = "/api/v2013"
PRODUCTION_BASE = "https://api.cbd.int"
PRODUCTION_REALM = "CHM"
REFRESH_MARGIN = timedelta(seconds=60)


class KmError(Exception):
    """A KM API call that did not succeed."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


class TransientKmError(KmError):
    """5xx, timeout or connection failure after every retry: try again on a later run."""


class PermanentKmError(KmError):
    """A 4xx answer: retrying the same request will not help; a curator or operator must act."""

    @property
    def errors(self) -> list[dict[str, str]]:
        body = self.body if isinstance(self.body, dict) else {}
        found = body.get("errors") if isinstance(body.get("errors"), list) else []
        out = [
            {
                "code": str(e.get("code", "")),
                "property": str(e.get("property", "")),
                "detail": str(e.get("message", "")),
            }
            for e in found
            if isinstance(e, dict)
        ]
        return out or [{"code": f"HTTP {self.status}", "property": "", "detail": str(self)}]


class KmAuthError(KmError):
    """Sign-in failed (bad credentials, or the API is down): nothing about any record."""


@dataclass
class Credentials:
    email: str
    password: str


@dataclass
class KmClient:
    base_url: str
    realm: str
    credentials: Credentials
    auth_scheme: str = "Bearer"
    timeout: float = 30.0
    max_attempts: int = 4
    backoff: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    calls: int = 0
    _token: str | None = field(default=None, repr=False)
    _expires: datetime | None = None

    def _send(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Accept": "application/json", "Realm": self.realm}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"{self.auth_scheme} {self._valid_token()}"
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, headers=headers, method=method)
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        ok_missing: bool = False,
        retry: bool = True,
    ) -> Any:
        """One API call with retries (``retry=False`` for a non-idempotent call: the caller checks
        what happened before trying again); returns the JSON body (``None`` for 404 when ``ok_missing``)."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                status, payload = self._send(method, path, body, auth=auth)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                status, payload = None, {"message": str(getattr(exc, "reason", exc))}
            if status is not None and status < 400:
                return payload
            if status == 401 and auth and not refreshed:
                self._token, refreshed = None, True
                attempt -= 1
                continue
            if status == 404 and ok_missing:
                return None
            if status is not None and status < 500:
                raise PermanentKmError(f"{method} {path}: HTTP {status}: {_message(payload)}", status, payload)
            if attempt >= (self.max_attempts if retry else 1):
                what = f"HTTP {status}" if status else _message(payload)
                raise TransientKmError(f"{method} {path}: {what} after {attempt} attempts", status, payload)
            self.sleep(self.backoff * 2 ** (attempt - 1))

    def _valid_token(self) -> str:
        if self._token and (self._expires is None or datetime.now(UTC) < self._expires - REFRESH_MARGIN):
            return self._token
        try:
            answer = self.call(
                "POST",
                f"{V2013}/authentication/token",
                {"email": self.credentials.email, "password": self.credentials.password},
                auth=False,
            )
        except KmError as exc:
            raise KmAuthError(f"sign-in to {self.base_url} failed: {exc}", exc.status, exc.body) from None
        token = answer.get("authenticationToken") if isinstance(answer, dict) else None
        if not token:
            raise KmAuthError("sign-in answered without an authenticationToken", 200, answer)
        self._token, self._expires = str(token), _parse_time(answer.get("expiration"))
        return self._token

    def validate(self, schema: str, doc: dict[str, Any]) -> list[dict[str, str]]:
        answer = self.call("PUT", f"{V2013}/documents/x/validate?schema={_q(schema)}", doc)
        found = answer.get("errors") if isinstance(answer, dict) else None
        return [
            {"code": str(e.get("code", "")), "property": str(e.get("property", "")), "detail": ""}
            for e in found or []
            if isinstance(e, dict)
        ]

    def save_draft(self, identifier: str, schema: str, doc: dict[str, Any]) -> dict[str, Any]:
        answer = self.call("PUT", f"{V2013}/documents/{_q(identifier)}/versions/draft?schema={_q(schema)}", doc)
        return answer if isinstance(answer, dict) else {}

    def delete_draft(self, identifier: str) -> None:
        self.call("DELETE", f"{V2013}/documents/{_q(identifier)}/versions/draft", ok_missing=True)

    def start_workflow(
        self, workflow_type: str, draft: dict[str, Any], identifier: str, info: str, version: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": workflow_type,
            "data": {
                "realm": self.realm,
                "documentID": draft.get("documentID"),
                "identifier": identifier,
                "title": draft.get("workingDocumentTitle"),
                "abstract": draft.get("workingDocumentSummary"),
                "metadata": draft.get("workingDocumentMetadata"),
                "additionalInfo": info[:1000],
            },
        }
        if version:
            body["version"] = version
        answer = self.call("POST", f"{V2013}/workflows", body, retry=False)
        return answer if isinstance(answer, dict) else {}

    def open_workflows(self, identifier: str) -> list[dict[str, Any]]:
        """Running workflows of a document ([I] query shape from absch's workflow search)."""
        q = json.dumps({"data.identifier": identifier, "state": "running"}, separators=(",", ":"))
        answer = self.call("GET", f"{V2013}/workflows?q={_q(q)}")
        return [w for w in answer or [] if isinstance(w, dict)] if isinstance(answer, list) else []

    def workflow(self, workflow_id: str) -> dict[str, Any] | None:
        answer = self.call("GET", f"{V2013}/workflows/{_q(workflow_id)}", ok_missing=True)
        return answer if isinstance(answer, dict) else None

    def cancel_workflow(self, workflow_id: str) -> None:
        self.call("DELETE", f"{V2013}/workflows/{_q(workflow_id)}", ok_missing=True)


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw[:300].decode("utf-8", "replace")}


def _message(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message") or payload.get("code") or payload)[:300]
    return str(payload)[:300]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
