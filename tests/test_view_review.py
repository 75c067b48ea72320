"""The review app through its real routes: login, queue filters, decisions, conflicts, CSRF, roles, XSS."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from harvester.fixtures import load_capture
from harvester.items import CandidateItem
from harvester.offline import candidates_from_response
from harvester.registry import load_registry
from harvester.stages import apply_hashes
from harvester.warc import RecordedResponse
from harvester.web.app import create_app
from harvester.web.auth import add_user
from pipelines.store import candidate_values
from storage.db import transaction
from storage.models import Candidate, Decision
from storage.queue import upsert_candidate
from storage.runs import ensure_source

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def store(engine: Engine, items: list[CandidateItem], status: str = "pending") -> None:
    with transaction(engine) as session:
        for item in items:
            ensure_source(session, item.source_id, item.source_id, "api", True, True, "h")
            upsert_candidate(session, source_id=item.source_id, url=item.canonical_url or item.url,
                             record_hash=item.record_hash or "h", run_id=None, initial_status=status,
                             values=candidate_values(item))


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    spec = load_registry()["gcf_projects"]
    capture = load_capture(spec.replay[0].fixture)
    items = candidates_from_response(spec, RecordedResponse(capture.url, 200, capture.headers(), capture.body)).items
    hostile = CandidateItem("hostile_site", "https://example.org/x", "https://example.org/x", title=XSS,
                            summary=XSS, text=f"Training on {XSS} protected areas", organisations=[XSS])
    apply_hashes(hostile)
    store(db_engine, [*items[:60], hostile])
    with transaction(db_engine) as session:
        add_user(session, "ada", "curator", "curator-pass-1")
        add_user(session, "root", "admin", "admin-pass-12")
    return db_engine


def client_for(engine: Engine, name: str | None = None, password: str | None = None) -> TestClient:
    client = TestClient(create_app(engine), follow_redirects=False)
    if name:
        r = client.post("/login", data={"name": name, "password": password, "next": "/queue"})
        assert r.status_code == 303, r.text
    return client


@pytest.fixture
def curator(engine: Engine) -> Iterator[TestClient]:
    with client_for(engine, "ada", "curator-pass-1") as client:
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def first_candidate_id(engine: Engine, source: str = "gcf_projects") -> int:
    with transaction(engine) as session:
        return session.scalars(select(Candidate.id).where(Candidate.source_id == source).order_by(Candidate.id)).first()


def test_pages_need_login_and_api_answers_401(engine: Engine) -> None:
    client = client_for(engine)
    assert client.get("/queue").headers["location"] == "/login?next=/queue"
    assert client.get("/api/v1/candidates").status_code == 401


def test_wrong_password_is_refused_and_throttled(engine: Engine) -> None:
    client = client_for(engine)
    for _ in range(5):
        assert client.post("/login", data={"name": "ada", "password": "nope"}).status_code == 401
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1"})
    assert r.status_code == 401
    assert "too many failed logins" in r.text


def test_session_cookie_is_httponly_and_samesite(engine: Engine) -> None:
    client = client_for(engine)
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1"})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_open_redirect_after_login_is_refused(engine: Engine) -> None:
    client = client_for(engine)
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1", "next": "https://evil.example/"})
    assert r.headers["location"] == "/queue"


def test_queue_filters_combine_and_stay_in_the_url(curator: TestClient) -> None:
    r = curator.get("/queue", params={"status": "pending", "source": "gcf_projects", "country": "PE"})
    assert r.status_code == 200
    assert "Building the Resilience of Wetlands in the Province of Datem del Marañón, Peru" in r.text
    assert 'value="PE"' in r.text
    data = curator.get("/api/v1/candidates", params={"source": "gcf_projects", "country": "PE"}).json()
    assert data["total"] >= 1 and all("PE" in c["countries"] for c in data["items"])


def test_accept_with_an_edit_is_audited_with_the_field_diff(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    page = curator.get(f"/candidates/{cid}").text
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    r = curator.post(f"/candidates/{cid}/decide", data={"csrf_token": csrf_of(page), "action": "accept",
                                                         "version": version, "title": "Wetlands resilience, Peru"})
    assert r.status_code == 303
    with transaction(engine) as session:
        row = session.get(Candidate, cid)
        decision = session.scalars(select(Decision).where(Decision.candidate_id == cid)).one()
        assert (row.status, row.title, decision.actor, decision.to_status) == (
            "accepted", "Wetlands resilience, Peru", "ada", "accepted")
        assert decision.field_diff["title"]["to"] == "Wetlands resilience, Peru"


def test_reject_needs_a_reason_and_undo_restores(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    assert curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "reject"}, headers=headers
                        ).status_code == 400
    assert curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "reject", "reason": "inactive"},
                        headers=headers).json()["status"] == "rejected"
    assert curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "undo"}, headers=headers
                        ).json()["status"] == "pending"
    with transaction(engine) as session:
        assert [d.reason_code for d in session.scalars(select(Decision).order_by(Decision.id))] == ["inactive", "undo"]


def test_csrf_missing_or_cross_site_is_refused(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    assert curator.post(f"/candidates/{cid}/decide", data={"action": "defer"}).status_code == 403
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    r = curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "defer"},
                     headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert r.status_code == 403
    with transaction(engine) as session:
        assert session.get(Candidate, cid).status == "pending"


def test_mass_assignment_in_the_api_is_refused(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    r = curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "note", "status": "accepted"},
                     headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422


def test_two_curators_deciding_the_same_version_get_a_conflict_not_a_lost_update(engine: Engine) -> None:
    cid = first_candidate_id(engine)
    with client_for(engine, "ada", "curator-pass-1") as ada, client_for(engine, "root", "admin-pass-12") as root:
        version = ada.get(f"/api/v1/candidates/{cid}").json()["version"]
        assert root.get(f"/api/v1/candidates/{cid}").json()["version"] == version
        first = ada.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "accept", "version": version},
                         headers={"X-CSRF-Token": ada.get("/api/v1/me").json()["csrf_token"]})
        second = root.post(f"/api/v1/candidates/{cid}/decisions",
                           json={"action": "reject", "reason": "other", "version": version},
                           headers={"X-CSRF-Token": root.get("/api/v1/me").json()["csrf_token"]})
    assert first.status_code == 201
    assert second.status_code == 409
    assert "changed by someone else" in second.json()["detail"]
    with transaction(engine) as session:
        assert session.get(Candidate, cid).status == "accepted"


def test_curator_cannot_reach_admin_pages(curator: TestClient) -> None:
    assert curator.get("/admin/users").status_code == 403
    r = curator.post("/admin/users", data={"name": "eve", "role": "admin", "password": "x" * 12,
                                           "csrf_token": curator.get("/api/v1/me").json()["csrf_token"]})
    assert r.status_code == 403


def test_harvested_markup_is_escaped_everywhere(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine, "hostile_site")
    for path in ("/queue?source=hostile_site&status=pending", f"/candidates/{cid}"):
        html = curator.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert" in html


def test_every_html_response_carries_a_strict_csp(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    for path in ("/queue", f"/candidates/{cid}", "/audit", "/runs", "/sources", "/login"):
        r = curator.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "object-src 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in r.text


def test_logout_revokes_the_session(engine: Engine) -> None:
    client = client_for(engine, "ada", "curator-pass-1")
    cookie = client.cookies.get("chm_session")
    csrf = client.get("/api/v1/me").json()["csrf_token"]
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    stale = TestClient(create_app(engine), follow_redirects=False)
    stale.cookies.set("chm_session", cookie)
    assert stale.get("/api/v1/me").status_code == 401


def test_audit_csv_neutralises_formulas(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "note", "note": "=HYPERLINK(\"x\")"},
                 headers={"X-CSRF-Token": csrf})
    assert "'=HYPERLINK" in curator.get("/audit.csv").text


def test_decide_cli_is_audited_like_the_app(engine: Engine, harvester_env: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from harvester.cli import cli

    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("HARVESTER_DATABASE_URL", url)
    from harvester.settings import get_settings
    from storage.db import dispose_engines

    get_settings.cache_clear()
    dispose_engines()
    cid = first_candidate_id(engine)
    result = CliRunner().invoke(cli, ["decide", str(cid), "--reject", "not_international", "--as", "ada"])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(cli, ["decide", "999999", "--defer"])
    assert bad.exit_code == 1 and "no candidate 999999" in bad.output
    with transaction(engine) as session:
        decision = session.scalars(select(Decision)).one()
        assert (decision.actor, decision.reason_code) == ("ada", "not_international")
        assert decision.user_id is not None
    dispose_engines()


@pytest.mark.slow
def test_raw_snapshot_is_served_sanitised_for_a_sandboxed_frame(harvester_env: Path) -> None:
    from harvester.replay_build import build_replay
    from harvester.settings import get_settings
    from storage.db import upgrade
    from tests.conftest import run_crawl

    replay = get_settings().replay_cache_dir
    build_replay([load_registry()["elsa_undp"]], replay)
    upgrade()
    assert run_crawl("elsa_undp", replay=replay).returncode == 0
    with transaction() as session:
        add_user(session, "ada", "curator", "curator-pass-1")
        cid = session.scalars(select(Candidate.id).where(Candidate.url.like("%/fr/articles/elsaR.html"))).one()
    with TestClient(create_app(), follow_redirects=False) as client:
        client.post("/login", data={"name": "ada", "password": "curator-pass-1"})
        assert 'iframe class="snapshot" sandbox' in client.get(f"/candidates/{cid}").text
        r = client.get(f"/candidates/{cid}/snapshot")
    assert r.status_code == 200
    assert "sandbox" in r.headers["content-security-policy"]
    assert "Un Exemple de Flux de Travail ELSA" in r.text
    assert "<script" not in r.text.lower() and "onerror" not in r.text.lower()
