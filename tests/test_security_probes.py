"""Security probes against the review app beyond its own tests, plus the crawler's SSRF guard and bandit.

- Auth bypass: the route table is enumerated from the app; each route's role comes from its
  dependencies (admin, any logged-in user, or public), public routes must be on an allowlist, and
  every route is called unauthenticated (never served), and as a curator (admin routes: 403).
- XSS: a payload list goes into every harvested field (and the source name); every HTML page is
  parsed and must hold no script, event handler, ``javascript:``/``data:`` link, frame, base or
  refresh that the app did not write itself.
- CSRF on every unsafe route, session fixation, open redirect after login, SQL injection in every
  queue filter, security headers on every response.
- SSRF: admins add sources only through registry YAML (the app has no "add source" route), so the
  guard is probed through ``harvester sources check`` and a crawl, with and without
  ``HARVESTER_ALLOW_PRIVATE_HOSTS``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlalchemy import Engine, func, select

from harvester.items import CandidateItem
from harvester.settings import PROJECT_ROOT
from harvester.stages import apply_hashes
from harvester.web.app import create_app
from harvester.web.auth import add_user
from harvester.web.deps import admin_user, current_user
from pipelines.store import candidate_values
from storage.db import transaction
from storage.models import Candidate, CrawlRun, Decision, WebSession
from storage.queue import upsert_candidate
from storage.runs import ensure_source

XSS = [
    '<script>alert("xss-1")</script>',
    '<img src=x onerror=alert("xss-2")>',
    '<svg onload=alert("xss-3")>',
    '"><script>alert("xss-4")</script>',
    "'><img src=x onerror=alert('xss-5')>",
    "javascript:alert('xss-6')",
    "JaVaScRiPt:alert('xss-7')",
    "java\tscript:alert('xss-8')",
    "data:text/html,<script>alert('xss-9')</script>",
    '<iframe srcdoc="<script>alert(10)</script>"></iframe>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('xss-11')>",
    '<noscript><p title="</noscript><img src=x onerror=alert(12)>">',
    '<a href="javascript:alert(13)">click</a>',
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    "{{ 7*7 }}{% raw %}",
    "<form action=https://evil.example/><button>go</button></form>",
]
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/api/v1/openapi.json"), ("HEAD", "/api/v1/openapi.json")}
PATH_VALUES = {
    "candidate_id": "{cid}",
    "run_id": "1",
    "alert_id": "1",
    "user_id": "1",
    "review_id": "1",
    "source_id": "hostile_site",
    "name": "x",
    "fmt": "svg",
    "action": "push",
}


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    role: str  # "public" | "curator" | "admin"


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def route_table() -> list[RouteInfo]:
    """Every (method, path) the app serves, with the role its dependencies demand."""
    app = create_app()
    routes: list[Any] = []
    for route in app.routes:
        routes.extend(getattr(getattr(route, "original_router", None), "routes", [route]))
    out = []
    for route in routes:
        dependant = getattr(route, "dependant", None)
        calls = set(_calls(dependant)) if dependant is not None else set()
        role = "admin" if admin_user in calls else "curator" if current_user in calls else "public"
        for method in sorted(getattr(route, "methods", None) or []):
            out.append(RouteInfo(method, route.path, role))
    return out


ROUTES = route_table()


def fill(path: str, candidate_id: int) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x").format(cid=candidate_id), path)


def seed(db_engine: Engine) -> Engine:
    """One hostile candidate (payloads in every harvested field), a run and a source named with
    payloads, a curator and an admin."""
    hostile = CandidateItem(
        "hostile_site",
        "javascript:alert('xss-url')",
        "https://example.org/x",
        title=" ".join(XSS[:6]),
        summary=" ".join(XSS),
        text="Training on protected areas " + " ".join(XSS),
        organisations=XSS[:8],
        countries=XSS[8:10],
        keywords=XSS[10:],
        regions=XSS[:2],
        published="<script>alert(1)</script>",
        provenance={"title": XSS[0]},
        extra={"x": XSS[1]},
    )
    apply_hashes(hostile)
    with transaction(db_engine) as session:
        ensure_source(session, "hostile_site", XSS[0] + XSS[1], "listing", False, True, "h")
        upsert_candidate(
            session,
            source_id="hostile_site",
            url=hostile.url,
            record_hash=hostile.record_hash or "h",
            run_id=None,
            initial_status="pending",
            values=candidate_values(hostile),
        )
        session.add(
            CrawlRun(
                source_id="hostile_site", trigger="cli", status="failed", stats={"errors": 1}, finish_reason=XSS[3]
            )
        )
        add_user(session, "ada", "curator", "curator-pass-1")
        add_user(session, "root", "admin", "admin-pass-12")
    return db_engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """SQLite, shared by the module (every probe asserts the database is unchanged, so none can mask
    another). SQL injection runs on both databases (``any_engine``)."""
    from storage.db import make_engine, upgrade

    db = make_engine(f"sqlite:///{tmp_path_factory.mktemp('probes') / 'probes.sqlite3'}")
    upgrade(db)
    yield seed(db)
    db.dispose()


@pytest.fixture
def any_engine(db_engine: Engine) -> Engine:
    return seed(db_engine)


def login(engine: Engine, name: str, password: str) -> TestClient:
    client = TestClient(create_app(engine), follow_redirects=False)
    r = client.post("/login", data={"name": name, "password": password, "next": "/queue"})
    assert r.status_code == 303, r.text
    return client


def candidate_id(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.scalars(select(Candidate.id).where(Candidate.source_id == "hostile_site")).one()


def db_state(engine: Engine) -> tuple[Any, ...]:
    with transaction(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Decision)),
            tuple(
                session.execute(
                    select(Candidate.id, Candidate.status, Candidate.version_id, Candidate.curator_edits)
                ).all()
            ),
        )


def test_every_route_has_a_role_and_only_the_login_is_public() -> None:
    assert len(ROUTES) >= 20
    public = {(r.method, r.path) for r in ROUTES if r.role == "public"}
    assert public <= PUBLIC, f"routes without a login check: {sorted(public - PUBLIC)}"
    assert {r.path for r in ROUTES if r.role == "admin"} >= {"/admin/users"}


@pytest.mark.parametrize("route", [r for r in ROUTES if r.role != "public"], ids=lambda r: f"{r.method} {r.path}")
def test_no_route_serves_an_anonymous_caller(engine: Engine, route: RouteInfo) -> None:
    client = TestClient(create_app(engine), follow_redirects=False)
    before = db_state(engine)
    r = client.request(route.method, fill(route.path, candidate_id(engine)))
    if route.path.startswith("/api/"):
        assert r.status_code == 401, r.text
    else:
        assert r.status_code in (303, 401, 403), r.text
        if r.status_code == 303:
            assert r.headers["location"].startswith("/login?next=")
    assert db_state(engine) == before


@pytest.mark.parametrize("route", [r for r in ROUTES if r.role == "admin"], ids=lambda r: f"{r.method} {r.path}")
def test_a_curator_is_refused_every_admin_route(engine: Engine, route: RouteInfo) -> None:
    client = login(engine, "ada", "curator-pass-1")
    before = db_state(engine)
    r = client.request(route.method, fill(route.path, candidate_id(engine)))
    assert r.status_code == 403
    assert db_state(engine) == before


def _injected(doc: Any) -> list[str]:
    """Active content in a parsed page that the app's own templates never write."""
    found = []
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag == "script" and not (el.get("src") or "").startswith("/static/"):
            found.append(f"inline or foreign script {lxml_html.tostring(el)[:80]!r}")
        if tag in ("iframe", "object", "embed", "base", "frame") and not (el.get("src") or "").startswith("/"):
            found.append(f"<{tag}>")
        if tag == "meta" and (el.get("http-equiv") or "").lower() == "refresh":
            found.append("meta refresh")
        if tag == "form" and urlsplit(el.get("action") or "/").netloc:
            found.append(f"form to {el.get('action')}")
        for name, value in el.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"<{tag} {name}=...>")
            if name.lower() in ("href", "src", "action", "formaction", "srcdoc") and re.sub(
                r"[\s\x00-\x1f]", "", value
            ).lower().startswith(("javascript:", "data:text", "vbscript:")):
                found.append(f"<{tag} {name}={value[:40]}>")
    return found


