"""Candidates are keyed by the record's identity at the partner (``harvester.dedupe.candidate_key``), not by
URL: distinct records that share a URL stay distinct, and migration 0012 gives rows stored before it the keys
a re-crawl derives, so nothing is duplicated, merged or lost across the upgrade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select, text

from harvester.dedupe import candidate_key
from storage.db import alembic_config, make_engine, transaction
from storage.models import Candidate, CandidateStatus
from storage.queue import Outcome, mark_gone_keys, upsert_candidate
from storage.runs import ensure_source
from storage.search import sqlite_triggers_present
from tests.conftest import reset_postgres

SOURCE = "dryad_oai"
LANDING = "http://hdl.handle.net/10255/dryad.87899"


def test_the_key_is_the_partner_identity_else_the_canonical_url() -> None:
    assert candidate_key("oai:datadryad.org:10255/dryad.87899", LANDING) == "key:oai:datadryad.org:10255/dryad.87899"
    assert candidate_key("  4014 ", "https://x.org/a") == "key:4014"
    assert candidate_key(None, "HTTPS://X.org:443/a?utm_source=n&b=2#frag") == "url:https://x.org/a?b=2"
    assert candidate_key("", "https://x.org/a") == "url:https://x.org/a"


def _store(session, key: str | None, url: str, record_hash: str, title: str) -> Outcome:
    ensure_source(session, SOURCE, "Dryad", "oai", True, True, "h")
    return upsert_candidate(
        session,
        source_id=SOURCE,
        url=url,
        record_hash=record_hash,
        run_id=None,
        initial_status=CandidateStatus.PENDING,
        values={"record_key": key, "title": title, "fetched_url": "http://oai/p1"},
    ).outcome


def test_records_sharing_a_url_are_distinct_candidates_and_a_moved_record_stays_one(db_engine: Engine) -> None:
    with transaction(db_engine) as session:
        first = [_store(session, f"oai:x:{n}", LANDING, f"h{n}", f"Record {n}") for n in (1, 2, 3)]
    assert first == [Outcome.NEW] * 3, "three records, one shared landing page: three new candidates"
    with transaction(db_engine) as session:
        again = [_store(session, f"oai:x:{n}", LANDING, f"h{n}", f"Record {n}") for n in (1, 2, 3)]
        moved = _store(session, "oai:x:2", "http://hdl.handle.net/10255/moved", "h2", "Record 2")
    assert again == [Outcome.NOT_MODIFIED] * 3
    assert moved is Outcome.UPDATED
    with transaction(db_engine) as session:
        rows = {c.identity_key: (c.url, c.title) for c in session.scalars(select(Candidate))}
        gone = mark_gone_keys(session, SOURCE, ["key:oai:x:3"], "deleted at source", None)
    assert rows == {
        "key:oai:x:1": (LANDING, "Record 1"),
        "key:oai:x:2": ("http://hdl.handle.net/10255/moved", "Record 2"),
        "key:oai:x:3": (LANDING, "Record 3"),
    }
    assert gone == 1
    with transaction(db_engine) as session:
        flags = {c.identity_key: c.gone_at_source for c in session.scalars(select(Candidate))}
    assert flags == {"key:oai:x:1": False, "key:oai:x:2": False, "key:oai:x:3": True}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine_at_0010(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    else:
        engine = reset_postgres(request.getfixturevalue("postgres_url"))
        command.downgrade(alembic_config(engine), "0010")
    command.upgrade(alembic_config(engine), "0010")
    yield engine
    engine.dispose()


OLD_ROWS = [  # (url, record_key) as stored keyed by (source, url) before 0012
    ("https://www.thegef.org/projects-operations/projects/10235", None),
    ("http://hdl.handle.net/10255/dryad.87899", "oai:datadryad.org:10255/dryad.87899"),
    ("http://hdl.handle.net/10255/dryad.old-url", "oai:datadryad.org:10255/dryad.63781"),
    ("http://hdl.handle.net/10255/dryad.63781", "oai:datadryad.org:10255/dryad.63781"),  # moved: same key twice
]


def test_migration_0012_keys_existing_rows_so_recrawls_find_them(engine_at_0010: Engine) -> None:
    engine = engine_at_0010
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (id, name, kind, verified, enabled, config_hash) "
                "VALUES (:id, 'Dryad', 'oai', true, true, 'h')"
            ),
            {"id": SOURCE},
        )
        for n, (url, key) in enumerate(OLD_ROWS):
            conn.execute(
                text(
                    "INSERT INTO candidates (source_id, url, record_key, fetched_url, title, organisations, "
                    "countries, "
                    "regions, keywords, extra, provenance, criteria, tags, status, gone_at_source, changed_since_review, "
                    "record_hash, curator_edits, version_id) VALUES (:s, :url, :key, 'http://oai/p1', :title, '[]', '[]', "
                    "'[]', '[]', '{}', '{}', '{}', '{}', 'accepted', false, false, :hash, '{}', 1)"
                ),
                {"s": SOURCE, "url": url, "key": key, "title": f"Seed banks {n}", "hash": f"h{n}"},
            )
    command.upgrade(alembic_config(engine), "heads")

    with transaction(engine) as session:
        keys = [c.identity_key for c in session.scalars(select(Candidate).order_by(Candidate.id))]
    assert keys == [
        "url:https://www.thegef.org/projects-operations/projects/10235",
        "key:oai:datadryad.org:10255/dryad.87899",
        "key:oai:datadryad.org:10255/dryad.63781",
        "url:http://hdl.handle.net/10255/dryad.63781",
    ], "the oldest row keeps a repeated key"
    with transaction(engine) as session:
        outcomes = [_store(session, key, url, f"h{n}", f"Seed banks {n}") for n, (url, key) in enumerate(OLD_ROWS[:2])]
        count = session.scalar(select(Candidate.id).order_by(Candidate.id.desc()).limit(1))
        statuses = set(session.scalars(select(Candidate.status)))
    assert outcomes == [Outcome.NOT_MODIFIED, Outcome.NOT_MODIFIED], "a re-crawl finds the migrated rows"
    assert count == len(OLD_ROWS) and statuses == {"accepted"}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert sqlite_triggers_present(conn), "the table rebuild kept full-text search in sync"
            found = conn.execute(text("SELECT count(*) FROM candidates_fts WHERE candidates_fts MATCH 'seed'"))
            assert found.scalar() == 4
