"""The review app's guards against accidents and odd input, through its real routes: no decision without a
deliberate action, what was done shown with a one-click undo that carries the version it saw, ids and edits
of the wrong size or type, huge filters, error pages for browsers, notices only the app issued, headers,
HEAD, and dashboard charts drawn once per data state."""

from __future__ import annotations

import copy
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlalchemy import Engine, select

from harvester.items import CandidateItem
from harvester.web.app import create_app
from harvester.web.auth import add_user
from harvester.web.deps import MAX_ID
from pipelines.store import candidate_values
from storage.db import transaction
from storage.models import Candidate, Decision
from storage.queue import upsert_candidate
from storage.runs import ensure_source

BIG_ID = 2**63
TOO_BIG = MAX_ID + 1  # PostgreSQL's INTEGER ends here (SQLite's at 2^63)
HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def engine(db_engine: Engine, gcf_items: list[CandidateItem]) -> Engine:
    with transaction(db_engine) as session:
        for item in copy.deepcopy(gcf_items[:12]):
            ensure_source(session, item.source_id, item.source_id, "api", True, True, "h")
            upsert_candidate(
                session,
                source_id=item.source_id,
                url=item.canonical_url or item.url,
                record_hash=item.record_hash or "h",
                run_id=None,
                initial_status="pending",
                values=candidate_values(item),
            )
        add_user(session, "ada", "curator", "curator-pass-1")
        add_user(session, "bob", "curator", "curator-pass-2")
        add_user(session, "root", "admin", "admin-pass-12")
    return db_engine


def client_for(engine: Engine, name: str, password: str) -> TestClient:
    client = TestClient(create_app(engine), follow_redirects=False)
    assert client.post("/login", data={"name": name, "password": password}).status_code == 303
    return client


@pytest.fixture
def ada(engine: Engine) -> TestClient:
    return client_for(engine, "ada", "curator-pass-1")


def ranked_ids(engine: Engine) -> list[int]:
    with transaction(engine) as session:
        return list(session.scalars(select(Candidate.id).order_by(Candidate.score.desc(), Candidate.id)))


def state(engine: Engine, cid: int) -> tuple[str, int, list[tuple[str, str, str | None]]]:
    with transaction(engine) as session:
        row = session.get(Candidate, cid)
        assert row is not None
        trail = [
            (d.actor, d.to_status, d.reason_code)
            for d in session.scalars(select(Decision).where(Decision.candidate_id == cid).order_by(Decision.id))
        ]
        return row.status, row.version_id, trail


def form_fields(page: str, selector: str) -> dict[str, str]:
    form = lxml_html.fromstring(page).cssselect(selector)[0]
    return {i.get("name"): i.get("value") or "" for i in form.cssselect("input[type=hidden]")}


def decide(client: TestClient, cid: int, **data: str) -> str:
    """Decide from the candidate page as a browser would; the page it lands on (redirects followed)."""
    fields = form_fields(client.get(f"/candidates/{cid}").text, "#decision-form")
    r = client.post(f"/candidates/{cid}/decide", data={**fields, **data})
    while r.status_code == 303:
        location = r.headers["location"]
        r = client.get(location)
    return location


# ---- 1. no accidental decisions, and what was done with a one-click undo -----------------------------


def test_enter_in_the_decision_form_hits_a_disabled_button_first(ada: TestClient, engine: Engine) -> None:
    """A browser submits a form on Enter with its first submit button; a disabled one means no submission."""
    form = lxml_html.fromstring(ada.get(f"/candidates/{ranked_ids(engine)[0]}").text).cssselect("#decision-form")[0]
    buttons = [
        b
        for b in form.iter("button", "input")
        if (b.get("type") or "submit") == "submit" and (b.tag == "button" or b.get("type") == "submit")
    ]
    assert buttons[0].get("disabled") is not None and buttons[0].get("value") is None
    assert [b.get("value") for b in buttons[1:]] == ["accept", "reject", "defer", "note", "undo"]


