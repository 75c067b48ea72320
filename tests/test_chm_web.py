"""CHM status in the review app: shown on the candidate page, re-push and withdraw for admins only,
CSRF-checked, errors from the KM API escaped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from harvester.chm.export import export
from harvester.web.app import create_app
from harvester.web.auth import add_user
from storage.db import transaction
from storage.models import ChmStatus, ChmSubmission
from tests.test_chm_push import store_accepted

XSS = '<script>alert("x")</script>'


@pytest.fixture
def engine(db_engine: Engine, tmp_path: Path) -> Engine:
    [cid] = store_accepted(db_engine, 1)
    export(db_engine, tmp_path / "out", "CHM-DEV")
    with transaction(db_engine) as session:
        row = session.scalars(select(ChmSubmission).where(ChmSubmission.candidate_id == cid)).one()
        row.status, row.permanent_error = ChmStatus.FAILED, True
        row.errors = [{"code": "Error.InvalidProperty", "property": "notes", "detail": XSS}]
        add_user(session, "ada", "curator", "curator-pass-1")
        add_user(session, "root", "admin", "admin-pass-12")
    return db_engine


def login(engine: Engine, name: str, password: str) -> TestClient:
    client = TestClient(create_app(engine), follow_redirects=False)
    assert client.post("/login", data={"name": name, "password": password, "next": "/queue"}).status_code == 303
    return client


def candidate_id(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.scalars(select(ChmSubmission.candidate_id)).one()


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_candidate_page_shows_chm_status_and_escaped_errors(engine: Engine) -> None:
    cid = candidate_id(engine)
    html = login(engine, "ada", "curator-pass-1").get(f"/candidates/{cid}").text
    assert 'id="chm-status"' in html and "failed" in html and "Error.InvalidProperty notes" in html
    assert XSS not in html and "&lt;script&gt;" in html
    assert "Re-push to CHM" not in html  # curators see the state; admins act on it
    chm_page = login(engine, "ada", "curator-pass-1").get("/chm").text
    assert "needs a curator" in chm_page and XSS not in chm_page


def test_admin_requests_a_repush_and_a_withdraw_with_csrf(engine: Engine) -> None:
    cid = candidate_id(engine)
    admin = login(engine, "root", "admin-pass-12")
    page = admin.get(f"/candidates/{cid}").text
    assert "Re-push to CHM" in page and "Withdraw from CHM" in page
    assert admin.post(f"/candidates/{cid}/chm/repush", data={"csrf_token": "wrong"}).status_code == 403
    answer = admin.post(f"/candidates/{cid}/chm/repush", data={"csrf_token": csrf(page), "realm": "CHM-DEV"})
    assert answer.status_code == 303
    with transaction(engine) as session:
        row = session.scalars(select(ChmSubmission)).one()
        assert (row.requested_action, row.permanent_error) == ("repush", False)
    answer = admin.post(f"/candidates/{cid}/chm/withdraw", data={"csrf_token": csrf(page)})
    assert answer.status_code == 303 and "withdraw+requested" in answer.headers["location"]
    with transaction(engine) as session:
        assert session.scalars(select(ChmSubmission.requested_action)).one() == "withdraw"


def test_curators_cannot_repush_or_withdraw(engine: Engine) -> None:
    cid = candidate_id(engine)
    curator = login(engine, "ada", "curator-pass-1")
    token = csrf(curator.get(f"/candidates/{cid}").text)
    assert curator.post(f"/candidates/{cid}/chm/withdraw", data={"csrf_token": token}).status_code == 403
