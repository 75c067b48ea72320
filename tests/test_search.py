"""Full-text search of the queue (SQLite FTS5, PostgreSQL tsvector) on real GCF records, and what a curator may type."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, delete, select, text, update

from harvester.items import CandidateItem
from pipelines.store import candidate_values
from storage.db import alembic_config, make_engine, transaction, upgrade
from storage.models import Candidate
from storage.queue import QueueFilter, count_candidates, queue_page, upsert_candidate
from storage.runs import ensure_source
from storage.search import parse_query, sqlite_triggers_present

WETLANDS = "Building the Resilience of Wetlands in the Province of Datem del Marañón, Peru"
HOSTILE = [
    '"',
    '""',
    '"unclosed phrase',
    "title:wetlands",
    "wetlands NOT",
    "AND OR NOT",
    "NEAR(a b)",
    "(((",
    "*",
    "^wetlands",
    "wet* -lands",
    "a & b | !c",
    "'; DROP TABLE candidates; --",
    "\\",
    "' ''",
    "wetlands:*",
    "<-> <2>",
    "\x00",
    "ــ",
    "🙂 emoji",
]


@pytest.fixture
def engine(db_engine: Engine, gcf_items: list[CandidateItem]) -> Engine:
    with transaction(db_engine) as session:
        ensure_source(session, "gcf_projects", "GCF", "api", True, True, "h")
        for item in gcf_items[:60]:
            upsert_candidate(
                session,
                source_id=item.source_id,
                url=item.canonical_url or item.url,
                record_hash=item.record_hash or "h",
                run_id=None,
                initial_status="pending",
                values=candidate_values(item),
            )
    return db_engine


def titles(engine: Engine, q: str, **filters: str) -> list[str]:
    with transaction(engine) as session:
        return [c.title for c in queue_page(session, QueueFilter(q=q, **filters), limit=100).rows]


def test_user_input_becomes_quoted_terms_with_a_prefix_on_the_last_word() -> None:
    query = parse_query('Wetlands "climate information" resil')
    assert query is not None
    assert query.fts5() == '"wetlands" "climate information" "resil"*'
    assert query.tsquery() == "('wetlands') & ('climate' <-> 'information') & ('resil':*)"
    assert parse_query("wetlands ").fts5() == '"wetlands"'  # a finished word is not a prefix
    assert parse_query("wetlands x").fts5() == '"wetlands" "x"'  # nor a one-letter one
    assert parse_query("¿¡ -- !!") is None


def test_search_finds_words_of_title_text_and_organisation(engine: Engine) -> None:
    assert titles(engine, "wetlands datem") == [WETLANDS]
    assert titles(engine, "Datem Wetlands") == [WETLANDS]  # every word, any order
    assert WETLANDS in titles(engine, "Peruvian Trust Fund")  # the organisation
    assert titles(engine, "wetlands nosuchword") == []


def test_last_word_matches_as_a_prefix_and_quoted_phrases_keep_their_order(engine: Engine) -> None:
    assert titles(engine, "datem wetl") == [WETLANDS]
    assert titles(engine, "wetl ") == []
    assert titles(engine, '"Province of Datem"') == [WETLANDS]
    assert titles(engine, '"Datem of Province"') == []


def test_search_combines_with_the_other_filters_and_keeps_the_ranking(engine: Engine) -> None:
    found = titles(engine, "energy")
    assert len(found) >= 5
    with transaction(engine) as session:
        scores = [c.score for c in queue_page(session, QueueFilter(q="energy"), limit=100).rows]
        assert scores == sorted(scores, reverse=True)
        assert count_candidates(session, QueueFilter(q="energy", min_score=0.5)) == len([s for s in scores if s >= 0.5])
    assert titles(engine, "wetlands", status="accepted") == []


def test_accents_and_case_in_the_query_match_the_record(engine: Engine) -> None:
    assert titles(engine, "MARAÑÓN") == [WETLANDS]
    if engine.dialect.name == "sqlite":  # FTS5 unicode61 remove_diacritics; PostgreSQL 'simple' keeps accents
        assert titles(engine, "maranon") == [WETLANDS]


def test_nothing_a_curator_types_breaks_the_search_syntax(engine: Engine) -> None:
    for typed in HOSTILE:
        assert isinstance(titles(engine, typed), list), typed  # no syntax error: every term is quoted or dropped
    assert titles(engine, "wetlands OR nosuchword") == []  # operators are words like any other
    assert titles(engine, 'datem" OR "x') == []
    assert titles(engine, "(datem) wetlands*") == [WETLANDS]


def test_the_index_follows_edits_and_deletes(engine: Engine) -> None:
    with transaction(engine) as session:
        row = session.scalars(select(Candidate).where(Candidate.title == WETLANDS)).one()
        row.title = "Humedales resilientes en Loreto"
    assert titles(engine, "wetlands datem") == []
    assert titles(engine, "humedales loreto") == ["Humedales resilientes en Loreto"]
    with transaction(engine) as session:
        session.execute(update(Candidate).where(Candidate.title.like("Humedales%")).values(summary="turberas"))
    assert titles(engine, "turberas") == ["Humedales resilientes en Loreto"]
    with transaction(engine) as session:
        session.execute(delete(Candidate).where(Candidate.title.like("Humedales%")))
    assert titles(engine, "humedales") == []


def test_the_migration_indexes_rows_that_existed_before_it(tmp_path, gcf_items: list[CandidateItem]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    command.upgrade(alembic_config(engine), "0004")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sources (id, name, kind, verified, enabled, config_hash) "
                "VALUES ('gcf_projects', 'GCF', 'api', 1, 1, 'h')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO candidates (source_id, url, fetched_url, title, organisations, countries, regions, keywords, "
                "extra, provenance, criteria, tags, status, gone_at_source, changed_since_review, record_hash, "
                "curator_edits, version_id) VALUES ('gcf_projects', 'https://x.org/1', 'https://x.org/', :title, '[]', "
                "'[]', '[]', '[]', '{}', '{}', '{}', '{}', 'pending', 0, 0, 'h', '{}', 1)"
            ),
            {"title": WETLANDS},
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert sqlite_triggers_present(conn)
    assert titles(engine, "datem") == [WETLANDS]
    engine.dispose()


def test_sqlite_sync_triggers_survive_the_whole_migration_chain(db_engine: Engine) -> None:
    """A later batch migration that re-creates ``candidates`` would drop them silently: this fails first."""
    if db_engine.dialect.name != "sqlite":
        with db_engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_candidates_search_vector'"))
        return
    with db_engine.connect() as conn:
        assert sqlite_triggers_present(conn)
