"""Queue storage on SQLite and PostgreSQL: idempotent upsert, curator state kept, gone-at-source, run lock,
keyset pages of the ranked queue and bulk decisions."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event, func, select, text

from harvester.dedupe import candidate_key
from storage.db import transaction
from storage.decisions import Actor, BulkMark, DecisionError, decide, decide_all
from storage.models import Candidate, CandidateStatus, CrawlRun, Decision, RunStatus
from storage.queue import (
    RANK,
    Cursor,
    CursorError,
    Outcome,
    QueueFilter,
    filtered_query,
    mark_missing_gone,
    neighbours,
    queue_page,
    touch_page_candidates,
    upsert_candidate,
)
from storage.runs import RunLockedError, ensure_source, finish_run, recover_stale, start_run

URL = "https://www.thegef.org/projects-operations/projects/10233"


def _upsert(
    engine: Engine,
    record_hash: str,
    title: str = "Wildlife trafficking in Madagascar",
    url: str = URL,
    fetched_url: str = "https://www.thegef.org/projects-operations/database",
) -> Outcome:
    with transaction(engine) as session:
        ensure_source(session, "gef_projects", "GEF", "export", True, True, "h")
        return upsert_candidate(
            session,
            source_id="gef_projects",
            url=url,
            record_hash=record_hash,
            run_id=None,
            initial_status=CandidateStatus.PENDING,
            values={"title": title, "fetched_url": fetched_url, "countries": ["MG"]},
        ).outcome


def _count(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.scalar(select(func.count()).select_from(Candidate)) or 0


def test_same_record_twice_is_one_candidate_and_not_modified(db_engine: Engine) -> None:
    assert _upsert(db_engine, "h1") is Outcome.NEW
    assert _upsert(db_engine, "h1") is Outcome.NOT_MODIFIED
    assert _count(db_engine) == 1


def test_a_recrawl_that_changes_nothing_keeps_the_version_a_curator_has_open(db_engine: Engine) -> None:
    assert _upsert(db_engine, "h1") is Outcome.NEW
    with transaction(db_engine) as session:
        opened = session.scalars(select(Candidate.version_id)).one()
    for _ in range(3):
        assert _upsert(db_engine, "h1") is Outcome.NOT_MODIFIED
    with transaction(db_engine) as session:
        assert session.scalars(select(Candidate.version_id)).one() == opened
    assert _upsert(db_engine, "h2", title="Wildlife trafficking in Madagascar, phase 2") is Outcome.UPDATED
    with transaction(db_engine) as session:
        assert session.scalars(select(Candidate.version_id)).one() == opened + 1


def test_a_new_candidate_gets_its_values_and_the_column_defaults_for_the_rest(db_engine: Engine) -> None:
    assert _upsert(db_engine, "h1") is Outcome.NEW
    with transaction(db_engine) as session:  # another set of values, through the same reused statement
        upsert_candidate(
            session,
            source_id="gef_projects",
            url=URL + "/fr",
            record_hash="h2",
            run_id=None,
            initial_status=CandidateStatus.FILTERED,
            values={"fetched_url": URL, "summary": "Résumé", "criteria": {"active": {"score": 1.0}}, "score": 0.2},
        )
    with transaction(db_engine) as session:
        first, second = session.scalars(select(Candidate).order_by(Candidate.id)).all()
        assert (first.title, first.countries, first.status, first.version_id) == (
            "Wildlife trafficking in Madagascar",
            ["MG"],
            CandidateStatus.PENDING,
            1,
        )
        assert (first.regions, first.keywords, first.extra, first.curator_edits, first.criteria) == ([], [], {}, {}, {})
        assert (first.gone_at_source, first.changed_since_review, first.created_at is not None) == (False, False, True)
        assert (second.title, second.summary, second.countries, second.criteria, second.score, second.status) == (
            None,
            "Résumé",
            [],
            {"active": {"score": 1.0}},
            0.2,
            CandidateStatus.FILTERED,
        )


def test_changed_record_updates_fields_but_keeps_the_curator_decision(db_engine: Engine) -> None:
    _upsert(db_engine, "h1")
    with transaction(db_engine) as session:
        row = session.scalars(select(Candidate)).one()
        row.status = CandidateStatus.ACCEPTED
    assert _upsert(db_engine, "h2", title="Wildlife trafficking in Madagascar, phase II") is Outcome.UPDATED
    with transaction(db_engine) as session:
        row = session.scalars(select(Candidate)).one()
        assert (row.title, row.status, row.changed_since_review) == (
            "Wildlife trafficking in Madagascar, phase II",
            "accepted",
            True,
        )
        assert row.countries == ["MG"]


def test_records_missing_from_a_parsed_export_are_marked_gone_not_deleted(db_engine: Engine) -> None:
    other = "https://www.thegef.org/projects-operations/projects/11305"
    _upsert(db_engine, "h1")
    _upsert(db_engine, "h3", title="Lebanon transparency report", url=other)
    with transaction(db_engine) as session:
        gone = mark_missing_gone(
            session,
            "gef_projects",
            "https://www.thegef.org/projects-operations/database",
            {candidate_key(None, URL)},
            None,
        )
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


SCORES = [0.9, 0.5, None, 0.5, 0.7, None, 0.5, 0.1, None, 0.7, 0.0, 0.5, None, 0.9, 0.3, 0.5, 0.2]


def _ranked_queue(engine: Engine) -> list[int]:
    """Candidates with tied and missing scores, ids in the order the queue must show them."""
    with transaction(engine) as session:
        ensure_source(session, "gef_projects", "GEF", "export", True, True, "h")
        for i, score in enumerate(SCORES):
            upsert_candidate(
                session,
                source_id="gef_projects",
                url=f"{URL}?n={i}",
                record_hash=str(i),
                run_id=None,
                initial_status="pending" if i != 3 else "deferred",
                values={"title": f"record {i}", "fetched_url": URL, "score": score},
            )
        rows = session.execute(select(Candidate.id, Candidate.score).where(Candidate.status == "pending")).all()
    return [r.id for r in sorted(rows, key=lambda r: (r.score is None, -(r.score or 0), r.id))]


def test_keyset_pages_walk_the_ranked_queue_both_ways_unscored_last(db_engine: Engine) -> None:
    expected = _ranked_queue(db_engine)
    f = QueueFilter(status="pending")
    seen, after, pages = [], None, []
    with transaction(db_engine) as session:
        while True:
            page = queue_page(session, f, limit=4, after=after)
            seen += [c.id for c in page.rows]
            pages.append(page)
            if page.next is None:
                break
            after = Cursor.decode(page.next.encode())
        assert seen == expected
        assert [len(p.rows) for p in pages] == [4, 4, 4, 4]
        back, before = [], pages[-1].prev
        while before is not None:
            page = queue_page(session, f, limit=4, before=before)
            back = [c.id for c in page.rows] + back
            before = page.prev
        assert back == expected[:12]
        assert pages[0].prev is None


def test_previous_and_next_candidate_cross_into_the_unscored(db_engine: Engine) -> None:
    expected = _ranked_queue(db_engine)
    with transaction(db_engine) as session:
        rows = {c.id: c for c in session.scalars(select(Candidate))}
        walk = [neighbours(session, QueueFilter(status="pending"), rows[i]) for i in expected]
    assert walk == [
        (expected[n - 1] if n else None, expected[n + 1] if n + 1 < len(expected) else None)
        for n in range(len(expected))
    ]


def test_a_cursor_not_made_by_the_app_is_refused() -> None:
    for raw in ("", "x", "0.5", "nan_3", "0.5_x", "none_"):
        with pytest.raises(CursorError):
            Cursor.decode(raw)
    assert Cursor.decode(Cursor(None, 7).encode()) == Cursor(None, 7)
    assert Cursor.decode(Cursor(0.1 + 0.2, 7).encode()) == Cursor(0.1 + 0.2, 7)


def test_a_pages_records_are_looked_up_by_index_not_among_all_of_the_source(db_engine: Engine) -> None:
    # once per unchanged page (touch) and per re-parsed multi-record page (gone): a scan of the source's
    # candidates there made an unchanged re-crawl cost grow with the square of the source
    _upsert(db_engine, "h1")
    statements: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        if "fetched_url" in statement:
            statements.append((statement, parameters))

    event.listen(db_engine, "before_cursor_execute", capture)
    try:
        with transaction(db_engine) as session:
            touch_page_candidates(session, "gef_projects", "https://www.thegef.org/projects-operations/database", None)
            mark_missing_gone(
                session,
                "gef_projects",
                "https://www.thegef.org/projects-operations/database",
                {candidate_key(None, URL)},
                None,
            )
    finally:
        event.remove(db_engine, "before_cursor_execute", capture)
    assert len(statements) == 2
    with db_engine.connect() as conn:
        for statement, parameters in statements:
            if db_engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table would be read whole
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            else:
                plan = " ".join(r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "ix_candidates_source_fetched_url" in plan, plan


def test_queue_pages_are_read_from_the_queue_index_without_a_sort(db_engine: Engine) -> None:
    _ranked_queue(db_engine)
    with transaction(db_engine) as session:
        if db_engine.dialect.name == "postgresql":  # a tiny table would be read whole: make the index the only way
            session.execute(text("SET LOCAL enable_seqscan = off"))
            session.execute(text("SET LOCAL enable_sort = off"))
        f = QueueFilter(status="pending")
        first = filtered_query(f, db_engine.dialect.name).order_by(*RANK).limit(50)
        deep = (
            filtered_query(f, db_engine.dialect.name)
            .where(Candidate.score <= 0.5, (Candidate.score < 0.5) | (Candidate.id > 3))
            .order_by(*RANK)
            .limit(50)
        )
        any_status = filtered_query(QueueFilter(), db_engine.dialect.name).order_by(*RANK).limit(50)
        for query, index in (
            (first, "ix_candidates_queue"),
            (deep, "ix_candidates_queue"),
            (any_status, "ix_candidates_rank"),
        ):
            sql = str(query.compile(db_engine, compile_kwargs={"literal_binds": True}))
            if db_engine.dialect.name == "postgresql":
                plan = "\n".join(session.scalars(text(f"EXPLAIN {sql}")))
                assert index in plan and "Sort" not in plan, plan
            else:
                plan = " ".join(r[3] for r in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
                assert index in plan and "TEMP B-TREE" not in plan, plan


def test_bulk_decision_covers_every_batch_and_leaves_others_decisions_alone(db_engine: Engine) -> None:
    expected = _ranked_queue(db_engine)
    with transaction(db_engine) as session:
        mark = BulkMark.now(session)
    with transaction(db_engine) as session:  # another curator, after the confirmation
        decide(session, expected[5], "accept", Actor("grace"))
        decide(session, expected[6], "note", Actor("grace"), note="looking at it")
    with transaction(db_engine) as session:
        result = decide_all(
            session,
            QueueFilter(status="pending"),
            "reject",
            Actor("ada"),
            mark,
            reason="not_cbd_relevant",
            note="bulk action",
            batch=3,
        )
    assert result.decided == len(expected) - 2
    assert result.conflicts == [expected[6]]  # the accepted one left the filter; the noted one is a conflict
    with transaction(db_engine) as session:
        audit = session.execute(
            select(Decision.candidate_id, Decision.actor, Decision.to_status, Decision.reason_code).where(
                Decision.actor == "ada"
            )
        ).all()
        statuses = dict(session.execute(select(Candidate.id, Candidate.status)).all())
        versions = set(session.scalars(select(Candidate.version_id).where(Candidate.status == "rejected")))
    assert sorted(a.candidate_id for a in audit) == sorted(set(expected) - {expected[5], expected[6]})
    assert {(a.to_status, a.reason_code) for a in audit} == {("rejected", "not_cbd_relevant")}
    assert (statuses[expected[5]], statuses[expected[6]]) == ("accepted", "pending")
    assert versions == {2}


def test_bulk_reject_without_reason_is_refused(db_engine: Engine) -> None:
    _ranked_queue(db_engine)
    with pytest.raises(DecisionError), transaction(db_engine) as session:
        decide_all(session, QueueFilter(status="pending"), "reject", Actor("ada"), BulkMark.now(session))
