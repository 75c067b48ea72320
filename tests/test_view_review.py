"""The review app through its real routes: login, queue filters, decisions, conflicts, CSRF, roles, XSS."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from harvester.items import CandidateItem
from harvester.registry import load_registry
from harvester.stages import apply_hashes
from harvester.web.app import create_app
from harvester.web.auth import add_user
from pipelines.store import candidate_values
from storage.db import transaction
from storage.models import Candidate, Decision, RunStatus
from storage.queue import upsert_candidate
from storage.runs import ensure_source, finish_run, start_run

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def store(engine: Engine, items: list[CandidateItem], status: str = "pending") -> None:
    with transaction(engine) as session:
        for item in items:
            ensure_source(session, item.source_id, item.source_id, "api", True, True, "h")
            upsert_candidate(
                session,
                source_id=item.source_id,
                url=item.canonical_url or item.url,
                record_hash=item.record_hash or "h",
                run_id=None,
                initial_status=status,
                values=candidate_values(item),
            )


@pytest.fixture
def engine(db_engine: Engine, gcf_items: list[CandidateItem]) -> Engine:
    items = copy.deepcopy(gcf_items[:60])
    hostile = CandidateItem(
        "hostile_site",
        "https://example.org/x",
        "https://example.org/x",
        title=XSS,
        summary=XSS,
        text=f"Training on {XSS} protected areas",
        organisations=[XSS],
    )
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
    for _ in range(3):
        assert client.post("/login", data={"name": "ada", "password": "nope"}).status_code == 401
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1"})
    assert r.status_code == 429
    assert "too many failed logins for this account from here" in r.text
    assert r.headers["retry-after"] == "1"


def test_session_cookie_is_httponly_and_samesite(engine: Engine) -> None:
    client = client_for(engine)
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1"})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_open_redirect_after_login_is_refused(engine: Engine) -> None:
    client = client_for(engine)
    r = client.post("/login", data={"name": "ada", "password": "curator-pass-1", "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] in ("/queue", "/dashboard")  # the landing page, same site


def test_queue_filters_combine_and_stay_in_the_url(curator: TestClient) -> None:
    r = curator.get("/queue", params={"status": "pending", "source": "gcf_projects", "country": "PE"})
    assert r.status_code == 200
    assert "Building the Resilience of Wetlands in the Province of Datem del Marañón, Peru" in r.text
    assert 'value="PE"' in r.text
    data = curator.get("/api/v1/candidates", params={"source": "gcf_projects", "country": "PE"}).json()
    assert data["count"] >= 1 and all("PE" in c["countries"] for c in data["items"])


def test_accept_with_an_edit_is_audited_with_the_field_diff(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    page = curator.get(f"/candidates/{cid}").text
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    r = curator.post(
        f"/candidates/{cid}/decide",
        data={
            "csrf_token": csrf_of(page),
            "action": "accept",
            "version": version,
            "title": "Wetlands resilience, Peru",
        },
    )
    assert r.status_code == 303
    with transaction(engine) as session:
        row = session.get(Candidate, cid)
        decision = session.scalars(select(Decision).where(Decision.candidate_id == cid)).one()
        assert (row.status, row.title, decision.actor, decision.to_status) == (
            "accepted",
            "Wetlands resilience, Peru",
            "ada",
            "accepted",
        )
        assert decision.field_diff["title"]["to"] == "Wetlands resilience, Peru"


def test_reject_needs_a_reason_and_undo_restores(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    assert (
        curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "reject"}, headers=headers).status_code
        == 400
    )
    assert (
        curator.post(
            f"/api/v1/candidates/{cid}/decisions", json={"action": "reject", "reason": "inactive"}, headers=headers
        ).json()["status"]
        == "rejected"
    )
    assert (
        curator.post(f"/api/v1/candidates/{cid}/decisions", json={"action": "undo"}, headers=headers).json()["status"]
        == "pending"
    )
    with transaction(engine) as session:
        assert [d.reason_code for d in session.scalars(select(Decision).order_by(Decision.id))] == ["inactive", "undo"]


def test_csrf_missing_or_cross_site_is_refused(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    assert curator.post(f"/candidates/{cid}/decide", data={"action": "defer"}).status_code == 403
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    r = curator.post(
        f"/api/v1/candidates/{cid}/decisions",
        json={"action": "defer"},
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    with transaction(engine) as session:
        assert session.get(Candidate, cid).status == "pending"


def test_mass_assignment_in_the_api_is_refused(curator: TestClient, engine: Engine) -> None:
    cid = first_candidate_id(engine)
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    r = curator.post(
        f"/api/v1/candidates/{cid}/decisions",
        json={"action": "note", "status": "accepted"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422


def test_two_curators_deciding_the_same_version_get_a_conflict_not_a_lost_update(engine: Engine) -> None:
    cid = first_candidate_id(engine)
    with client_for(engine, "ada", "curator-pass-1") as ada, client_for(engine, "root", "admin-pass-12") as root:
        version = ada.get(f"/api/v1/candidates/{cid}").json()["version"]
        assert root.get(f"/api/v1/candidates/{cid}").json()["version"] == version
        first = ada.post(
            f"/api/v1/candidates/{cid}/decisions",
            json={"action": "accept", "version": version},
            headers={"X-CSRF-Token": ada.get("/api/v1/me").json()["csrf_token"]},
        )
        second = root.post(
            f"/api/v1/candidates/{cid}/decisions",
            json={"action": "reject", "reason": "other", "version": version},
            headers={"X-CSRF-Token": root.get("/api/v1/me").json()["csrf_token"]},
        )
    assert first.status_code == 201
    assert second.status_code == 409
    assert "changed by someone else" in second.json()["detail"]
    with transaction(engine) as session:
        assert session.get(Candidate, cid).status == "accepted"


def test_curator_cannot_reach_admin_pages(curator: TestClient) -> None:
    assert curator.get("/admin/users").status_code == 403
    r = curator.post(
        "/admin/users",
        data={
            "name": "eve",
            "role": "admin",
            "password": "x" * 12,
            "csrf_token": curator.get("/api/v1/me").json()["csrf_token"],
        },
    )
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
    curator.post(
        f"/api/v1/candidates/{cid}/decisions",
        json={"action": "note", "note": '=HYPERLINK("x")'},
        headers={"X-CSRF-Token": csrf},
    )
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
    from harvester.recordings.replay_build import build_replay
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


def test_queue_and_api_page_by_cursor_through_the_whole_filter(curator: TestClient, engine: Engine) -> None:
    with transaction(engine) as session:
        expected = [
            r.id
            for r in sorted(
                session.execute(
                    select(Candidate.id, Candidate.score).where(Candidate.source_id == "gcf_projects")
                ).all(),
                key=lambda r: (r.score is None, -(r.score or 0), r.id),
            )
        ]
    seen, params = [], {"source": "gcf_projects", "limit": "7"}
    while True:
        data = curator.get("/api/v1/candidates", params=params).json()
        seen += [c["id"] for c in data["items"]]
        if not data["next_cursor"]:
            break
        params["after"] = data["next_cursor"]
    assert seen == expected and data["count"] == 60 and data["count_capped"] is False
    html = curator.get("/queue", params={"source": "gcf_projects"}).text
    assert "60 candidates" in html
    after = re.search(r'rel="next" href="/queue\?status=pending&amp;source=gcf_projects&amp;after=([^"]+)"', html)
    second = curator.get("/queue", params={"source": "gcf_projects", "after": after.group(1)}).text
    assert f'href="/candidates/{expected[50]}?status=pending&amp;source=gcf_projects"' in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert curator.get("/queue", params={"after": "1e9_x"}).status_code == 400
    assert curator.get("/api/v1/candidates", params={"before": "drop table"}).status_code == 400


def test_queue_says_one_candidate_and_names_the_countries_it_folds(curator: TestClient, engine: Engine) -> None:
    with transaction(engine) as session:
        row = session.get(Candidate, first_candidate_id(engine, "hostile_site"))
        row.countries = ["BR", "CO", "EC", "KE", "PE", "TZ", "UG"]
    html = curator.get("/queue", params={"source": "hostile_site"}).text
    assert "1 candidate<" in html
    assert '<span class="more" title="BR, CO, EC, KE, PE, TZ, UG">+2 more</span>' in html


def test_bulk_action_confirms_the_exact_count_then_decides_the_whole_filter(
    curator: TestClient, engine: Engine
) -> None:
    csrf = curator.get("/api/v1/me").json()["csrf_token"]
    form = {"csrf_token": csrf, "status": "pending", "source": "gcf_projects", "action": "defer"}
    ask = curator.post("/queue/bulk", data=form)
    assert ask.status_code == 200 and "Defer 60 candidates?" in ask.text
    with transaction(engine) as session:
        assert session.scalar(select(Decision.id).limit(1)) is None
    confirm = dict(
        re.findall(
            r'<input type="hidden" name="(\w+)" value="([^"]*)">',
            ask.text.split('id="bulk-confirm-title"')[1].split("</form>")[0],
        )
    )
    assert confirm["confirm"] == "yes" and confirm["count"] == "60"
    other = first_candidate_id(engine)  # another curator decides one in the meantime
    with client_for(engine, "root", "admin-pass-12") as root:
        root.post(
            f"/api/v1/candidates/{other}/decisions",
            json={"action": "note", "note": "mine"},
            headers={"X-CSRF-Token": root.get("/api/v1/me").json()["csrf_token"]},
        )
    done = curator.post("/queue/bulk", data=confirm)
    assert done.status_code == 303
    message = dict(parse_qsl(done.headers["location"].split("?", 1)[1]))["message"]
    assert message == f"defer: 59 candidates decided; 1 left alone, decided since you confirmed ({other})"
    with transaction(engine) as session:
        audit = session.execute(select(Decision.candidate_id, Decision.note).where(Decision.actor == "ada")).all()
        statuses = set(
            session.scalars(
                select(Candidate.status).where(Candidate.source_id == "gcf_projects", Candidate.id != other)
            )
        )
        assert session.get(Candidate, other).status == "pending"
    assert len(audit) == 59 and {a.note for a in audit} == {"bulk action"} and statuses == {"deferred"}
    assert "reject needs a reason" in curator.post("/queue/bulk", data={**form, "action": "reject"}).text.lower()


def test_audit_page_and_csv_follow_the_same_filters(curator: TestClient, engine: Engine) -> None:
    ids = [first_candidate_id(engine), first_candidate_id(engine, "hostile_site")]
    headers = {"X-CSRF-Token": curator.get("/api/v1/me").json()["csrf_token"]}
    curator.post(f"/api/v1/candidates/{ids[0]}/decisions", json={"action": "defer", "note": "ask GCF"}, headers=headers)
    curator.post(
        f"/api/v1/candidates/{ids[1]}/decisions", json={"action": "reject", "reason": "other"}, headers=headers
    )
    page = curator.get("/audit", params={"reason": "other", "actor": "ada"}).text
    assert f'href="/candidates/{ids[1]}"' in page and f'href="/candidates/{ids[0]}"' not in page
    assert 'href="/audit.csv?actor=ada&amp;reason=other"' in page
    lines = curator.get("/audit.csv", params={"status": "deferred"}).text.splitlines()
    assert len(lines) == 2 and lines[1].split(",")[1:3] == [str(ids[0]), "ada"] and "ask GCF" in lines[1]
    assert "No decision matches" in curator.get("/audit", params={"until": "2001-01-01"}).text
    assert curator.get("/audit", params={"since": "yesterday"}).status_code == 400


def test_candidate_page_sets_duplicates_side_by_side_and_edits_dates(curator: TestClient, engine: Engine) -> None:
    with transaction(engine) as session:
        first, second = session.scalars(
            select(Candidate).where(Candidate.source_id == "gcf_projects").order_by(Candidate.id).limit(2)
        ).all()
        first.duplicate_cluster = second.duplicate_cluster = "c1"
        ids, titles = (first.id, second.id), (first.title, second.title)
    page = curator.get(f"/candidates/{ids[0]}").text
    table = page.split('class="side-by-side"')[1].split("</table>")[0]
    assert f'href="/candidates/{ids[1]}">#{ids[1]}' in table
    assert all(t.replace("\n", " ")[:40] in table.replace("\n", " ") for t in titles)
    form = {"csrf_token": csrf_of(page), "action": "accept", "start_date": "2019-03-01", "end_date": ""}
    assert curator.post(f"/candidates/{ids[0]}/decide", data=form).status_code == 303
    with transaction(engine) as session:
        assert session.get(Candidate, ids[0]).start_date == "2019-03-01"


def test_runs_page_shows_each_runs_figures(curator: TestClient, engine: Engine) -> None:
    stats = {
        "requests": 71,
        "items": 64,
        "new": 60,
        "updated": 3,
        "not_modified": 1,
        "gone": 2,
        "errors": 5,
        "duration_s": 12.5,
    }
    with transaction(engine) as session:
        ensure_source(session, "gcf_projects", "gcf_projects", "api", True, True, "h")
        run = start_run(session, "gcf_projects", "cli", replay=True)
        finish_run(session, run.id, RunStatus.FINISHED, "finished", stats)
    html = curator.get("/runs").text
    row = next(r for r in html.split("<tr>") if "gcf_projects" in r)
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == ["71", "64", "60", "3", "1", "2", "5", "12.5"]


def test_each_field_shows_where_it_came_from_and_how_it_was_read(curator: TestClient, engine: Engine) -> None:
    item = CandidateItem(
        "new_site",
        "https://example.org/a",
        "https://example.org/a",
        title="Drought plan",
        text="Kenya and Nairobi",
        countries=["KE"],
        published="2025",
        extra={"country_names": {"KE": ["Kenya", XSS]}},
    )
    item.provenance = {
        "title": "jsonld:headline",
        "countries": "inferred:text",
        "published": f"meta:{XSS}",
        "text": "trafilatura",
    }
    item.flags = {
        "title": ["title-cleaned"],
        "countries": ["country-inferred-from-text"],
        "published": ["date-year-only"],
    }
    apply_hashes(item)
    store(engine, [item])
    cid = first_candidate_id(engine, "new_site")
    html = curator.get(f"/candidates/{cid}").text
    title = re.search(r'<span class="origin" data-field="title">(.*?)</span></label>', html).group(1)
    assert "structured-data" in title and "jsonld:headline" in title and "title-cleaned" in title
    countries = re.search(r'<span class="origin" data-field="countries">(.*?)</span></label>', html).group(1)
    assert "inferred-from-text" in countries and "country-inferred-from-text" in countries
    assert "named as: KE (Kenya, &lt;script&gt;" in html and "<script>alert" not in html
    assert "meta:&lt;script&gt;" in html

    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    curator.post(
        f"/candidates/{cid}/decide",
        data={"csrf_token": csrf_of(html), "action": "accept", "version": version, "title": "Kenya drought plan"},
    )
    html = curator.get(f"/candidates/{cid}").text
    title = re.search(r'<span class="origin" data-field="title">(.*?)</span></label>', html).group(1)
    assert "curator-edited" in title and "jsonld:headline" not in title
