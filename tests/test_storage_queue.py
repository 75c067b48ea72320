"""Queue storage on SQLite and PostgreSQL: idempotent upsert, curator state kept, gone-at-source, run lock."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from storage.db import transaction
from storage.models import Candidate, CandidateStatus, CrawlRun, Decision, RunStatus
from storage.queue import Outcome, mark_missing_gone, upsert_candidate
from storage.runs import RunLockedError, ensure_source, finish_run, recover_stale, start_run

URL = "https://www.thegef.org/projects-operations/projects/10233"


def _upsert(engine: Engine, record_hash: str, title: str = "Wildlife trafficking in Madagascar",
            url: str = URL, fetched_url: str = "https://www.thegef.org/projects-operations/database") -> Outcome:
    with transaction(engine) as session:
        ensure_source(session, "gef_projects", "GEF", "export", True, True, "h")
        return upsert_candidate(session, source_id="gef_projects", url=url, record_hash=record_hash, run_id=None,
                                initial_status=CandidateStatus.PENDING,
                                values={"title": title, "fetched_url": fetched_url, "countries": ["MG"]}).outcome


def _count(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.scalar(select(func.count()).select_from(Candidate)) or 0


def test_same_record_twice_is_one_candidate_and_not_modified(db_engine: Engine) -> None:
    assert _upsert(db_engine, "h1") is Outcome.NEW
    assert _upsert(db_engine, "h1") is Outcome.NOT_MODIFIED
    assert _count(db_engine) == 1


def test_changed_record_updates_fields_but_keeps_the_curator_decision(db_engine: Engine) -> None:
    _upsert(db_engine, "h1")
    with transaction(db_engine) as session:
        row = session.scalars(select(Candidate)).one()
        row.status = CandidateStatus.ACCEPTED
    assert _upsert(db_engine, "h2", title="Wildlife trafficking in Madagascar, phase II") is Outcome.UPDATED
    with transaction(db_engine) as session:
        row = session.scalars(select(Candidate)).one()
        assert (row.title, row.status, row.changed_since_review) == (
            "Wildlife trafficking in Madagascar, phase II", "accepted", True)
        assert row.countries == ["MG"]


def test_records_missing_from_a_parsed_export_are_marked_gone_not_deleted(db_engine: Engine) -> None:
    other = "https://www.thegef.org/projects-operations/projects/11305"
    _upsert(db_engine, "h1")
    _upsert(db_engine, "h3", title="Lebanon transparency report", url=other)
    with transaction(db_engine) as session:
        gone = mark_missing_gone(session, "gef_projects", "https://www.thegef.org/projects-operations/database",
                                 {URL}, None)
    assert gone == 1
    with transaction(db_engine) as session:
        rows = {c.url: c.gone_at_source for c in session.scalars(select(Candidate))}
        reasons = session.scalars(select(Decision.reason_code)).all()
    assert rows == {URL: False, other: True}
    assert reasons == ["gone_at_source"]


def test_a_gone_record_that_comes_back_is_revived(db_engine: Engine) -> None:
    _upsert(db_engine, "h1")
    with transaction(db_engine) as session:
        mark_missing_gone(session, "gef_projects", "https://www.thegef.org/projects-operations/database", set(), None)
    assert _upsert(db_engine, "h1") is Outcome.UPDATED
    with transaction(db_engine) as session:
        assert session.scalars(select(Candidate.gone_at_source)).one() is False


def test_only_one_running_crawl_per_source(db_engine: Engine) -> None:
    with transaction(db_engine) as session:
        ensure_source(session, "gef_projects", "GEF", "export", True, True, "h")
        start_run(session, "gef_projects", "cli", replay=True)
    with pytest.raises(RunLockedError), transaction(db_engine) as session:
        start_run(session, "gef_projects", "cli", replay=True)


def test_a_run_left_by_a_dead_process_is_recovered_as_interrupted(db_engine: Engine) -> None:
    with transaction(db_engine) as session:
        ensure_source(session, "gef_projects", "GEF", "export", True, True, "h")
        run = start_run(session, "gef_projects", "cli", replay=True)
        run.pid = 2**22 + 12345  # no such process
    with transaction(db_engine) as session:
        assert recover_stale(session, "gef_projects") == 1
        second = start_run(session, "gef_projects", "cli", replay=True)
        finish_run(session, second.id, RunStatus.FINISHED, "finished", {"items": 0})
    with transaction(db_engine) as session:
        statuses = session.scalars(select(CrawlRun.status).order_by(CrawlRun.id)).all()
    assert statuses == ["interrupted", "finished"]