def test_xss_payloads_in_every_harvested_field_stay_inert_on_every_page(engine: Engine) -> None:
    cid = candidate_id(engine)
    pages = 0
    for user, password in (("ada", "curator-pass-1"), ("root", "admin-pass-12")):
        client = login(engine, user, password)
        for route in ROUTES:
            if route.method != "GET" or (route.role == "public" and route.path != "/login"):
                continue
            r = client.get(fill(route.path, cid))
            if r.status_code != 200 or "html" not in r.headers.get("content-type", ""):
                continue
            pages += 1
            assert _injected(lxml_html.fromstring(r.text)) == [], f"{user} {route.path}"
            assert 'alert("xss-1")</script>' not in r.text
        api = client.get(f"/api/v1/candidates/{cid}")
        assert api.headers["content-type"].startswith("application/json")
        assert api.json()["title"].startswith(XSS[0])  # stored verbatim, escaped only where rendered
    assert pages >= 8


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.method == "POST" and r.role != "public"], ids=lambda r: f"{r.method} {r.path}"
)
@pytest.mark.parametrize("attack", ["no token", "wrong token", "cross-site origin"])
def test_csrf_is_refused_on_every_unsafe_route(engine: Engine, route: RouteInfo, attack: str) -> None:
    client = login(engine, "root", "admin-pass-12")
    page = client.get(f"/candidates/{candidate_id(engine)}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    data = {
        "decision": "accepted",
        "csrf_token": token.group(1),
        "name": "eve",
        "role": "admin",
        "password": "eve-password-1",
        "version": "1",
        "ids": str(candidate_id(engine)),
        "reason": "other",
    }
    headers = {}
    if attack == "no token":
        data.pop("csrf_token")
    elif attack == "wrong token":
        data["csrf_token"] = "forged" + token.group(1)[6:]
    else:
        headers = {"origin": "https://evil.example"}
    before = db_state(engine)
    r = client.post(fill(route.path, candidate_id(engine)), data=data, headers=headers)
    assert r.status_code in (403, 422), (r.status_code, r.text[:200])
    assert db_state(engine) == before


