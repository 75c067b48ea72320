"""Curators working as a team: opening a candidate takes a short lease on it, so two curators never review
the same record unknowingly (the page and the queue say who has it open, "review next" skips it); each
curator has a session counter and a personal decision history with undo."""

from __future__ import annotations

import copy
import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlalchemy import Engine, func, select

from harvester.items import CandidateItem
from harvester.web.app import create_app
from harvester.web.auth import add_user
from pipelines.store import candidate_values
from storage.claims import LEASE, claim, holders
from storage.db import transaction
from storage.models import Candidate, CandidateClaim, Decision, User
from storage.queue import upsert_candidate
from storage.runs import ensure_source
from storage.second_review import cohen_kappa


@pytest.fixture
def engine(db_engine: Engine, gcf_items: list[CandidateItem]) -> Engine:
    with transaction(db_engine) as session:
        for item in copy.deepcopy(gcf_items[:8]):
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
    return db_engine


def client_for(engine: Engine, name: str, password: str) -> TestClient:
    client = TestClient(create_app(engine), follow_redirects=False)
    assert client.post("/login", data={"name": name, "password": password}).status_code == 303
    return client


def ranked(engine: Engine) -> list[int]:
    with transaction(engine) as session:
        return list(session.scalars(select(Candidate.id).order_by(Candidate.score.desc(), Candidate.id)))


def landed(client: TestClient, path: str) -> int:
    r = client.get(path)
    assert r.status_code == 303
    return int(urlsplit(r.headers["location"]).path.rsplit("/", 1)[1])


def expire_claims(engine: Engine) -> None:
    with transaction(engine) as session:
        for row in session.scalars(select(CandidateClaim)):
            row.expires_at = row.expires_at - LEASE


def test_two_curators_starting_the_queue_get_different_candidates(engine: Engine) -> None:
    ada, bob = client_for(engine, "ada", "curator-pass-1"), client_for(engine, "bob", "curator-pass-2")
    top = ranked(engine)
    first = landed(ada, "/queue/next")
    assert first == top[0]
    assert ada.get(f"/candidates/{first}").status_code == 200  # opening it takes the lease
    assert landed(bob, "/queue/next") == top[1]
    assert landed(ada, "/queue/next") == top[0]  # her own lease does not hide it from her
    # Bob's queue says who has the top one open; Ada's does not mark her own.
    assert "ada is reviewing" in bob.get("/queue").text
    assert "is reviewing" not in ada.get("/queue").text


def test_the_page_says_who_has_it_open_without_taking_it_over(engine: Engine) -> None:
    ada, bob = client_for(engine, "ada", "curator-pass-1"), client_for(engine, "bob", "curator-pass-2")
    cid = ranked(engine)[0]
    assert 'id="claimed"' not in ada.get(f"/candidates/{cid}").text
    banner = lxml_html.fromstring(bob.get(f"/candidates/{cid}").text).cssselect("#claimed")
    assert banner and banner[0].text_content().startswith("ada is reviewing this candidate")
    with transaction(engine) as session:
        (row,) = session.scalars(select(CandidateClaim)).all()
        assert row.user_id == session.scalar(select(User.id).where(User.name == "ada"))
    expire_claims(engine)  # ten minutes later Ada's lease has run out: Bob takes it
    assert 'id="claimed"' not in bob.get(f"/candidates/{cid}").text
    assert "bob is reviewing" in ada.get(f"/candidates/{cid}").text


