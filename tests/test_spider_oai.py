"""The ``oai`` spider through the real Scrapy stack against a local server answering with recorded
OAI-PMH responses (fixtures/formats/oai): resumptionToken chains, from/until windows committed one by
one, resume after a failed window, deleted records and ``noRecordsMatch``."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from harvester.dedupe import record_hash
from harvester.registry import load_registry
from storage.db import session_factory, transaction
from storage.models import Candidate, CrawlRun, Decision, FetchedPage, HarvestWindow
from storage.queue import upsert_candidate
from storage.runs import ensure_source
from tests.conftest import run_crawl
from tests.recorded_server import RecordedServer, Route, path_of, query_of

pytestmark = pytest.mark.slow


SOURCE = "test_source"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"
WINDOW_1 = ("2015-05-14T00:00:00Z", "2015-05-15T00:00:00Z")
WINDOW_2 = ("2015-05-15T00:00:00Z", "2015-05-16T00:00:00Z")
DRYAD = ["dryad_ListRecords_p1.xml", "dryad_ListRecords_p2.xml", "dryad_ListRecords_p3.xml"]
ERASMUS = "erasmus-dspace_ListRecords_with-deleted.xml"
NO_RECORDS = "mla-commons_error_noRecordsMatch.xml"
XML = {"Content-Type": "text/xml;charset=UTF-8"}


# --- what the recorded files hold, read with lxml independently of the spider -------------------


def oai_records(path: Path) -> list[etree._Element]:
    return list(etree.parse(str(path)).getroot().iter(f"{OAI}record"))


def identifier(record: etree._Element) -> str:
    return record.findtext(f"{OAI}header/{OAI}identifier").strip()


def is_deleted(record: etree._Element) -> bool:
    return record.find(f"{OAI}header").get("status") == "deleted"


def has_metadata(record: etree._Element) -> bool:
    """Real Dublin Core metadata; Dryad's withdrawn items carry only ``dc:status`` "Item is not available"."""
    metadata = record.find(f"{OAI}metadata")
    return metadata is not None and any(
        e.tag != f"{DC}status" for e in metadata.iter() if isinstance(e.tag, str) and e.tag.startswith(DC)
    )


def ids_with_metadata(path: Path) -> set[str]:
    return {identifier(r) for r in oai_records(path) if not is_deleted(r) and has_metadata(r)}


def live_records(path: Path) -> int:
    """Live records with metadata, one per OAI identifier: the Erasmus file lists hdl:1765/1152, /1153
    and /1154 with the same metadata and the same handle (http://hdl.handle.net/1765/1154); they are
    three records at the partner, so three candidates (the dedupe stage clusters them as duplicates)."""
    return len({identifier(r) for r in oai_records(path) if not is_deleted(r) and has_metadata(r)})


# --- set-up -----------------------------------------------------------------------------------------