def test_a_post_without_a_chosen_action_decides_nothing(ada: TestClient, engine: Engine) -> None:
    cid = ranked_ids(engine)[0]
    before = state(engine, cid)
    location = decide(ada, cid, note="typed and pressed Enter", reason="duplicate")
    assert "unknown action" in ada.get(location).text
    assert state(engine, cid) == before


def test_after_a_decision_the_next_page_says_what_was_done_and_undoes_it(ada: TestClient, engine: Engine) -> None:
    first, second = ranked_ids(engine)[:2]
    location = decide(ada, first, action="reject", reason="not_international")
    assert urlsplit(location).path == f"/candidates/{second}"
    page = ada.get(location).text
    done = lxml_html.fromstring(page).cssselect("#done")[0]
    assert re.sub(r"\s+", " ", done.text_content()).strip().startswith(f"Rejected #{first} ")
    assert "as not_international" in done.text_content()
    status, version, _ = state(engine, first)
    assert (status, form_fields(page, "#done form")["version"]) == ("rejected", str(version))
    r = ada.post(f"/candidates/{first}/decide", data={**form_fields(page, "#done form"), "action": "undo"})
    assert urlsplit(r.headers["location"]).path == f"/candidates/{first}"
    assert state(engine, first)[0] == "pending"
    assert [t[1:] for t in state(engine, first)[2]] == [("rejected", "not_international"), ("pending", "undo")]
    undone = lxml_html.fromstring(ada.get(r.headers["location"]).text).cssselect("#done")[0]
    assert re.sub(r"\s+", " ", undone.text_content()).strip().startswith(f"Undid the last decision on #{first} ")


def test_the_done_notice_shows_only_the_curators_own_decisions(engine: Engine, ada: TestClient) -> None:
    cid = ranked_ids(engine)[0]
    location = decide(ada, cid, action="accept")
    done = parse_qs(urlsplit(location).query)["done"][0]
    bob = client_for(engine, "bob", "curator-pass-2")
    assert 'id="done"' not in bob.get(f"/queue?done={done}").text
    assert 'id="done"' in ada.get(f"/queue?done={done}").text


# ---- 2. a stale undo is a conflict ----------------------------------------------------------------------


def test_a_stale_undo_is_a_conflict_and_never_reverts_a_newer_decision(engine: Engine, ada: TestClient) -> None:
    cid = ranked_ids(engine)[0]
    page = ada.get(decide(ada, cid, action="accept")).text
    stale_undo = form_fields(page, "#done form")
    bob = client_for(engine, "bob", "curator-pass-2")
    decide(bob, cid, action="reject", reason="duplicate")
    before = state(engine, cid)
    r = ada.post(f"/candidates/{cid}/decide", data={**stale_undo, "action": "undo"})
    message = lxml_html.fromstring(ada.get(r.headers["location"]).text).cssselect("p.error")[0].text_content()
    assert "was changed by someone else" in message and "nothing was changed" in message
    assert state(engine, cid) == before
    assert [t[:2] for t in before[2]] == [("ada", "accepted"), ("bob", "rejected")]
    # Ada's notice no longer offers the undo; the API's undo conflicts the same way.
    assert 'id="undo-done"' not in ada.get(f"/queue?done={parse_qs(urlsplit(r.headers['location']).query)}").text
    csrf = ada.get("/api/v1/me").json()["csrf_token"]
    api = ada.post(
        f"/api/v1/candidates/{cid}/decisions",
        json={"action": "undo", "version": before[1] - 1},
        headers={"x-csrf-token": csrf},
    )
    assert api.status_code == 409 and "changed by someone else" in api.json()["detail"]
    assert state(engine, cid) == before
    fresh = ada.post(
        f"/api/v1/candidates/{cid}/decisions",
        json={"action": "undo", "version": before[1]},
        headers={"x-csrf-token": csrf},
    )
    assert fresh.status_code == 201 and state(engine, cid)[0] == "accepted"


