"""Shared test set-up: the shared fixtures folder, isolated databases, crawls in child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from harvester.items import CandidateItem
from harvester.settings import PROJECT_ROOT, get_settings
from storage.db import dispose_engines, make_engine, upgrade
from tests.recorded_server import RecordedServer, Route, ServerPool

FIXTURES = Path(os.environ.get("HARVESTER_FIXTURES_DIR", PROJECT_ROOT.parent / "shared" / "fixtures"))
# Under pytest-xdist (`-n auto`) each worker gets its own PostgreSQL database and Redis database, since tests
# drop and recreate the schema and flush the crawl keys.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
POSTGRES_URL = os.environ.get("HARVESTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
if XDIST_WORKER:
    POSTGRES_URL = f"{POSTGRES_URL}_{XDIST_WORKER}"
    _redis = os.environ.get("HARVESTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    os.environ["HARVESTER_TEST_REDIS_URL"] = f"{_redis}/{8 + int(XDIST_WORKER.removeprefix('gw') or 0) % 8}"


def pytest_configure(config: pytest.Config) -> None:
    if not FIXTURES.is_dir():
        raise pytest.UsageError(
            f"shared fixtures folder {FIXTURES} is missing: clone the project beside ../shared or set "
            "HARVESTER_FIXTURES_DIR"
        )


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def harvester_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data dir (SQLite database, replay cache) for one test, visible to child processes."""
    data_dir = tmp_path / "var"
    monkeypatch.setenv("HARVESTER_DATA_DIR", str(data_dir))
    monkeypatch.delenv("HARVESTER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    dispose_engines()
    yield data_dir
    get_settings.cache_clear()
    dispose_engines()


def _create_worker_database() -> None:
    """Create this xdist worker's own database beside the configured one (idempotent)."""
    base, name = POSTGRES_URL.rsplit("/", 1)
    admin = create_engine(f"{base}/{name.removesuffix('_' + XDIST_WORKER)}", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def _postgres_available() -> bool:
    engine = create_engine(POSTGRES_URL)
    try:
        if XDIST_WORKER:
            _create_worker_database()
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} in CI")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    return POSTGRES_URL


def reset_postgres(url: str) -> Engine:
    """Empty the test database's public schema and migrate it from scratch."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database of each supported kind."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'test.sqlite3'}")
        upgrade(engine)
    else:
        engine = reset_postgres(request.getfixturevalue("postgres_url"))
    yield engine
    engine.dispose()


@pytest.fixture
def registry(harvester_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty registry folder for test sources (visible to crawl child processes) and a migrated database."""
    folder = tmp_path / "registry"
    folder.mkdir()
    monkeypatch.setenv("HARVESTER_REGISTRY_DIR", str(folder))
    upgrade()
    return folder


@pytest.fixture
def recorded_server() -> Iterator[Callable[[Route], RecordedServer]]:
    """``recorded_server(route)``: a local server answering with recorded files, stopped after the test."""
    with ServerPool() as pool:
        yield pool.start


def run_crawl(
    *source_ids: str, replay: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run crawls through the real Scrapy stack in a child process, as the CLI does."""
    cmd = [sys.executable, "-m", "harvester.crawl", "--quiet", *source_ids]
    if replay is not None:
        cmd += ["--replay", str(replay)]
    env = {"HARVESTER_ALLOW_PRIVATE_HOSTS": "1", **(env or {})}  # local test servers live on 127.0.0.1
    return subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False, cwd=PROJECT_ROOT
    )


@pytest.fixture(scope="session")
def gcf_items() -> list[CandidateItem]:
    """The real GCF projects capture through the harvester's extraction, parsed once per test session.
    Tests that change the items copy them first."""
    from harvester.crawl.offline import candidates_from_response
    from harvester.recordings.fixtures import load_capture
    from harvester.recordings.warc import RecordedResponse
    from harvester.registry import load_registry

    spec = load_registry()["gcf_projects"]
    capture = load_capture(spec.replay[0].fixture)
    return candidates_from_response(spec, RecordedResponse(capture.url, 200, capture.headers(), capture.body)).items