def test_a_decision_releases_the_lease_and_continues_past_candidates_others_hold(engine: Engine) -> None:
    ada, bob = client_for(engine, "ada", "curator-pass-1"), client_for(engine, "bob", "curator-pass-2")
    top = ranked(engine)
    bob.get(f"/candidates/{top[1]}")  # Bob has the second one open
    page = ada.get(f"/candidates/{top[0]}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    version = re.search(r'name="version" value="(\d+)"', page)
    nxt = re.search(r'name="next" value="([^"]+)"', page)
    assert token and version and nxt
    r = ada.post(
        f"/candidates/{top[0]}/decide",
        data={"csrf_token": token[1], "version": version[1], "next": nxt[1].replace("&amp;", "&"), "action": "defer"},
    )
    assert landed(ada, r.headers["location"]) == top[2]  # the next one nobody else has open
    with transaction(engine) as session:
        assert set(holders(session, top)) == {top[1]}  # Ada's lease on the decided one is gone


def test_taking_a_lease_is_safe_when_two_curators_open_at_once(engine: Engine) -> None:
    cid = ranked(engine)[0]
    with transaction(engine) as session:
        ada, bob = (session.scalar(select(User.id).where(User.name == n)) for n in ("ada", "bob"))
        assert ada is not None and bob is not None
        assert claim(session, cid, ada) is None
        holder = claim(session, cid, bob)
        assert holder is not None and holder.name == "ada"
        assert claim(session, cid, ada) is None  # renewing one's own lease
        assert session.scalar(select(CandidateClaim.user_id).where(CandidateClaim.candidate_id == cid)) == ada


def test_the_counter_and_the_personal_history_with_undo(engine: Engine) -> None:
    ada, bob = client_for(engine, "ada", "curator-pass-1"), client_for(engine, "bob", "curator-pass-2")
    top = ranked(engine)

    def counter(client: TestClient) -> str:
        return " ".join(
            lxml_html.fromstring(client.get("/queue").text).cssselect("#progress")[0].text_content().split()
        )

    assert counter(ada).startswith(f"0 decided by you today · {len(top)} pending")
    for cid, action in ((top[0], "accept"), (top[1], "defer"), (top[0], "note")):
        page = ada.get(f"/candidates/{cid}").text
        fields = {
            k: v for k, v in re.findall(r'<input type="hidden" name="(csrf_token|version)" value="([^"]+)"', page)
        }
        r = ada.post(f"/candidates/{cid}/decide", data={**fields, "action": action, "note": "seen twice"})
        assert r.status_code == 303
    bob.post(
        f"/candidates/{top[1]}/decide",
        data={
            "csrf_token": re.findall(r'name="csrf_token" value="([^"]+)"', bob.get(f"/candidates/{top[1]}").text)[0],
            "action": "reopen",
        },
    )
    assert counter(ada).startswith(f"2 decided by you today · {len(top) - 1} pending")  # a note is no decision
    assert counter(bob).startswith("1 decided by you today")

    doc = lxml_html.fromstring(ada.get("/history").text)
    rows = doc.cssselect("table.mine tbody tr")
    assert [" ".join(r.cssselect("td")[2].text_content().split()) for r in rows] == [
        "accepted → accepted",
        "pending → deferred",
        "pending → accepted",
    ]
    # Only the latest decision on a candidate can be undone from here; Bob reopened the deferred one since.
    assert [bool(r.cssselect("button.undo")) for r in rows] == [True, False, False]
    assert rows[1].cssselect(".later")[0].text_content() == "decided again since"
    form = rows[0].cssselect("form")[0]
    data = {i.get("name"): i.get("value") for i in form.cssselect("input")} | {"action": "undo"}
    r = ada.post(form.get("action"), data=data)
    assert urlsplit(r.headers["location"]).path == f"/candidates/{top[0]}"
    with transaction(engine) as session:
        assert session.get(Candidate, top[0]).status == "accepted"  # the note undone: status as it was
    assert ada.get("/history?before=1").status_code == 200
    assert ada.get(f"/history?before={2**63}").status_code == 422


def test_a_near_duplicate_cluster_is_decided_once_and_audited_per_candidate(engine: Engine) -> None:
    ada, bob = client_for(engine, "ada", "curator-pass-1"), client_for(engine, "bob", "curator-pass-2")
    main, pending, deferred, held, rejected, elsewhere = ranked(engine)[:6]
    with transaction(engine) as session:
        for cid in (main, pending, deferred, held, rejected):
            session.get(Candidate, cid).duplicate_cluster = f"dup-{main}"
        session.get(Candidate, deferred).status = "deferred"
        session.get(Candidate, rejected).status = "rejected"
    bob.get(f"/candidates/{held}")  # Bob has this member open: it is left to him
    page = ada.get(f"/candidates/{main}").text
    box = lxml_html.fromstring(page).cssselect("#cluster-too")[0].getparent().text_content()
    listed = ", ".join(f"#{i}" for i in sorted((pending, deferred, held)))
    assert f"Give its 3 undecided near-duplicates ({listed})" in " ".join(box.split())
    fields = dict(re.findall(r'<input type="hidden" name="(csrf_token|version)" value="([^"]+)"', page))
    r = ada.post(
        f"/candidates/{main}/decide",
        data={**fields, "action": "reject", "reason": "not_cbd_relevant", "cluster": "yes", "note": "same project"},
    )
    target = r.headers["location"]
    while r.status_code == 303:
        target = r.headers["location"]
        r = ada.get(target)
    done = " ".join(lxml_html.fromstring(r.text).cssselect("#done")[0].text_content().split())
    assert f"The same for 2 near-duplicates: {', '.join(f'#{i}' for i in sorted((pending, deferred)))}" in done
    with transaction(engine) as session:
        status = {
            cid: session.get(Candidate, cid).status for cid in (main, pending, deferred, held, rejected, elsewhere)
        }
        trail = [
            (d.candidate_id, d.from_status, d.to_status, d.reason_code, d.note)
            for d in session.scalars(select(Decision).order_by(Decision.id))
        ]
    assert status == {
        main: "rejected",
        pending: "rejected",
        deferred: "rejected",
        held: "pending",
        rejected: "rejected",
        elsewhere: "pending",
    }
    note = f"cluster decision with #{main}: same project"
    assert trail[0] == (main, "pending", "rejected", "not_cbd_relevant", "same project")
    assert sorted(trail[1:]) == sorted(
        [
            (pending, "pending", "rejected", "not_cbd_relevant", note),
            (deferred, "deferred", "rejected", "not_cbd_relevant", note),
        ]
    )
    # Without the box ticked only the candidate itself is decided.
    page = ada.get(f"/candidates/{held}").text
    fields = dict(re.findall(r'<input type="hidden" name="(csrf_token|version)" value="([^"]+)"', page))
    assert 'id="cluster-too"' not in page  # nothing in its cluster is left undecided
    ada.post(f"/candidates/{held}/decide", data={**fields, "action": "accept"})
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Decision)) == 4