def test_a_session_id_planted_before_login_is_not_adopted(engine: Engine) -> None:
    client = TestClient(create_app(engine), follow_redirects=False)
    planted = "attacker-chosen-session-id-0123456789"
    client.cookies.set("chm_session", planted)
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1"})
    assert r.status_code == 303
    issued = r.cookies.get("chm_session")
    assert issued and issued != planted
    attacker = TestClient(create_app(engine), follow_redirects=False)
    attacker.cookies.set("chm_session", planted)
    assert attacker.get("/api/v1/me").status_code == 401
    first = issued
    client.post("/logout", data={"csrf_token": _csrf(client)})
    again = login(engine, "ada", "curator-pass-1")
    assert again.cookies.get("chm_session") not in (None, first)
    stale = TestClient(create_app(engine), follow_redirects=False)
    stale.cookies.set("chm_session", first)
    assert stale.get("/api/v1/me").status_code == 401
    with transaction(engine) as session:
        planted_hash = hashlib.sha256(planted.encode()).hexdigest()
        assert (
            session.scalar(select(func.count()).select_from(WebSession).where(WebSession.token_hash == planted_hash))
            == 0
        )


def _csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/queue").text)
    assert match
    return match.group(1)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "/\t/evil.example",
        "/%2F%2Fevil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "https:evil.example",
        " //evil.example",
        "/\n/evil.example",
        "\x00//evil.example",
    ],
)
def test_no_open_redirect_after_login(engine: Engine, target: str) -> None:
    client = TestClient(create_app(engine), follow_redirects=False)
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1", "next": target})
    assert r.status_code == 303
    location = r.headers["location"]
    as_browser = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")  # what WHATWG URL parsing does
    assert urlsplit(urljoin("http://testserver/login", as_browser)).netloc == "testserver", location