def write_source(registry: Path, base_url: str) -> None:
    registry.mkdir(exist_ok=True)
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: OAI-PMH test source
        kind: oai
        start_urls: ["{base_url}/oai"]
        verified: false
        verification: "local test server"
        politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 4}}
        oai:
          metadata_prefix: oai_dc
          from: "2015-05-14T00:00:00Z"
          until: "2015-05-16T00:00:00Z"
          window_days: 1
        """),
        encoding="utf-8",
    )


def crawl(registry: Path) -> None:
    result = run_crawl(SOURCE, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def dryad_route(fixtures: Path, window_2: Callable[[], tuple[int, bytes]]) -> Route:
    """Window 1 is the recorded Dryad chain, window 2 whatever ``window_2`` answers."""
    oai = fixtures / "formats" / "oai"

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path_of(path) != "/oai":
            return None
        q = query_of(path)
        assert q.get("verb") == "ListRecords", path
        token = q.get("resumptionToken")
        if token is not None:
            page = {"oai_dc/100": DRYAD[1], "oai_dc/200": DRYAD[2]}.get(token.rsplit("//", 1)[-1])
            return (200, XML, (oai / page).read_bytes()) if page else None
        assert q.get("metadataPrefix") == "oai_dc", path
        window = (q.get("from"), q.get("until"))
        if window == WINDOW_1:
            return 200, XML, (oai / DRYAD[0]).read_bytes()
        if window == WINDOW_2:
            status, body = window_2()
            return status, XML if status == 200 else {"Content-Type": "text/plain"}, body
        return None

    return route


def is_window(path: str, window: tuple[str, str]) -> bool:
    q = query_of(path)
    return (q.get("from"), q.get("until")) == window


def is_token(path: str) -> bool:
    return "resumptionToken" in query_of(path)


def candidates_by_fetched_url() -> dict[str, list[Candidate]]:
    out: dict[str, list[Candidate]] = {}
    with session_factory()() as session:
        for c in session.scalars(select(Candidate).where(Candidate.source_id == SOURCE)):
            out.setdefault(c.fetched_url, []).append(c)
    return out


def windows_done() -> dict[tuple[str, str], int]:
    with session_factory()() as session:
        return {
            (w.window_from, w.window_until): w.records
            for w in session.scalars(select(HarvestWindow).where(HarvestWindow.source_id == SOURCE))
        }


def duplicate_records() -> list[tuple[str, str, int]]:
    """Records stored twice: candidates sharing a record key (several may share a landing page)."""
    with session_factory()() as session:
        return [
            tuple(r)
            for r in session.execute(
                select(Candidate.source_id, Candidate.record_key, func.count())
                .group_by(Candidate.source_id, Candidate.record_key)
                .having(func.count() > 1)
            )
        ]


# --- tests ------------------------------------------------------------------------------------------


def test_resumption_chain_gives_one_candidate_per_record_with_metadata(
    registry: Path, fixtures_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    oai = fixtures_dir / "formats" / "oai"
    server = recorded_server(dryad_route(fixtures_dir, lambda: (200, (oai / ERASMUS).read_bytes())))
    write_source(registry, server.url)
    crawl(registry)

    served = server.served("/oai")
    assert len(served) == 4, served
    assert is_window(served[0], WINDOW_1)
    assert query_of(served[1])["resumptionToken"].endswith("//oai_dc/100")
    assert query_of(served[2])["resumptionToken"].endswith("//oai_dc/200")
    assert is_window(served[3], WINDOW_2), "the empty <resumptionToken/> ends window 1, then window 2 opens"

    per_file = [ids_with_metadata(oai / name) for name in DRYAD]
    expected = set().union(*per_file)
    assert [len(ids) for ids in per_file] == [72, 73, 17]
    assert len(expected) == 162 == sum(len(ids) for ids in per_file)

    by_page = candidates_by_fetched_url()
    window_1_pages = [f"{server.url}{path}" for path in served[:3]]
    stored = [c for page in window_1_pages for c in by_page.get(page, [])]
    assert len(stored) == 162
    assert {c.record_key for c in stored} == expected, "exactly one candidate per record with metadata"
    assert [len(by_page.get(page, [])) for page in window_1_pages] == [72, 73, 17]
    assert len({c.url for c in stored}) == 162
    # A newer Dryad version lists its predecessor's handle first: it keeps its own landing page.
    newer = next(c for c in stored if c.record_key == "oai:datadryad.org:10255/dryad.87899")
    older = next(c for c in stored if c.record_key == "oai:datadryad.org:10255/dryad.63781")
    assert newer.url == "http://hdl.handle.net/10255/dryad.87899"
    assert older.url == "http://hdl.handle.net/10255/dryad.63781"
    assert older.title == newer.title == "S10975"

    unavailable = {identifier(r) for name in DRYAD for r in oai_records(oai / name) if not has_metadata(r)}
    assert len(unavailable) == 132
    assert not unavailable & {c.record_key for cs in by_page.values() for c in cs}

    assert windows_done() == {WINDOW_1: 294, WINDOW_2: 81}
    assert duplicate_records() == []
    # Three Erasmus records whose only link is the same handle stay three candidates.
    shared = [c.record_key for cs in by_page.values() for c in cs if c.url == "http://hdl.handle.net/1765/1154"]
    assert sorted(shared) == ["hdl:1765/1152", "hdl:1765/1153", "hdl:1765/1154"]
    with session_factory()() as session:
        run = session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE)).one()
    assert run.status == "finished"


def test_run_interrupted_between_windows_resumes_at_the_unfinished_window(
    registry: Path, fixtures_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    oai = fixtures_dir / "formats" / "oai"
    healthy = {"window_2": False}

    def window_2() -> tuple[int, bytes]:
        return (200, (oai / ERASMUS).read_bytes()) if healthy["window_2"] else (503, b"Service Unavailable")

    server = recorded_server(dryad_route(fixtures_dir, window_2))
    write_source(registry, server.url)

    # First run: window 2 fails every time (retried, then given up).
    crawl(registry)
    first_log = server.served("/oai")
    assert sum(is_window(p, WINDOW_1) for p in first_log) == 1
    assert sum(is_window(p, WINDOW_2) for p in first_log) >= 1
    assert windows_done() == {WINDOW_1: 294}, "only the finished window is committed"
    first_count = sum(len(cs) for cs in candidates_by_fetched_url().values())
    assert first_count == 162
    with session_factory()() as session:
        failed = session.scalars(select(FetchedPage).where(FetchedPage.http_status == 503)).all()
    assert len(failed) == 1 and is_window(failed[0].url.split(server.url, 1)[1], WINDOW_2)

    # A candidate harvested earlier for a record the repository has since deleted.
    deleted = [identifier(r) for r in oai_records(oai / ERASMUS) if is_deleted(r)]
    assert deleted == ["hdl:1765/1160", "hdl:1765/1161"]
    spec = load_registry()[SOURCE]
    with transaction() as session:
        ensure_source(
            session,
            SOURCE,
            spec.name,
            spec.kind.value,
            spec.verified,
            spec.enabled,
            record_hash(json.loads(spec.model_dump_json())),
        )
        gone_id = upsert_candidate(
            session,
            source_id=SOURCE,
            url="http://hdl.handle.net/1765/1160",
            record_hash="0" * 64,
            run_id=None,
            initial_status="pending",
            values={"record_key": deleted[0], "fetched_url": "http://hdl.handle.net/1765/1160"},
        ).candidate_id

    # Second run with a healthy server: only window 2 is asked for.
    server.clear()
    healthy["window_2"] = True
    crawl(registry)
    second_log = server.served("/oai")
    assert not any(is_window(p, WINDOW_1) or is_token(p) for p in second_log), "window 1 is not fetched again"
    assert [is_window(p, WINDOW_2) for p in second_log] == [True]

    window_2_count = live_records(oai / ERASMUS)
    assert window_2_count == 79  # 81 records: 2 deleted
    by_page = candidates_by_fetched_url()
    assert len(by_page[server.url + second_log[0]]) == window_2_count
    total = sum(len(cs) for cs in by_page.values())
    assert total == first_count + window_2_count + 1  # + the candidate inserted above
    assert duplicate_records() == []
    assert windows_done() == {WINDOW_1: 294, WINDOW_2: 81}

    with session_factory()() as session:
        gone = session.get(Candidate, gone_id)
        assert gone is not None, "a deleted record's candidate is kept"
        assert gone.gone_at_source is True and gone.gone_since is not None
        decisions = session.scalars(select(Decision).where(Decision.candidate_id == gone_id)).all()
        assert [(d.reason_code, d.note) for d in decisions] == [("gone_at_source", "deleted at source")]
        keys = set(session.scalars(select(Candidate.record_key).where(Candidate.source_id == SOURCE)))
        assert deleted[1] not in keys, "a deleted record never becomes a new candidate"
        runs = session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE).order_by(CrawlRun.id)).all()
    assert len(runs) == 2 and runs[1].status == "finished"
    assert runs[1].stats["gone"] == 1


def test_no_records_match_is_a_completed_empty_window(
    registry: Path, fixtures_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    oai = fixtures_dir / "formats" / "oai"

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path_of(path) != "/oai" or is_token(path):
            return None
        if is_window(path, WINDOW_1):
            return 200, XML, (oai / NO_RECORDS).read_bytes()
        if is_window(path, WINDOW_2):
            return 200, XML, (oai / ERASMUS).read_bytes()
        return None

    server = recorded_server(route)
    write_source(registry, server.url)
    crawl(registry)

    served = server.served("/oai")
    assert [is_window(p, WINDOW_1) for p in served] == [True, False]
    assert is_window(served[1], WINDOW_2), "the harvest goes on to the next window"
    assert windows_done() == {WINDOW_1: 0, WINDOW_2: 81}
    with session_factory()() as session:
        page = session.scalars(select(FetchedPage).where(FetchedPage.url == server.url + served[0])).one()
        run = session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE)).one()
        assert session.scalar(select(func.count()).select_from(Candidate)) == 79  # 81 records but the 2 deleted
    assert (page.http_status, page.error) == (200, None)
    assert run.status == "finished"
    assert run.stats["errors"] == 0, run.stats