# ---- 6. odd input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/candidates/{BIG_ID}",
        f"/api/v1/candidates/{BIG_ID}",
        f"/candidates/{BIG_ID}/snapshot",
        f"/candidates/{10**30}",
        "/candidates/-1",
        f"/audit?before={BIG_ID}",
        f"/candidates/{TOO_BIG}",
        f"/api/v1/candidates/{TOO_BIG}",
        f"/history?before={TOO_BIG}",
        f"/queue/next?from={TOO_BIG}",
    ],
)
def test_an_id_beyond_the_database_range_is_a_422(ada: TestClient, path: str) -> None:
    assert ada.get(path).status_code == 422


def test_the_largest_id_is_a_plain_not_found(ada: TestClient) -> None:
    assert ada.get(f"/candidates/{MAX_ID}").status_code == 404
    assert ada.get(f"/api/v1/candidates/{MAX_ID}").status_code == 404
    assert ada.get(f"/audit?candidate={TOO_BIG}").status_code == 400
    assert ada.get(f"/queue?done={TOO_BIG}").status_code == 200  # an odd done notice is simply not shown
    r = ada.post(f"/candidates/{BIG_ID}/decide", data={"action": "accept"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    "edits",
    [
        {"countries": 5},
        {"title": {}},
        {"organisations": [1, 2]},
        {"summary": 3.5},
        {"published": ["2020"]},
        {"countries": [{"iso": "KE"}]},
        {"title": "x" * 100_001},
        {"status": "accepted"},
    ],
)
def test_api_edits_of_the_wrong_type_are_a_422_and_change_nothing(
    ada: TestClient, engine: Engine, edits: dict[str, object]
) -> None:
    cid = ranked_ids(engine)[0]
    before = state(engine, cid)
    csrf = ada.get("/api/v1/me").json()["csrf_token"]
    r = ada.post(
        f"/api/v1/candidates/{cid}/decisions", json={"action": "accept", "edits": edits}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 422, r.text
    assert state(engine, cid) == before


def test_api_edits_of_the_right_types_are_applied(ada: TestClient, engine: Engine) -> None:
    cid = ranked_ids(engine)[0]
    csrf = ada.get("/api/v1/me").json()["csrf_token"]
    r = ada.post(
        f"/api/v1/candidates/{cid}/decisions",
        headers={"x-csrf-token": csrf},
        json={
            "action": "accept",
            "edits": {"countries": ["ke", "TZ"], "organisations": "UNEP; GEF", "title": "New title"},
        },
    )
    assert r.status_code == 201, r.text
    with transaction(engine) as session:
        row = session.get(Candidate, cid)
        assert row is not None
        assert (row.countries, row.organisations, row.title) == (["KE", "TZ"], ["UNEP", "GEF"], "New title")


def test_a_60_kb_search_is_capped_not_echoed_into_every_link(ada: TestClient) -> None:
    huge = "biodiversity " * 5000
    r = ada.get("/queue", params={"q": huge, "status": ""})
    assert r.status_code == 200
    assert len(r.content) < 60_000
    shown = lxml_html.fromstring(r.text).cssselect("form.filters input[name=q]")[0].get("value")
    assert shown == huge[:200]
    api = ada.get("/api/v1/candidates", params={"q": huge})
    assert api.status_code == 200 and len(api.content) < 60_000


def test_browsers_get_error_pages_in_html_and_the_api_keeps_json(ada: TestClient) -> None:
    for path, status, title in [
        ("/candidates/abc", 422, "Not a valid request"),
        ("/no-such-page", 404, "Not found"),
        (f"/candidates/{MAX_ID}", 404, "Not found"),
        ("/audit?since=someday", 400, "Bad request"),
    ]:
        r = ada.get(path, headers=HTML)
        assert r.status_code == status, path
        assert r.headers["content-type"].startswith("text/html"), path
        assert lxml_html.fromstring(r.text).cssselect("h1")[0].text_content().startswith(title)
        assert "script-src 'self'" in r.headers["content-security-policy"]
    r = ada.get('/candidates/"><img src=x onerror=alert(1)>', headers=HTML)
    assert r.status_code == 422 and "<img" not in r.text
    api = ada.get("/api/v1/candidates/abc", headers=HTML)
    assert api.status_code == 422 and api.headers["content-type"] == "application/json"


def test_message_shows_only_notices_the_app_issued_to_this_session(engine: Engine, ada: TestClient) -> None:
    phishing = "Your session expired: re-enter your password at https://evil.example/login"
    for path in ("/queue", f"/candidates/{ranked_ids(engine)[0]}"):
        for query in ({"message": phishing}, {"message": phishing, "sig": "0" * 64}):
            assert "evil.example" not in ada.get(path, params=query).text
    root = client_for(engine, "root", "admin-pass-12")
    for path in ("/admin/users", "/admin/quarantine"):
        assert "evil.example" not in root.get(path, params={"message": phishing}).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', root.get("/admin/users").text)
    assert csrf
    r = root.post("/admin/users", data={"name": "cyd", "role": "curator", "password": "short", "csrf_token": csrf[1]})
    issued = r.headers["location"]
    assert "password must have at least 10 characters" in root.get(issued).text
    # The same signed notice means nothing in another session, and an altered text loses its signature.
    other = client_for(engine, "root", "admin-pass-12")
    assert "password must have at least" not in other.get(issued).text
    altered = issued.replace("password", "passphrase")
    assert "passphrase" not in root.get(altered).text


# ---- 7. headers, HEAD, charts ------------------------------------------------------------------------------


def test_head_is_answered_like_get_without_a_body(ada: TestClient, engine: Engine) -> None:
    for path in ("/queue", f"/candidates/{ranked_ids(engine)[0]}", "/dashboard", "/api/v1/candidates", "/login"):
        get, head = ada.get(path), ada.head(path)
        assert (head.status_code, head.content) == (get.status_code, b""), path
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["permissions-policy"] == get.headers["permissions-policy"]
    assert ada.head("/charts/queue-history.svg").status_code == 200


def test_every_answer_but_static_files_is_no_store_with_a_permissions_policy(ada: TestClient) -> None:
    for path in (
        "/dashboard",
        "/sources",
        "/runs",
        "/classification",
        "/charts/queue-history.svg",
        "/login",
        "/api/v1/me",
        "/no-such-page",
    ):
        r = ada.get(path)
        assert r.headers["cache-control"] == "no-store", path
        assert "camera=()" in r.headers["permissions-policy"] and "geolocation=()" in r.headers["permissions-policy"]
    assert "no-store" not in ada.get("/static/app.css").headers.get("cache-control", "")


def test_dashboard_charts_are_drawn_once_per_decision_state(
    ada: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harvester.charts import queries as q

    built: list[str] = []
    for name, build in list(q.DASHBOARD.items()):

        def counting(session: object, _build: object = build, _name: str = name) -> object:
            built.append(_name)
            return _build(session)  # type: ignore[operator]

        monkeypatch.setitem(q.DASHBOARD, name, counting)
    assert ada.get("/dashboard").status_code == 200
    assert sorted(built) == sorted(q.DASHBOARD)
    svg = ada.get("/charts/acceptance-rate.svg").content
    assert ada.get("/dashboard").status_code == 200 and ada.get("/charts/acceptance-rate.svg").content == svg
    assert len(built) == len(q.DASHBOARD)  # nothing changed: nothing redrawn
    decide(ada, ranked_ids(engine)[0], action="accept")
    assert ada.get("/dashboard").status_code == 200
    assert len(built) == 2 * len(q.DASHBOARD)  # a decision: every chart drawn again, once
    assert ada.get("/charts/acceptance-rate.svg").content != svg
