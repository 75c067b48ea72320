"""``chm export`` and ``chm push`` against a fake KM API on 127.0.0.1: call order and headers, idempotent
re-runs, edits, token expiry, validation errors, retried 5xx, zero network for export, and a push killed
with SIGKILL that resumes without duplicate drafts or publishing requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from harvester.chm.client import Credentials, KmClient
from harvester.chm.export import export
from harvester.chm.mapping import payload_hash
from harvester.chm.push import ChmConfigError, push, resolve_target
from harvester.chm.validate import validate
from harvester.cli.main import cli
from harvester.registry import load_registry
from harvester.settings import PROJECT_ROOT, Settings, get_settings
from pipelines.store import candidate_values
from storage.db import make_engine, transaction, upgrade
from storage.decisions import Actor, decide
from storage.models import Candidate, ChmStatus, ChmSubmission
from storage.queue import upsert_candidate
from storage.runs import ensure_source
from storage.submissions import request_action
from tests.fake_km_api import EMAIL, PASSWORD, FakeKmApi
from tests.test_partner_records import harvest

TOKEN = "POST /api/v2013/authentication/token"
VALIDATE = "PUT /api/v2013/documents/x/validate"
WORKFLOWS = "POST /api/v2013/workflows"


def draft_route(identifier: str, method: str = "PUT") -> str:
    return f"{method} /api/v2013/documents/{identifier}/versions/draft"


def store_accepted(engine: Engine, count: int) -> list[int]:
    """The first ``count`` valid Climate-ADAPT case studies, stored and accepted by curator ada."""
    spec = load_registry()["climate_adapt_cases"]
    items = list(harvest("climate_adapt_cases").values())[:count]
    ids = []
    with transaction(engine) as session:
        ensure_source(session, spec.id, spec.name, spec.kind.value, True, True, "h")
        for item in items:
            result = upsert_candidate(
                session,
                source_id=spec.id,
                url=item.canonical_url or item.url,
                record_hash=item.record_hash or "h",
                run_id=None,
                initial_status="pending",
                values=candidate_values(item),
            )
            decide(session, result.candidate_id, "accept", Actor("ada"))
            ids.append(result.candidate_id)
    return ids


@pytest.fixture
def fake() -> Iterator[FakeKmApi]:
    api = FakeKmApi().start()
    yield api
    api.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'chm.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def settings_for(fake: FakeKmApi, **changes: object) -> Settings:
    return Settings(
        chm_api_base=fake.base_url,
        chm_realm=fake.realm,
        chm_email=EMAIL,
        chm_password=PASSWORD,
        chm_retry_backoff=0,
        **changes,
    )


def statuses(engine: Engine) -> dict[int, str]:
    with transaction(engine) as session:
        return {r.candidate_id: r.status for r in session.scalars(select(ChmSubmission))}


def identifiers(engine: Engine) -> dict[int, str]:
    with transaction(engine) as session:
        return {r.candidate_id: r.identifier for r in session.scalars(select(ChmSubmission))}


def test_push_signs_in_once_then_validates_saves_drafts_and_requests_publication_in_order(
    db_engine: Engine, fake: FakeKmApi
) -> None:
    ids = store_accepted(db_engine, 2)
    summary = push(db_engine, settings_for(fake))
    idents = identifiers(db_engine)
    expected = [TOKEN]
    for cid in ids:
        expected += [VALIDATE, draft_route(idents[cid]), WORKFLOWS]
    assert fake.routes() == expected
    for call in fake.calls[1:]:
        assert call.headers["realm"] == "CHM-DEV"
        assert call.headers["authorization"].startswith("Bearer ") and len(call.headers["authorization"]) > 10
    assert "authorization" not in fake.calls[0].headers
    assert statuses(db_engine) == dict.fromkeys(ids, ChmStatus.PUBLISH_REQUESTED)
    assert summary.statuses == Counter({"publish_requested": 2})
    workflow = fake.open_workflows(idents[ids[0]])[0]
    assert workflow["type"] == "publishReferenceRecord" and workflow["data"]["realm"] == "CHM-DEV"
    assert workflow["data"]["documentID"] == fake.drafts[idents[ids[0]]]["documentID"]
    assert fake.drafts[idents[ids[0]]]["body"]["header"]["identifier"] == idents[ids[0]]


def test_an_unchanged_record_is_not_pushed_again_and_an_approval_is_polled(engine: Engine, fake: FakeKmApi) -> None:
    ids = store_accepted(engine, 2)
    push(engine, settings_for(fake))
    first = len(fake.calls)
    push(engine, settings_for(fake))
    again = fake.routes()[first:]
    assert WORKFLOWS not in again and not any(r.startswith("PUT") for r in again)
    assert [r for r in again if r != TOKEN] == [f"GET /api/v2013/workflows/{w['_id']}" for w in fake.open_workflows()]
    idents = identifiers(engine)
    fake.decide(fake.open_workflows(idents[ids[0]])[0]["_id"], "approve")
    fake.decide(fake.open_workflows(idents[ids[1]])[0]["_id"], "reject", "not a library resource")
    push(engine, settings_for(fake))
    assert statuses(engine) == {ids[0]: ChmStatus.PUBLISHED, ids[1]: ChmStatus.REJECTED}
    with transaction(engine) as session:
        rejected = session.scalars(select(ChmSubmission).where(ChmSubmission.candidate_id == ids[1])).one()
        assert rejected.error == "not a library resource"
    calls = len(fake.calls)
    push(engine, settings_for(fake))
    assert fake.routes()[calls:] == []  # published and rejected records need no call at all


def test_an_edited_accepted_record_cancels_its_open_request_and_makes_a_new_draft_and_request(
    engine: Engine, fake: FakeKmApi
) -> None:
    [cid] = store_accepted(engine, 1)
    push(engine, settings_for(fake))
    ident = identifiers(engine)[cid]
    old = fake.open_workflows(ident)[0]["_id"]
    with transaction(engine) as session:
        decide(session, cid, "accept", Actor("ada"), edits={"title": "Maharees dunes: community restoration"})
    start = len(fake.calls)
    push(engine, settings_for(fake))
    assert fake.routes()[start:] == [
        TOKEN,
        f"DELETE /api/v2013/workflows/{old}",
        VALIDATE,
        draft_route(ident),
        WORKFLOWS,
    ]
    assert fake.workflows[old]["state"] == "cancelled"
    assert len(fake.open_workflows(ident)) == 1
    assert fake.drafts[ident]["body"]["title"] == {"en": "Maharees dunes: community restoration"}


def test_an_expired_token_is_refreshed_once_and_the_call_repeated(engine: Engine, fake: FakeKmApi) -> None:
    ids = store_accepted(engine, 2)
    push(engine, settings_for(fake), candidate_ids=ids[:1])
    fake.expire_tokens()
    start = len(fake.calls)
    push(engine, settings_for(fake), candidate_ids=ids[1:])
    ident = identifiers(engine)[ids[1]]
    assert fake.routes()[start:] == [TOKEN, VALIDATE, draft_route(ident), WORKFLOWS]
    fake.expire_tokens()
    client = KmClient(fake.base_url, fake.realm, Credentials(EMAIL, PASSWORD), backoff=0)
    client._token = "stale-token"
    wid = fake.open_workflows(ident)[0]["_id"]
    assert client.workflow(wid)["state"] == "running"
    assert [c.route for c in fake.calls[-3:]] == [
        f"GET /api/v2013/workflows/{wid}",
        TOKEN,
        f"GET /api/v2013/workflows/{wid}",
    ]
    assert fake.calls[-3].headers["authorization"] == "Bearer stale-token"
    assert fake.calls[-1].headers["authorization"] != "Bearer stale-token"


def test_a_token_about_to_expire_is_renewed_before_the_call(fake: FakeKmApi) -> None:
    fake.token_ttl = timedelta(seconds=30)  # inside the refresh margin: every call signs in afresh
    client = KmClient(fake.base_url, fake.realm, Credentials(EMAIL, PASSWORD), backoff=0)
    client.workflow("none")
    client.workflow("none")
    assert fake.routes() == [TOKEN, "GET /api/v2013/workflows/none", TOKEN, "GET /api/v2013/workflows/none"]


def test_server_validation_errors_and_a_400_are_shown_to_the_curator(engine: Engine, fake: FakeKmApi) -> None:
    ids = store_accepted(engine, 2)
    export(engine, engine_out := Path(str(engine.url.database)).parent / "out", fake.realm)
    idents = identifiers(engine)
    fake.validation_errors[idents[ids[0]]] = [{"code": "Error.Mandatory", "property": "organizations"}]
    fake.draft_rejections[idents[ids[1]]] = {
        "message": "Bad document",
        "errors": [{"code": "Error.InvalidProperty", "property": "notes", "message": "not allowed"}],
    }
    summary = push(engine, settings_for(fake))
    with transaction(engine) as session:
        rows = {r.candidate_id: r for r in session.scalars(select(ChmSubmission))}
        assert (rows[ids[0]].status, rows[ids[0]].errors) == (
            ChmStatus.INVALID,
            [{"code": "Error.Mandatory", "property": "organizations", "detail": ""}],
        )
        assert rows[ids[1]].status == ChmStatus.FAILED and rows[ids[1]].permanent_error
        assert rows[ids[1]].errors == [{"code": "Error.InvalidProperty", "property": "notes", "detail": "not allowed"}]
    assert [p["permanent"] for p in summary.problems] == [True]
    start = len(fake.calls)
    push(engine, settings_for(fake))
    assert fake.routes()[start:] == []  # permanent problems wait for a curator; nothing is retried blindly
    assert engine_out.is_dir()


def test_a_5xx_is_retried_with_backoff_and_a_lasting_outage_retried_on_the_next_run(
    engine: Engine, fake: FakeKmApi
) -> None:
    [cid] = store_accepted(engine, 1)
    fake.fail(VALIDATE, 502, 503)
    push(engine, settings_for(fake))
    assert fake.routes()[:4] == [TOKEN, VALIDATE, VALIDATE, VALIDATE]
    assert statuses(engine) == {cid: ChmStatus.PUBLISH_REQUESTED}
    with transaction(engine) as session:
        request_action(session, cid, fake.realm, "repush")
    fake.fail(draft_route(identifiers(engine)[cid]), 500, 500, 500, 500)
    summary = push(engine, settings_for(fake))
    assert summary.problems[0]["permanent"] is False and "after 4 attempts" in summary.problems[0]["error"]
    with transaction(engine) as session:
        row = session.scalars(select(ChmSubmission)).one()
        assert (row.status, row.permanent_error, row.attempts) == (ChmStatus.FAILED, False, 2)
    push(engine, settings_for(fake))
    assert statuses(engine) == {cid: ChmStatus.PUBLISH_REQUESTED}
    assert len(fake.open_workflows()) == 1


def test_a_5xx_on_the_publishing_request_never_starts_a_second_request(engine: Engine, fake: FakeKmApi) -> None:
    [cid] = store_accepted(engine, 1)
    fake.fail(WORKFLOWS, 503)
    push(engine, settings_for(fake))
    ident = identifiers(engine)[cid]
    assert fake.routes()[-2:] == ["GET /api/v2013/workflows", WORKFLOWS]
    assert len(fake.open_workflows(ident)) == 1 and statuses(engine) == {cid: ChmStatus.PUBLISH_REQUESTED}


def test_withdraw_cancels_the_open_request_and_deletes_the_draft(engine: Engine, fake: FakeKmApi) -> None:
    [cid] = store_accepted(engine, 1)
    push(engine, settings_for(fake))
    ident = identifiers(engine)[cid]
    wid = fake.open_workflows(ident)[0]["_id"]
    with transaction(engine) as session:
        request_action(session, cid, fake.realm, "withdraw")
    start = len(fake.calls)
    push(engine, settings_for(fake))
    assert fake.routes()[start:] == [TOKEN, f"DELETE /api/v2013/workflows/{wid}", draft_route(ident, "DELETE")]
    assert statuses(engine) == {cid: ChmStatus.WITHDRAWN} and ident not in fake.drafts


def test_production_needs_the_explicit_flag_and_credentials_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_target(Settings()).base_url == "https://api.cbddev.xyz"
    assert resolve_target(Settings()).realm == "CHM-DEV"
    with pytest.raises(ChmConfigError, match="--production"):
        resolve_target(Settings(chm_api_base="https://api.cbd.int", chm_realm="CHM"))
    assert resolve_target(Settings(), production=True).realm == "CHM"
    monkeypatch.setenv("HARVESTER_CHM_EMAIL", EMAIL)
    monkeypatch.setenv("HARVESTER_CHM_PASSWORD", PASSWORD)
    monkeypatch.setenv("HARVESTER_CHM_AUTH_SCHEME", "Ticket")
    settings = Settings()
    assert settings.chm_password is not None and settings.chm_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(settings)
    assert settings.chm_auth_scheme == "Ticket"


def test_export_writes_documents_manifest_and_plan_and_makes_no_network_call(
    harvester_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade()
    from storage.db import get_engine

    ids = store_accepted(get_engine(), 3)
    with transaction(get_engine()) as session:  # one record a curator still has to complete
        row = session.get(Candidate, ids[2])
        row.language = "de"  # detected outside the UN languages: a curator sets the language

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"export tried to connect: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["chm", "export", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 2 and json.loads(result.output)["invalid"] == 1
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [m["candidate"] for m in manifest] == ids
    assert [m["valid"] for m in manifest] == [True, True, False]
    [error] = manifest[2]["errors"]
    assert (error["code"], error["property"]) == ("Error.InvalidValue", "header.languages")
    assert error["detail"].startswith("'de' is not a UN language")
    for entry in manifest[:2]:
        written = (out / entry["file"]).read_bytes()
        assert payload_hash(json.loads(written)) == entry["sha256"]
        assert validate(json.loads(written)) == []  # every exported document passes local validation
    plan = [json.loads(line) for line in (out / "push-plan.jsonl").read_text().splitlines()]
    assert [(p["method"], p["path"].split("?")[0]) for p in plan][:4] == [
        ("POST", "/api/v2013/authentication/token"),
        ("PUT", "/api/v2013/documents/x/validate"),
        ("PUT", f"/api/v2013/documents/{manifest[0]['identifier']}/versions/draft"),
        ("POST", "/api/v2013/workflows"),
    ]
    assert len(plan) == 1 + 3 * 2
    status = CliRunner().invoke(cli, ["chm", "status", "--json"])
    assert [r["status"] for r in json.loads(status.output)] == ["exported", "exported", "invalid"]


def _push_child(db_url: str, fake: FakeKmApi) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": db_url,
        "HARVESTER_CHM_API_BASE": fake.base_url,
        "HARVESTER_CHM_REALM": fake.realm,
        "HARVESTER_CHM_EMAIL": EMAIL,
        "HARVESTER_CHM_PASSWORD": PASSWORD,
        "HARVESTER_CHM_RETRY_BACKOFF": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from harvester.cli.main import main; main()", "chm", "push"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(child: subprocess.Popen[bytes], condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    try:
        while not condition():
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the push never reached the point to kill it at"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stderr:
            child.stderr.close()


@pytest.mark.slow
def test_a_push_killed_mid_call_resumes_without_duplicate_drafts_or_requests(tmp_path: Path, fake: FakeKmApi) -> None:
    db_url = f"sqlite:///{tmp_path / 'kill.sqlite3'}"
    engine = make_engine(db_url)
    upgrade(engine)
    ids = store_accepted(engine, 3)
    get_settings.cache_clear()
    # 1: killed while the server is answering the first publishing request it has already created
    fake.delay(WORKFLOWS, 60)
    child = _push_child(db_url, fake)
    _kill_when(child, lambda: len(fake.workflows) == 1)
    assert statuses(engine)[ids[0]] == ChmStatus.DRAFT_SAVED
    # 2: killed while the second record's draft is being saved
    fake.delay(WORKFLOWS, 0)
    ident2 = identifiers(engine)[ids[1]]
    fake.delay(draft_route(ident2), 60)
    child = _push_child(db_url, fake)
    _kill_when(child, lambda: ident2 in fake.drafts)
    with transaction(engine) as session:
        second = session.scalars(select(ChmSubmission).where(ChmSubmission.candidate_id == ids[1])).one()
        assert (second.status, second.pending_step) == (ChmStatus.EXPORTED, "draft")
    assert statuses(engine)[ids[0]] == ChmStatus.PUBLISH_REQUESTED  # adopted the request the killed run made
    fake.delay(draft_route(ident2), 0)
    # 3: an undisturbed run finishes the job
    child = _push_child(db_url, fake)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    idents = identifiers(engine)
    assert statuses(engine) == dict.fromkeys(ids, ChmStatus.PUBLISH_REQUESTED)
    per_document = Counter(w["data"]["identifier"] for w in fake.workflows.values())
    assert per_document == Counter({idents[c]: 1 for c in ids})
    assert set(fake.drafts) == set(idents.values())
    with transaction(engine) as session:
        assert all(r.pending_step is None and r.workflow_id for r in session.scalars(select(ChmSubmission)))
    engine.dispose()


def test_sync_exports_always_and_pushes_only_with_credentials(tmp_path: Path, engine: Engine, fake: FakeKmApi) -> None:
    from harvester.chm import sync

    store_accepted(engine, 1)
    quiet = sync(engine, Settings(data_dir=tmp_path, chm_api_base=fake.base_url, chm_realm=fake.realm))
    assert quiet["export"]["documents"] == 1 and "push" not in quiet and fake.calls == []
    assert (tmp_path / "chm" / "export" / "manifest.jsonl").is_file()
    pushed = sync(engine, settings_for(fake, data_dir=tmp_path))
    assert pushed["push"]["statuses"] == {"publish_requested": 1} and pushed["push"]["calls"] == 4


def test_curate_chooses_capacity_building_and_push_refuses_production_without_the_flag(
    harvester_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade()
    from storage.db import get_engine

    [cid] = store_accepted(get_engine(), 1)
    data = tmp_path / "cdi.json"
    data.write_text(
        json.dumps(
            {
                "contacts": [{"identifier": "1767A775-F4F9-B597-41AC-CE56536F28F5@2"}],
                "geographicScope": {"identifier": "C7D6719B-1B8C-4A2A-A1F5-7D5E7B1E0D11"},
            }
        )
    )
    result = CliRunner().invoke(
        cli, ["chm", "curate", str(cid), "--schema", "capacityBuildingInitiative", "--data", str(data), "--as", "ada"]
    )
    assert result.exit_code == 0, result.output
    assert "invalid:" in result.output and "Error.Mandatory status" in result.output
    assert "Error.Mandatory contacts" not in result.output
    monkeypatch.setenv("HARVESTER_CHM_API_BASE", "https://api.cbd.int")
    monkeypatch.setenv("HARVESTER_CHM_REALM", "CHM")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["chm", "push"])
    assert result.exit_code == 2 and "--production" in result.output


def test_the_scheduled_chm_sync_exports_and_pushes_the_accepted_candidates(
    db_engine: Engine, fake: FakeKmApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schedules import jobs
    from schedules.scheduler import plan_jobs
    from storage.db import dispose_engines

    ids = store_accepted(db_engine, 2)
    env = {
        "HARVESTER_DATABASE_URL": db_engine.url.render_as_string(hide_password=False),
        "HARVESTER_DATA_DIR": str(tmp_path / "var"),
        "HARVESTER_CHM_API_BASE": fake.base_url,
        "HARVESTER_CHM_REALM": fake.realm,
        "HARVESTER_CHM_EMAIL": EMAIL,
        "HARVESTER_CHM_PASSWORD": PASSWORD,
        "HARVESTER_CHM_RETRY_BACKOFF": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    dispose_engines()
    try:
        plans, _ = plan_jobs({}, jobs.ScheduleSettings())
        assert [(p.id, p.func, p.schedule) for p in plans if p.kind == "chm_sync"] == [
            ("chm_sync", "schedules.jobs:chm_sync", "0 7 * * *")
        ]
        result = jobs.chm_sync()
    finally:
        get_settings.cache_clear()
        dispose_engines()
    assert result.startswith("export: ") and "push: " in result
    exported = sorted((tmp_path / "var" / "chm" / "export" / "documents").glob("*.json"))
    assert sorted(p.stem for p in exported) == sorted(identifiers(db_engine).values())
    assert set(statuses(db_engine)) == set(ids)
    assert set(statuses(db_engine).values()) == {ChmStatus.PUBLISH_REQUESTED.value}