def test_the_candidate_page_reads_as_a_curator_would(engine: Engine) -> None:
    """Criteria by name, evidence for and against told apart, and how the score is made."""
    ada = client_for(engine, "ada", "curator-pass-1")
    cid = ranked(engine)[0]
    ended = {
        "criterion": "active",
        "kind": "date",
        "text": "2019-06-30",
        "start": None,
        "end": None,
        "field": "end_date",
        "label": "date",
        "detail": "ended 2019-06-30, 6.4 years before 2025-12-07",
    }
    past = {
        "criterion": "active",
        "kind": "term",
        "text": "was completed",
        "start": 0,
        "end": 13,
        "field": "text",
        "label": "past",
        "detail": "The project was completed",
    }
    ongoing = {
        "criterion": "active",
        "kind": "term",
        "text": "ongoing",
        "start": 0,
        "end": 7,
        "field": "text",
        "label": "ongoing",
        "detail": "ongoing work",
    }
    with transaction(engine) as session:
        row = session.get(Candidate, cid)
        criteria = dict(row.criteria)
        criteria["active"] = {"score": 0.15, "evidence": [ended, past, ongoing]}
        row.criteria, row.score, row.classifier_version = criteria, 0.8123, "lr-20261207-000000-abcd"
        rules = (
            0.40 * criteria["cbd_relevance"]["score"]
            + 0.25 * criteria["support_type"]["score"]
            + 0.15 * 0.15
            + 0.20 * criteria["international"]["score"]
        )
    doc = lxml_html.fromstring(ada.get(f"/candidates/{cid}").text)
    names = [th.text_content() for th in doc.cssselect("table.criteria tbody th, table.criteria tr[data-criterion] th")]
    assert set(names) == {
        "(a) Support type (X/16)",
        "(b) CBD and Article 16 relevance",
        "(c) Active and long-term",
        "(d) International",
    }
    active = doc.cssselect("table.criteria tr[data-criterion=active]")[0]
    assert [e.text_content() for e in active.cssselect("td.for .ev")] == ["ongoing"]
    assert [e.text_content() for e in active.cssselect("td.against .ev")] == ["2019-06-30", "was completed"]
    how = " ".join(doc.cssselect("#how-scored")[0].text_content().split())
    assert how.startswith(
        f"Rules score {rules:.2f} = 0.40 × (b) CBD and Article 16 relevance "
        f"{criteria['cbd_relevance']['score']:.2f} + 0.25 × (a) Support type (X/16)"
    )
    assert "ranked by the learned model lr-20261207-000000-abcd" in how and how.endswith("score 0.81.")
    queue = lxml_html.fromstring(ada.get("/queue").text)
    assert [o.text_content() for o in queue.cssselect("select[name=criterion] option")][1:] == [
        "(a) Support type (X/16)",
        "(b) CBD and Article 16 relevance",
        "(c) Active and long-term",
        "(d) International",
    ]
    assert [a.text_content() for a in doc.cssselect("header.top nav a")][:6] == [
        "Dashboard",
        "Queue",
        "Sources",
        "Runs",
        "Classification",
        "CHM",
    ]