SQLI = [
    "' OR '1'='1",
    "1' OR 1=1 --",
    "x'; DROP TABLE candidates; --",
    '" OR ""="',
    "%' UNION SELECT name, password_hash FROM users --",
    "1) OR (1=1",
    "\\'; SELECT pg_sleep(5); --",
    "0x27",
    "%",
    "_",
    "\x00",
]
FILTERS = (
    "status",
    "source",
    "lang",
    "min_score",
    "max_score",
    "criterion",
    "criterion_min",
    "support_type",
    "country",
    "published_from",
    "published_to",
    "reviewer",
    "q",
    "after",
    "before",
    "page",
    "limit",
)


def test_sql_injection_in_every_filter_is_inert(any_engine: Engine) -> None:
    engine = any_engine
    client = login(engine, "ada", "curator-pass-1")
    before = db_state(engine)
    for name, payload in itertools.product(FILTERS, SQLI):
        for path in ("/queue", "/api/v1/candidates"):
            r = client.get(path, params={name: payload})
            assert r.status_code in (200, 400, 422), (path, name, payload, r.status_code)
            if (
                path.startswith("/api/")
                and r.status_code == 200
                and name not in ("min_score", "max_score", "criterion_min", "page")
            ):
                items = r.json()["items"]
                assert len(items) <= 1, (name, payload)  # never the whole table through a tautology
                assert "password_hash" not in r.text and "$argon2" not in r.text
    assert db_state(engine) == before
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Candidate)) == 1


def test_security_headers_on_every_response(engine: Engine) -> None:
    client = login(engine, "root", "admin-pass-12")
    cid = candidate_id(engine)
    for route in ROUTES:
        if route.method != "GET":
            continue
        r = client.get(fill(route.path, cid))
        assert r.headers.get("x-content-type-options") == "nosniff", route
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors" in csp and "unsafe-eval" not in csp, (route, csp)
        assert r.headers.get("cache-control") == "no-store", route
        assert "camera=()" in r.headers.get("permissions-policy", ""), route
        assert client.head(fill(route.path, cid)).status_code == r.status_code, route
        if "html" in r.headers.get("content-type", "") and not route.path.endswith("/snapshot"):
            assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, (route, csp)
            assert "object-src 'none'" in csp and "base-uri 'none'" in csp
        assert r.status_code < 500, (route, r.status_code)


# --- lockout, the trusted proxy, odd input ------------------------------------------------------------


def client_at(engine: Engine, address: str) -> TestClient:
    return TestClient(create_app(engine), follow_redirects=False, client=(address, 40000))


