"""Review-app accounts: login throttling that cannot lock a curator out, and accounts an admin runs
(deactivate, reactivate, reset a password, end sessions) in the app and the CLI, each audited."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from harvester.web.app import create_app
from harvester.web.auth import CLIENT_MAX_NAMES, PAIR_FREE_FAILURES, add_user, pair_delay
from storage.db import transaction
from storage.models import AccountEvent, LoginAttempt, User, WebSession

ADA, ADA_PASSWORD = "ada", "curator-pass-1"
ROOT, ROOT_PASSWORD = "root", "admin-pass-12"


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    with transaction(db_engine) as session:
        add_user(session, ADA, "curator", ADA_PASSWORD)
        add_user(session, ROOT, "admin", ROOT_PASSWORD)
    return db_engine


def client_at(engine: Engine, address: str) -> TestClient:
    return TestClient(create_app(engine), follow_redirects=False, client=(address, 40000))


def try_login(client: TestClient, name: str, password: str) -> int:
    return client.post("/login", data={"name": name, "password": password, "next": "/queue"}).status_code


def logged_in(engine: Engine, name: str, password: str, address: str = "10.0.0.1") -> TestClient:
    client = client_at(engine, address)
    assert try_login(client, name, password) == 303
    return client


def age_attempts(engine: Engine, by: timedelta) -> None:
    """Let time pass for the throttle: every recorded attempt moves ``by`` into the past."""
    with transaction(engine) as session:
        for attempt in session.scalars(select(LoginAttempt)):
            attempt.at = attempt.at - by


def csrf_of(client: TestClient, path: str = "/admin/users") -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def user_id(engine: Engine, name: str) -> int:
    with transaction(engine) as session:
        return session.scalars(select(User.id).where(User.name == name)).one()


def events(engine: Engine) -> list[tuple[str, str, str]]:
    with transaction(engine) as session:
        return [
            (e.actor, name, e.action)
            for e, name in session.execute(
                select(AccountEvent, User.name).join(User, User.id == AccountEvent.user_id).order_by(AccountEvent.id)
            )
        ]


# ---- throttling ------------------------------------------------------------------------------------


def test_the_back_off_grows_per_failure_and_is_capped() -> None:
    assert [pair_delay(n).total_seconds() for n in range(PAIR_FREE_FAILURES + 4)] == [0, 0, 0, 1, 2, 4, 8]
    assert pair_delay(40) == timedelta(minutes=15)


def test_an_attacker_guessing_elsewhere_never_locks_the_curator_out(engine: Engine) -> None:
    attacker = client_at(engine, "203.0.113.66")
    codes = [try_login(attacker, ADA, f"guess-{i}") for i in range(20)]
    assert codes[:PAIR_FREE_FAILURES] == [401] * PAIR_FREE_FAILURES
    assert codes[PAIR_FREE_FAILURES] == 429  # the 4th try comes too soon: the guess is not even checked
    assert try_login(attacker, ADA, ADA_PASSWORD) == 429  # not even the right one, from the guessing client
    # Ada, from her own client, logs in at once with the right password.
    assert try_login(client_at(engine, "10.0.0.7"), ADA, ADA_PASSWORD) == 303


def test_the_right_password_works_again_after_a_short_wait_from_the_same_client(engine: Engine) -> None:
    client = client_at(engine, "10.0.0.7")
    for _ in range(5):
        age_attempts(engine, timedelta(seconds=30))  # a person retyping, not a script
        assert try_login(client, ADA, "typo-typo-typo") == 401
    r = client.post("/login", data={"name": ADA, "password": ADA_PASSWORD})  # at once after the 5th typo
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert 3 <= wait <= 4  # 5 failures: 4 s after the last one, never 15 minutes
    assert f"try again in {wait} seconds" in r.text
    age_attempts(engine, timedelta(seconds=wait))
    assert try_login(client, ADA, ADA_PASSWORD) == 303
    # A success clears the pair: the next typo costs nothing again.
    assert try_login(client, ADA, "typo-typo-typo") == 401


def test_spraying_names_from_one_client_is_throttled_for_that_client_only(engine: Engine) -> None:
    sprayer = client_at(engine, "198.51.100.9")
    names = [f"user{i}" for i in range(CLIENT_MAX_NAMES)]
    assert [try_login(sprayer, name, "Winter2026!") for name in names] == [401] * CLIENT_MAX_NAMES
    r = sprayer.post("/login", data={"name": "next-name", "password": "Winter2026!"})
    assert r.status_code == 429 and "too many failed logins from here" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    assert try_login(sprayer, ADA, ADA_PASSWORD) == 429  # the whole client waits, whatever the name
    assert try_login(client_at(engine, "10.0.0.7"), ADA, ADA_PASSWORD) == 303  # nobody else does
    age_attempts(engine, timedelta(minutes=15))
    assert try_login(sprayer, ADA, ADA_PASSWORD) == 303  # and it ends


def test_a_throttled_guess_is_not_recorded_or_checked(engine: Engine) -> None:
    attacker = client_at(engine, "203.0.113.66")
    for i in range(PAIR_FREE_FAILURES + 5):
        try_login(attacker, ADA, f"guess-{i}")
    with transaction(engine) as session:
        recorded = session.scalars(select(LoginAttempt.client).where(LoginAttempt.name == ADA)).all()
    assert recorded == ["203.0.113.66"] * PAIR_FREE_FAILURES


# ---- accounts an admin runs ---------------------------------------------------------------------------


def test_admin_deactivates_a_curator_who_is_logged_out_at_once_and_cannot_log_in(engine: Engine) -> None:
    ada = logged_in(engine, ADA, ADA_PASSWORD)
    assert ada.get("/api/v1/me").status_code == 200
    root = logged_in(engine, ROOT, ROOT_PASSWORD, "10.0.0.2")
    r = root.post(f"/admin/users/{user_id(engine, ADA)}", data={"action": "deactivate", "csrf_token": csrf_of(root)})
    assert r.status_code == 303
    page = root.get(r.headers["location"]).text
    assert "ada deactivated: cannot log in, every session ended" in page
    assert ada.get("/api/v1/me").status_code == 401
    assert try_login(client_at(engine, "10.0.0.3"), ADA, ADA_PASSWORD) == 401
    r = root.post(f"/admin/users/{user_id(engine, ADA)}", data={"action": "activate", "csrf_token": csrf_of(root)})
    assert r.status_code == 303
    assert try_login(client_at(engine, "10.0.0.3"), ADA, ADA_PASSWORD) == 303
    assert events(engine) == [(ROOT, ADA, "deactivated"), (ROOT, ADA, "reactivated")]


def test_admin_resets_a_password_and_ends_sessions(engine: Engine) -> None:
    ada = logged_in(engine, ADA, ADA_PASSWORD)
    root = logged_in(engine, ROOT, ROOT_PASSWORD, "10.0.0.2")
    target = f"/admin/users/{user_id(engine, ADA)}"
    short = root.post(target, data={"action": "reset_password", "password": "short", "csrf_token": csrf_of(root)})
    assert "password must have at least 10 characters" in root.get(short.headers["location"]).text
    assert ada.get("/api/v1/me").status_code == 200  # a refused reset changes nothing
    root.post(target, data={"action": "reset_password", "password": "a-new-secret-22", "csrf_token": csrf_of(root)})
    assert ada.get("/api/v1/me").status_code == 401
    assert try_login(client_at(engine, "10.0.0.3"), ADA, ADA_PASSWORD) == 401
    ada = logged_in(engine, ADA, "a-new-secret-22", "10.0.0.4")
    root.post(target, data={"action": "end_sessions", "csrf_token": csrf_of(root)})
    assert ada.get("/api/v1/me").status_code == 401
    assert try_login(client_at(engine, "10.0.0.5"), ADA, "a-new-secret-22") == 303  # ended, not locked
    assert events(engine) == [(ROOT, ADA, "password_reset"), (ROOT, ADA, "sessions_ended")]
    page = root.get("/admin/users").text
    assert "password_reset" in page and "sessions_ended" in page


def test_an_admin_cannot_deactivate_themselves_or_the_last_admin(engine: Engine) -> None:
    root = logged_in(engine, ROOT, ROOT_PASSWORD)
    r = root.post(f"/admin/users/{user_id(engine, ROOT)}", data={"action": "deactivate", "csrf_token": csrf_of(root)})
    assert "you cannot deactivate your own account" in root.get(r.headers["location"]).text
    assert root.get("/api/v1/me").status_code == 200
    assert events(engine) == []


def test_users_cli_lists_deactivates_resets_and_ends_sessions(
    engine: Engine, harvester_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from harvester.cli import cli
    from harvester.settings import get_settings
    from storage.db import dispose_engines

    monkeypatch.setenv("HARVESTER_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    dispose_engines()
    ada = logged_in(engine, ADA, ADA_PASSWORD)
    runner = CliRunner()
    listed = runner.invoke(cli, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    assert re.search(r"^ada\s+curator\s+active\s+1 session\(s\)", listed.output, re.M)
    ended = runner.invoke(cli, ["users", "end-sessions", ADA, "--as", "ops"])
    assert (ended.exit_code, ended.output.strip()) == (0, "user ada: 1 session(s) ended")
    assert ada.get("/api/v1/me").status_code == 401
    reset = runner.invoke(cli, ["users", "reset-password", ADA], env={"HARVESTER_NEW_USER_PASSWORD": "cli-secret-333"})
    assert reset.exit_code == 0, reset.output
    assert try_login(client_at(engine, "10.0.0.8"), ADA, "cli-secret-333") == 303
    assert runner.invoke(cli, ["users", "deactivate", ADA]).exit_code == 0
    assert try_login(client_at(engine, "10.0.0.9"), ADA, "cli-secret-333") == 401
    last_admin = runner.invoke(cli, ["users", "deactivate", ROOT])
    assert last_admin.exit_code == 1 and "root is the last active admin" in last_admin.output
    unknown = runner.invoke(cli, ["users", "deactivate", "nobody"])
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output
    as_json = runner.invoke(cli, ["users", "list", "--json"])
    assert '"name": "ada", "role": "curator", "active": false, "sessions": 0' in as_json.output
    assert events(engine) == [
        ("ops", ADA, "sessions_ended"),
        ("cli", ADA, "password_reset"),
        ("cli", ADA, "deactivated"),
    ]
    with transaction(engine) as session:
        assert (
            session.scalar(
                select(WebSession.revoked)
                .where(WebSession.user_id == user_id(engine, ADA))
                .order_by(WebSession.id.desc())
                .limit(1)
            )
            is True
        )
        session.execute(update(User).values(active=True))
    dispose_engines()