def test_cohen_kappa_of_known_tables() -> None:
    # 50 pairs: 20 both accept, 5 accept/reject, 10 reject/accept, 15 both reject: p_o 0.7, p_e 0.5, kappa 0.4.
    table = (
        [("accepted", "accepted")] * 20
        + [("accepted", "rejected")] * 5
        + [("rejected", "accepted")] * 10
        + [("rejected", "rejected")] * 15
    )
    assert cohen_kappa(table) == pytest.approx(0.4)
    assert cohen_kappa([("accepted", "accepted"), ("rejected", "rejected")]) == 1.0
    assert cohen_kappa([("accepted", "rejected"), ("rejected", "accepted")]) == -1.0
    assert cohen_kappa([("accepted", "accepted")] * 3) is None  # chance agreement is total: undefined
    assert cohen_kappa([]) is None


def test_a_blind_second_review_of_a_sample_gives_kappa_per_curator(engine: Engine) -> None:
    with transaction(engine) as session:
        add_user(session, "root", "admin", "admin-pass-12")
    ada, bob = client_for(engine, "ada", "curator-pass-1"), client_for(engine, "bob", "curator-pass-2")
    root = client_for(engine, "root", "admin-pass-12")
    top = ranked(engine)
    for cid, action in zip(top[:4], ("accept", "accept", "reject", "defer"), strict=True):
        page = ada.get(f"/candidates/{cid}").text
        fields = dict(re.findall(r'<input type="hidden" name="(csrf_token|version)" value="([^"]+)"', page))
        ada.post(f"/candidates/{cid}/decide", data={**fields, "action": action, "reason": "other"})
    csrf = re.findall(r'name="csrf_token" value="([^"]+)"', root.get("/admin/second-review").text)[0]
    r = root.post("/admin/second-review", data={"percent": "100", "csrf_token": csrf})
    assert "3 decision(s) sampled for a blind second review" in root.get(r.headers["location"]).text  # not defer
    again = root.post("/admin/second-review", data={"percent": "100", "csrf_token": csrf})
    assert "0 decision(s) sampled" in root.get(again.headers["location"]).text  # each decision sampled once

    assert 'id="nothing"' in ada.get("/second-review").text  # never one's own decisions
    judged = []
    for judgement in ("accepted", "rejected", "rejected"):
        page = bob.get("/second-review").text
        blind = lxml_html.fromstring(page).cssselect("#blind")[0]
        text = blind.text_content()
        assert "accepted" not in text and "rejected" not in text and "ada" not in text  # blind
        review = int(blind.get("data-review"))
        token = re.findall(r'name="csrf_token" value="([^"]+)"', page)[0]
        r = bob.post(f"/second-review/{review}", data={"judgement": judgement, "csrf_token": token})
        assert "Second review recorded" in bob.get(r.headers["location"]).text
        judged.append(review)
    assert 'id="nothing"' in bob.get("/second-review").text
    late = bob.post(f"/second-review/{judged[0]}", data={"judgement": "accepted", "csrf_token": token})
    assert "someone else gave this second review meanwhile" in bob.get(late.headers["location"]).text
    with transaction(engine) as session:  # the candidates are untouched by second reviews
        assert [session.get(Candidate, cid).status for cid in top[:4]] == [
            "accepted",
            "accepted",
            "rejected",
            "deferred",
        ]
    doc = lxml_html.fromstring(root.get("/admin/second-review").text)
    row = doc.cssselect("table.agreement tr[data-curator=ada] td")
    # Pairs (accepted, accepted), (accepted, rejected), (rejected, rejected): p_o 2/3, p_e 4/9, kappa 0.4.
    assert [td.text_content() for td in row] == ["ada", "3", "2", "0.40", "0"]
    assert [
        [td.text_content() for td in tr.cssselect("td")] for tr in doc.cssselect("table.disagreements tbody tr")
    ] == [[f"#{top[1]}", "ada: accepted", "bob: rejected"]]