def test_no_one_can_lock_a_named_curator_out(engine: Engine) -> None:
    attacker = client_at(engine, "203.0.113.7")
    codes = [attacker.post("/login", data={"name": "ada", "password": f"guess-{i}"}).status_code for i in range(40)]
    # Three guesses, then a wait that doubles with every guess checked: 40 quick tries get about five checked.
    assert codes[:4] == [401, 401, 401, 429] and codes.count(401) <= 6 and set(codes) == {401, 429}
    sprayed = [
        attacker.post("/login", data={"name": f"{n}", "password": "Summer2026!"}).status_code
        for n in ("root", "admin", "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
    ]
    assert sprayed.count(429) >= 6, sprayed
    # The real curator, from her own client, is never held back by any of it.
    assert (
        client_at(engine, "192.0.2.10").post("/login", data={"name": "ada", "password": "curator-pass-1"}).status_code
        == 303
    )


def _serve(db_url: str, data_dir: Path, trusted: str | None) -> tuple[subprocess.Popen[bytes], int]:
    import os
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "HARVESTER_DATABASE_URL": db_url, "HARVESTER_DATA_DIR": str(data_dir)}
    env.pop("HARVESTER_FORWARDED_ALLOW_IPS", None)
    if trusted is not None:
        env["HARVESTER_FORWARDED_ALLOW_IPS"] = trusted
    proc = subprocess.Popen(
        [sys.executable, "-m", "harvester", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("harvester serve did not answer in 30 s")


def _post_login(port: int, password: str, headers: dict[str, str]) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        "/login",
        body=f"name=ada&password={password}",
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status, r.getheader("set-cookie") or ""


@pytest.mark.slow
def test_the_cookie_is_secure_behind_the_trusted_proxy_and_forged_headers_are_ignored(tmp_path: Path) -> None:
    from storage.db import make_engine, upgrade

    db_url = f"sqlite:///{tmp_path / 'proxy.sqlite3'}"
    db = make_engine(db_url)
    upgrade(db)
    with transaction(db) as session:
        add_user(session, "ada", "curator", "curator-pass-1")
    db.dispose()
    via_proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.23"}
    for trusted, secure in (("127.0.0.1", True), (None, False)):
        proc, port = _serve(db_url, tmp_path, trusted)
        try:
            # The browser's Origin is the public https site; the proxy keeps the Host header.
            origin = {"Origin": f"{'https' if secure else 'http'}://127.0.0.1:{port}"}
            status, cookie = _post_login(port, "curator-pass-1", {**via_proxy, **origin})
            assert status == 303
            flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
            assert cookie.startswith("__Host-chm_session=" if secure else "chm_session="), cookie
            assert ("secure" in flags) is secure
            assert {"httponly", "samesite", "path"} <= flags and "domain" not in flags
            if secure:
                # Behind the proxy the throttle sees each client's own address, not the proxy's.
                for i in range(4):
                    _post_login(port, f"guess-{i}", {**via_proxy, **origin, "X-Forwarded-For": "203.0.113.9"})
                assert (
                    _post_login(port, "curator-pass-1", {**via_proxy, **origin, "X-Forwarded-For": "203.0.113.9"})[0]
                    == 429
                )
                assert _post_login(port, "curator-pass-1", {**via_proxy, **origin})[0] == 303
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    check = make_engine(db_url)
    with transaction(check) as session:
        from storage.models import LoginAttempt

        clients = set(session.scalars(select(LoginAttempt.client)))
    check.dispose()
    assert clients == {"198.51.100.23", "203.0.113.9", "127.0.0.1"}  # the forged header counted only when trusted


ODD_PATH_VALUES = [str(2**31), str(2**63), str(10**40), "-1", "0", "1.5", "1e3", "abc", "%F0%9F%92%A5"]


def test_odd_path_values_on_every_route_never_give_a_500(any_engine: Engine) -> None:
    engine = any_engine
    client = login(engine, "root", "admin-pass-12")
    token = _csrf(client)
    before = db_state(engine)
    for route in ROUTES:
        if "{" not in route.path or route.method not in ("GET", "POST"):
            continue
        for odd in ODD_PATH_VALUES:
            path = re.sub(
                r"\{(\w+)\}", lambda m, odd=odd: "svg" if m.group(1) in ("fmt", "action") else odd, route.path
            )
            r = client.request(
                route.method,
                path,
                data={"csrf_token": token, "action": "deactivate"} if route.method == "POST" else None,
            )
            assert r.status_code < 500, (route, odd, r.status_code)
    for query in ("after", "before"):
        for path in ("/queue", "/api/v1/candidates"):
            assert client.get(path, params={query: f"0.5_{2**63}"}).status_code == 400
    assert db_state(engine) == before


@pytest.mark.parametrize(
    "edits",
    [
        {"countries": 5},
        {"title": {}},
        {"title": []},
        {"organisations": [None]},
        {"published": 2020},
        {"countries": "x" * 6000},
        {"end_date": True},
    ],
)
def test_wrongly_typed_api_edits_are_refused(engine: Engine, edits: dict[str, Any]) -> None:
    client = login(engine, "ada", "curator-pass-1")
    csrf = client.get("/api/v1/me").json()["csrf_token"]
    before = db_state(engine)
    r = client.post(
        f"/api/v1/candidates/{candidate_id(engine)}/decisions",
        json={"action": "accept", "edits": edits},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 422, r.text
    assert db_state(engine) == before


def test_no_page_shows_a_message_the_app_did_not_issue(engine: Engine) -> None:
    phishing = "Security notice: your account is locked, call +1 555 0100"
    client = login(engine, "root", "admin-pass-12")
    cid = candidate_id(engine)
    pages = 0
    for route in ROUTES:
        if route.method != "GET":
            continue
        r = client.get(
            fill(route.path, cid), params={"message": phishing, "sig": "f" * 64, "error": phishing, "notice": phishing}
        )
        if "html" in r.headers.get("content-type", ""):
            pages += 1
            assert "call +1 555 0100" not in r.text, route.path
    assert pages >= 10


def test_a_huge_search_stays_a_small_page(engine: Engine) -> None:
    client = login(engine, "ada", "curator-pass-1")
    for path in ("/queue", "/api/v1/candidates"):
        r = client.get(path, params={"q": "biodiversity " * 3000, "country": "K" * 20_000})
        assert r.status_code == 200 and len(r.content) < 100_000, (path, len(r.content))


# --- SSRF through the registry (the only way sources are added) ----------------------------------

BLOCKED_SOURCES = [
    "http://127.0.0.1:6379/",
    "http://localhost/feed",
    "http://10.0.0.8/",
    "http://169.254.169.254/",
    "http://[::ffff:127.0.0.1]/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://100.64.1.1/",
    "http://[::1]/",
]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/x",
        "gopher://127.0.0.1:6379/_INFO",
        "data:text/html,x",
        "javascript:alert(1)",
    ],
)
def test_sources_check_refuses_non_http_source_urls(registry: Path, url: str) -> None:
    from click.testing import CliRunner

    from harvester.cli import cli

    (registry / "probe.yaml").write_text(
        textwrap.dedent(f"""\
        id: probe
        name: probe
        kind: api
        verified: false
        verification: ssrf probe
        start_urls: ["{url}"]
        """),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["sources", "check"])
    assert result.exit_code != 0
    assert "probe.yaml" in result.output and "only http and https" in result.output


def test_the_app_has_no_route_to_add_sources() -> None:
    assert not [r for r in ROUTES if r.method == "POST" and "source" in r.path]


@pytest.mark.slow
def test_ssrf_guard_refuses_private_source_urls_unless_allowed(registry: Path) -> None:
    from tests.recorded_server import RecordedServer

    with RecordedServer(lambda path: (200, {"Content-Type": "application/json"}, b"[]")) as canary:
        urls = [*BLOCKED_SOURCES, f"{canary.url}/api"]
        for i, url in enumerate(urls):
            (registry / f"probe_{i}.yaml").write_text(
                textwrap.dedent(f"""\
                id: probe_{i}
                name: probe {i}
                kind: api
                verified: false
                verification: ssrf probe
                start_urls: ["{url}"]
                """),
                encoding="utf-8",
            )
        env = {
            "HARVESTER_REGISTRY_DIR": str(registry),
            "HARVESTER_ALLOW_PRIVATE_HOSTS": "0",
            "HARVESTER_DOWNLOAD_TIMEOUT": "2",
        }
        import os

        blocked = subprocess.run(
            [sys.executable, "-m", "harvester.crawl", "--quiet", *(f"probe_{i}" for i in range(len(urls)))],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            cwd=PROJECT_ROOT,
        )
        assert blocked.returncode == 0, blocked.stderr[-2000:]
        assert canary.requests == []
        from storage.db import session_factory
        from storage.models import FetchedPage

        with session_factory()() as session:
            errors = {p.source_id: p.error or "" for p in session.scalars(select(FetchedPage))}
        assert len(errors) == len(urls)
        assert all("blocked: ssrf" in e for e in errors.values()), errors

        allowed = subprocess.run(
            [sys.executable, "-m", "harvester.crawl", "--quiet", f"probe_{len(urls) - 1}"],
            env={**os.environ, **env, "HARVESTER_ALLOW_PRIVATE_HOSTS": "1"},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            cwd=PROJECT_ROOT,
        )
        assert allowed.returncode == 0, allowed.stderr[-2000:]
        assert canary.served("/api") == ["/api"]


# --- static analysis -----------------------------------------------------------------------------

# Every bandit finding left after bandit.yaml's skips, with why it is not a vulnerability. A new
# finding fails the test until it is fixed or justified here; a justification that no longer
# matches a finding fails too, so the table cannot rot.
BANDIT_JUSTIFIED: dict[tuple[str, str], str] = {
    ("harvester/chm/client.py", "B310"): "urlopen of the operator-configured KM API base URL (settings), never of "
    "harvested data",
    ("harvester/health/notify.py", "B310"): "urlopen of the operator-configured alert webhook URL (settings)",
    ("harvester/crawl/runner.py", "B404"): "subprocess runs the crawl child: sys.executable with our own argument list",
    ("harvester/crawl/runner.py", "B603"): "no shell; the argument list is sys.executable, a module name, options and "
    "source ids, each one argv element",
    ("harvester/web/routes_chm.py", "B107"): "the empty default is the CSRF token form field, not a password",
    ("harvester/web/routes_ops.py", "B107"): "the empty default is the CSRF token form field, not a password",
    ("harvester/web/routes_pages.py", "B107"): "the empty default is the CSRF token form field, not a password",
    ("harvester/web/routes_second_review.py", "B107"): "the empty default is the CSRF token form field, not a password",
    ("storage/second_review.py", "B311"): "random sample of decisions for a blind second review (seedable for "
    "tests); nothing secret depends on it",
    ("harvester/crawl/source_new.py", "B310"): "urlopen of the URL the operator gives `sources new`, http(s) only, "
    "after the SSRF guard's check_url",
    ("storage/audit.py", "B311"): "random sample of filtered candidates for the recall audit (seedable); nothing "
    "secret depends on it",
    ("storage/backup.py", "B404"): "subprocess runs pg_dump / pg_restore for `harvester db backup|restore`",
    ("storage/backup.py", "B603"): "no shell; the tool's absolute path, fixed options, the operator's database URL "
    "and backup file, each one argv element",
    ("storage/search.py", "B608"): "full-text index DDL assembled from module constants (table and column names); "
    "no request or harvested value reaches it",
}


def test_bandit_findings_are_all_justified() -> None:
    import json

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-q",
            "-c",
            "bandit.yaml",
            "-r",
            "harvester",
            "spiders",
            "pipelines",
            "schedules",
            "storage",
            "-f",
            "json",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    assert report["errors"] == []
    found = {(r["filename"].removeprefix("./"), r["test_id"]) for r in report["results"]}
    unjustified = sorted(found - BANDIT_JUSTIFIED.keys())
    assert unjustified == [], "fix these or justify them in BANDIT_JUSTIFIED: " + "; ".join(
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
        for r in report["results"]
        if (r["filename"].removeprefix("./"), r["test_id"]) in unjustified
    )
    assert sorted(BANDIT_JUSTIFIED.keys() - found) == [], "stale bandit justifications"
