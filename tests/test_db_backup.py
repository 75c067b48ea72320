"""``harvester db backup`` and ``db restore``: a demo-like database (recorded partners crawled, an
account, a curator's decision) survives a backup taken while its WAL still holds the latest writes, a
restore into a fresh location and a crawl there, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from harvester.recordings.replay_build import build_replay
from harvester.registry import load_registry
from harvester.settings import PROJECT_ROOT
from storage.models import Candidate, CrawlRun, Decision, User
from tests.conftest import reset_postgres

pytestmark = pytest.mark.slow

SOURCES = ("gcf_projects", "elsa_undp")


def harvester(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "harvester", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, (args, result.stderr[-3000:])
    return result


def environment(data_dir: Path, url: str | None) -> dict[str, str]:
    env = {**os.environ, "HARVESTER_DATA_DIR": str(data_dir), "HARVESTER_NEW_USER_PASSWORD": "curator-pass-1"}
    env.pop("HARVESTER_REGISTRY_DIR", None)
    if url:
        env["HARVESTER_DATABASE_URL"] = url
    else:
        env.pop("HARVESTER_DATABASE_URL", None)
    return env


def state(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return {
                "candidates": sorted(
                    tuple(r)
                    for r in session.execute(
                        select(Candidate.url, Candidate.record_hash, Candidate.status, Candidate.version_id)
                    )
                ),
                "decisions": sorted(
                    tuple(r) for r in session.execute(select(Decision.candidate_id, Decision.actor, Decision.to_status))
                ),
                "users": sorted(session.scalars(select(User.name))),
            }
    finally:
        engine.dispose()


def demo_like(env: dict[str, str], replay: Path) -> None:
    harvester(env, "db", "upgrade")
    harvester(env, "crawl", *SOURCES, "--replay", str(replay))
    harvester(env, "users", "add", "ada", "--role", "curator")


def curator_accepts_one(env: dict[str, str]) -> None:
    first = harvester(env, "queue", "--json", "--limit", "1").stdout
    candidate_id = str(json.loads(first)[0]["id"])
    harvester(env, "decide", candidate_id, "--accept", "--note", "kept across the restore", "--as", "ada")


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    registry = load_registry()
    build_replay([registry[s] for s in SOURCES], folder)
    return folder


def check_restored(before: dict[str, Any], restored_env: dict[str, str], restored_url: str, replay: Path) -> None:
    assert state(restored_url) == before
    harvester(restored_env, "crawl", *SOURCES, "--replay", str(replay))  # the restored database crawls on
    assert state(restored_url) == before  # nothing new, nothing changed, the decision kept
    engine = create_engine(restored_url)
    with Session(engine) as session:
        last = {r.source_id: r for r in session.scalars(select(CrawlRun).order_by(CrawlRun.id))}
    engine.dispose()
    assert {s: (r.status, r.stats["new"]) for s, r in last.items()} == {s: ("finished", 0) for s in SOURCES}
    assert last["gcf_projects"].stats["not_modified"] == 209


def test_sqlite_backup_with_a_busy_wal_restores_into_a_fresh_folder_and_crawls(replay: Path, tmp_path: Path) -> None:
    env = environment(tmp_path / "var", None)
    demo_like(env, replay)
    live = tmp_path / "var" / "harvester.sqlite3"
    app = sqlite3.connect(live)  # another process's open connection, as the review app's: the WAL stays
    app.execute("PRAGMA wal_autocheckpoint=0")
    app.execute("SELECT count(*) FROM candidates").fetchone()
    curator_accepts_one(env)
    wal = live.with_name(live.name + "-wal")
    assert wal.is_file() and wal.stat().st_size > 0, "the last writes are still in the WAL"
    before = state(f"sqlite:///{live}")
    assert before["decisions"]

    harvester(env, "db", "backup", str(tmp_path / "backup.sqlite3"))
    app.close()
    fresh = environment(tmp_path / "elsewhere", None)
    harvester(fresh, "db", "restore", str(tmp_path / "backup.sqlite3"))
    restored = f"sqlite:///{tmp_path / 'elsewhere' / 'harvester.sqlite3'}"
    check_restored(before, fresh, restored, replay)

    refused = subprocess.run(
        [sys.executable, "-m", "harvester", "db", "restore", str(tmp_path / "backup.sqlite3")],
        cwd=PROJECT_ROOT,
        env=fresh,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and refused.stderr.startswith("error: the database already holds candidates")


@pytest.mark.postgres
def test_postgresql_backup_restores_into_a_fresh_database_and_crawls(
    replay: Path, postgres_url: str, tmp_path: Path
) -> None:
    reset_postgres(postgres_url).dispose()
    env = environment(tmp_path / "var", postgres_url)
    demo_like(env, replay)
    curator_accepts_one(env)
    before = state(postgres_url)
    harvester(env, "db", "backup", str(tmp_path / "backup.dump"))

    url = make_url(postgres_url)
    fresh_url = url.set(database=f"{url.database}_restored").render_as_string(hide_password=False)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}_restored"'))
        conn.execute(text(f'CREATE DATABASE "{url.database}_restored"'))
    try:
        fresh = environment(tmp_path / "elsewhere", fresh_url)
        harvester(fresh, "db", "restore", str(tmp_path / "backup.dump"))
        check_restored(before, fresh, fresh_url, replay)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}_restored" WITH (FORCE)'))
        admin.dispose()
