"""Near-duplicate clusters on real records: the GCF projects API and the GCF funded-activities XLSX
describe the same projects, GEF lists some projects twice, Climate-ADAPT re-publishes AdapteCCA
case studies (sometimes retitled), UNDP ELSA has one article in three languages. Members link to
one cluster id; nothing is deleted; unrelated records stay apart."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http import Headers
from scrapy.responsetypes import responsetypes
from sqlalchemy import Engine, event, func, select

from harvester.classify.duplicates import DupRecord, clusters, title_key, url_key
from harvester.classify.zero_shot import VERSION as ZERO_SHOT_VERSION
from harvester.crawl.offline import candidates_from_response
from harvester.crawl.spider_loader import spider_class_for
from harvester.extraction.item import extract_item
from harvester.items import CandidateItem
from harvester.recordings.fixtures import load_capture
from harvester.recordings.replay_build import build_replay
from harvester.recordings.warc import RecordedResponse
from harvester.registry import load_registry
from harvester.settings import get_settings
from harvester.stages import apply_hashes
from pipelines.store import candidate_values
from storage.clusters import FingerprintCache, link_duplicates, recompute_clusters
from storage.db import session_factory, transaction, upgrade
from storage.model_store import retrain
from storage.models import Candidate, Decision, DuplicateKey, Source
from storage.queue import upsert_candidate
from tests.conftest import run_crawl


@cache
def records(source_id: str) -> dict[str, CandidateItem]:
    """Every record of a source's capture through the real spider and extraction (no classification)."""
    spec = load_registry()[source_id]
    out = {}
    for ref in spec.replay:
        capture = load_capture(ref.fixture, ref.url)
        headers = Headers(capture.headers())
        response = responsetypes.from_args(headers=headers, url=capture.url, body=capture.body)(
            url=capture.url,
            status=200,
            headers=headers,
            body=capture.body,
            request=Request(capture.url, meta={"window": 0, "window_records": 0}),
        )
        for item in spider_class_for(spec)().records(response):
            extract_item(item, spec)
            item.body = None
            apply_hashes(item)
            out[item.record_key or item.url] = item
    return out


def dup(key: str, item: CandidateItem) -> DupRecord:
    return DupRecord(
        key,
        item.source_id,
        item.canonical_url or item.url,
        item.title,
        item.organisations,
        item.countries,
        "\n".join(p for p in (item.summary, item.text) if p),
    )


def cluster_of(found: dict, key: str) -> set[str]:
    return {k for k, c in found.items() if c == found.get(key)} if key in found else {key}


def test_gcf_api_and_xlsx_describe_the_same_projects() -> None:
    api, xlsx = records("gcf_projects"), records("gcf_funded_activities")
    assert api["FP001"].title == xlsx["FP001"].title  # same project, two sources
    assert api["FP001"].organisations != xlsx["FP001"].organisations  # full name vs "Profonanpe"
    found = clusters([dup(f"api:{k}", i) for k, i in api.items()] + [dup(f"xlsx:{k}", i) for k, i in xlsx.items()])
    assert cluster_of(found, "api:FP001") == {"api:FP001", "xlsx:FP001"}
    assert found["api:FP001"] != found["api:FP002"]
    sizes = Counter(found.values())
    assert set(sizes.values()) == {2}  # only pairs: each API project with its XLSX row
    paired = {k.split(":", 1)[1] for k in found}
    assert len(paired) == len(found) // 2 == len(set(api) & set(xlsx)) == 208
    assert not any(k.startswith("xlsx:") for k in found if k.split(":", 1)[1] not in api)


def test_gef_project_listed_twice_joins_but_same_title_elsewhere_stays_apart() -> None:
    gef = records("gef_projects")
    # Same title, country and agency, approved in different years: one project listed twice.
    assert gef["11044"].title == gef["10898"].title
    assert (gef["11044"].published, gef["10898"].published) == (None, "2023")
    # Same generic title for two countries: two projects.
    assert gef["9879"].title == gef["9289"].title == "Enhancing Financial Sustainability of the Protected Area System"
    assert (gef["9879"].countries, gef["9289"].countries) == (["GE"], ["AL"])
    # Same title, both global, different agencies: two projects.
    assert gef["11039"].title == gef["11036"].title
    keys = ["11044", "10898", "9879", "9289", "11039", "11036", "10233"]
    found = clusters([dup(k, gef[k]) for k in keys])
    assert found == {"11044": "dup-10898", "10898": "dup-10898"}


def test_gef_export_clusters_only_repeated_listings() -> None:
    gef = records("gef_projects")
    found = clusters([dup(k, i) for k, i in gef.items()])
    groups: dict[str, list[str]] = {}
    for k, c in found.items():
        groups.setdefault(c, []).append(k)
    assert len(groups) == 16
    for members in groups.values():  # one title and one country set (a programme listing none joins its child)
        items = [gef[k] for k in members]
        assert len({title_key(i.title) for i in items}) == 1
        assert len({tuple(sorted(i.countries)) for i in items if i.countries}) <= 1
    assert "9879" not in found and "9289" not in found
    # "Clearing House Mechanism Enabling Activity" exists for 40 countries: never one cluster.
    chm = [k for k, i in gef.items() if i.title == "Clearing House Mechanism Enabling Activity"]
    assert len(chm) == 40
    assert len({found.get(k, k) for k in chm}) == 40


def test_climate_adapt_republished_adaptecca_cases_cluster_even_when_retitled() -> None:
    ca, es = records("climate_adapt_cases"), records("adaptecca_cases")
    ca_by_title = {i.title: k for k, i in ca.items()}
    es_by_title = {i.title: k for k, i in es.items()}
    found = clusters([dup(f"ca:{k}", i) for k, i in ca.items()] + [dup(f"es:{k}", i) for k, i in es.items()])
    same = (
        "ca:"
        + ca_by_title[
            "Sand Motor – building with nature solution to improve coastal protection along "
            "Delfland coast (the Netherlands)"
        ],
        "es:"
        + es_by_title[
            "Sand Motor – building with nature solution to improve coastal protection along "
            "Delfland coast (the Netherlands)"
        ],
    )
    assert cluster_of(found, same[0]) == set(same)
    retitled = (
        "ca:" + ca_by_title["Urban stormwater management in Augustenborg, Malmö"],
        "es:" + es_by_title["Urban storm water management in Augustenborg, Malmö"],
    )
    assert cluster_of(found, retitled[0]) == set(retitled)
    # Two Malmö case studies about different things stay apart.
    other = (
        "es:"
        + es_by_title[
            "Optimization of the mix of private and public funding to realise climate adaptation measures in Malmö"
        ]
    )
    assert found[other] != found[retitled[0]]
    assert Counter(found.values()).most_common(1)[0][1] == 2  # pairs only, no snowballing
    assert sum(1 for k in found if k.startswith("ca:")) == 80


def test_one_article_in_three_languages_is_one_cluster() -> None:
    spec = load_registry()["elsa_undp"]
    items = []
    for ref in spec.replay:
        capture = load_capture(ref.fixture, ref.url)
        if capture.url in spec.start_urls:
            continue
        items += candidates_from_response(
            spec, RecordedResponse(capture.url, 200, capture.headers(), capture.body)
        ).items
    assert sorted(i.language for i in items) == ["es", "fr", "ru"]
    assert len({title_key(i.title) for i in items}) == 3  # translated titles
    assert {url_key(i.url) for i in items} == {"elsa-undp.github.io/elsar/articles/elsaR.html"}
    found = clusters([dup(i.language or "", i) for i in items])
    assert found == {"es": "dup-es", "fr": "dup-es", "ru": "dup-es"}


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://www.greenclimate.fund/projects/FP001", "greenclimate.fund/projects/FP001"),
        ("http://greenclimate.fund/projects/FP001/?utm_source=x", "greenclimate.fund/projects/FP001"),
        ("https://elsa-undp.github.io/elsar/ru/articles/elsaR.html", "elsa-undp.github.io/elsar/articles/elsaR.html"),
        ("https://fr.example.org/programme/42?lang=fr&page=2", "example.org/programme/42?page=2"),
        ("https://example.org/export.csv#FP001", "example.org/export.csv#FP001"),
        ("https://www.iucn.org/fr/", None),  # a home page names a site, not a record
    ],
)
def test_url_key_drops_what_does_not_name_the_record(url: str, key: str | None) -> None:
    assert url_key(url) == key


def store(engine: Engine, item: CandidateItem, cache: FingerprintCache | None = None) -> tuple[int, str | None]:
    with transaction(engine) as session:
        cid = upsert_candidate(
            session,
            source_id=item.source_id,
            url=item.canonical_url or item.url,
            record_hash=item.record_hash or "",
            run_id=None,
            initial_status="pending",
            values=candidate_values(item),
        ).candidate_id
        return cid, link_duplicates(session, cid, cache=cache)


def retitled_copy(item: CandidateItem, n: int) -> CandidateItem:
    """The same case study republished under another URL and title."""
    copy = dataclasses.replace(
        item,
        url=f"https://example.org/republished/{n}",
        canonical_url=None,
        record_key=None,
        title=f"Republished {n}: {item.title}",
    )
    apply_hashes(copy)
    return copy


def test_a_cached_fingerprint_is_not_used_once_its_candidate_was_edited(db_engine: Engine) -> None:
    with transaction(db_engine) as session:
        session.add(Source(id="climate_adapt_cases", name="c", kind="listing", config_hash="x"))
    cases = list(records("climate_adapt_cases").values())
    original, unrelated = cases[0], cases[1]
    cache = FingerprintCache()
    first, cluster = store(db_engine, original, cache)
    assert cluster is None and cache.entries
    with transaction(db_engine) as session:  # a curator rewrites it: its version changes, its index keys stay
        row = session.get(Candidate, first)
        assert row is not None
        row.summary, row.text = unrelated.summary, unrelated.text

    copy_id, cluster = store(db_engine, retitled_copy(original, 1), cache)
    assert cluster is None  # compared with the edited text, not the cached fingerprint of the old one
    assert cache.misses >= 1
    _, cluster = store(db_engine, retitled_copy(original, 2), cache)
    assert cluster == f"dup-{copy_id}"  # the copies still find each other, through the cache
    assert cache.hits >= 1


def test_a_page_joins_a_large_cluster_by_comparing_one_of_its_members(db_engine: Engine) -> None:
    with transaction(db_engine) as session:
        session.add(Source(id="climate_adapt_cases", name="c", kind="listing", config_hash="x"))
    original = next(iter(records("climate_adapt_cases").values()))
    ids = [store(db_engine, retitled_copy(original, n))[0] for n in range(40)]
    cache = FingerprintCache()  # a new crawl: nothing cached yet
    _, cluster = store(db_engine, retitled_copy(original, 99), cache)
    assert cluster == f"dup-{ids[0]}"
    assert len(cache.entries) == 2  # its own fingerprint and one member's, not the 40 members'
    report = recompute_clusters(db_engine)  # comparing every pair gives the same cluster
    assert (report.clusters, report.largest, report.changed) == (1, 41, 0)


def test_the_candidates_sharing_a_pages_keys_are_read_from_an_index_alone(db_engine: Engine) -> None:
    # once per stored page, over every candidate of every bucket of its keys: a table lookup per indexed key
    # made storing a page of a site of near-identical pages cost 23 ms more
    with transaction(db_engine) as session:
        session.add(Source(id="climate_adapt_cases", name="c", kind="listing", config_hash="x"))
    original = next(iter(records("climate_adapt_cases").values()))
    for n in range(3):
        store(db_engine, retitled_copy(original, n))
    statements: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        if statement.startswith("SELECT candidates.id") and "FROM duplicate_keys" in statement:
            statements.append((statement, parameters))

    event.listen(db_engine, "before_cursor_execute", capture)
    try:
        store(db_engine, retitled_copy(original, 3))
    finally:
        event.remove(db_engine, "before_cursor_execute", capture)
    [(statement, parameters)] = statements
    with db_engine.connect() as conn:
        if db_engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_bitmapscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            # on a tiny table the planner may prefer the (candidate, key) index: either way, no row is read
            assert any("Index Only Scan" in line and "on duplicate_keys" in line for line in plan.splitlines()), plan
        else:
            plan = " ".join(r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "COVERING INDEX ix_duplicate_keys_key_candidate" in plan, plan


def test_store_links_a_new_record_to_its_existing_near_duplicate(db_engine: Engine) -> None:
    with transaction(db_engine) as session:
        session.add_all(
            [
                Source(id=s, name=s, kind="api", config_hash="x")
                for s in ("gcf_projects", "gcf_funded_activities", "gef_projects")
            ]
        )
    api, xlsx, gef = records("gcf_projects"), records("gcf_funded_activities"), records("gef_projects")
    ids = {}
    for key in ("FP001", "FP002", "FP091"):
        ids[f"api:{key}"], cluster = store(db_engine, api[key])
        assert cluster is None  # nothing to match yet
    ids["gef:10593"], cluster = store(db_engine, gef["10593"])  # South Tarawa Water Supply, GEF co-finances it
    assert cluster == f"dup-{ids['api:FP091']}"
    for key in ("FP001", "FP091"):
        ids[f"xlsx:{key}"], cluster = store(db_engine, xlsx[key])
        assert cluster == f"dup-{ids[f'api:{key}']}"
    with session_factory(db_engine)() as session:
        rows = {c.id: c.duplicate_cluster for c in session.scalars(select(Candidate))}
        keys = session.scalar(select(func.count()).select_from(DuplicateKey))
    assert rows == {
        ids["api:FP001"]: f"dup-{ids['api:FP001']}",
        ids["api:FP002"]: None,
        ids["api:FP091"]: f"dup-{ids['api:FP091']}",
        ids["gef:10593"]: f"dup-{ids['api:FP091']}",
        ids["xlsx:FP001"]: f"dup-{ids['api:FP001']}",
        ids["xlsx:FP091"]: f"dup-{ids['api:FP091']}",
    }
    assert keys == 12  # URL and title key of each of the 6 (no body text)

    report = recompute_clusters(db_engine)  # the whole database again: same clusters, nothing deleted
    assert (report.candidates, report.clusters, report.clustered, report.changed) == (6, 2, 5, 0)
    assert report.cross_source == 2 and report.largest == 3
    with session_factory(db_engine)() as session:
        assert {c.id: c.duplicate_cluster for c in session.scalars(select(Candidate))} == rows
        assert session.scalar(select(func.count()).select_from(DuplicateKey)) == 12


@pytest.mark.slow
def test_crawl_clusters_gcf_sources_and_scores_with_the_trained_model(harvester_env: Path) -> None:
    upgrade()
    replay = get_settings().replay_cache_dir
    registry = load_registry()
    build_replay([registry["gcf_projects"], registry["gcf_funded_activities"]], replay)
    first = run_crawl("gcf_projects", replay=replay)
    assert first.returncode == 0, first.stderr[-2000:]
    with transaction() as session:  # curators decide on the API records: accept adaptation, reject energy
        rows = session.scalars(select(Candidate).order_by(Candidate.id)).all()
        for c in rows[:60]:
            accept = any("adaptation" in k.lower() for k in c.keywords)
            c.status = "accepted" if accept else "rejected"
            session.add(
                Decision(
                    candidate_id=c.id,
                    actor="curator",
                    from_status="pending",
                    to_status=c.status,
                    reason_code=None if accept else "not_cbd_relevant",
                    field_diff={},
                )
            )
    version = retrain().version
    second = run_crawl("gcf_funded_activities", replay=replay)
    assert second.returncode == 0, second.stderr[-2000:]
    with session_factory()() as session:
        xlsx = session.scalars(select(Candidate).where(Candidate.source_id == "gcf_funded_activities")).all()
        api = {c.record_key: c for c in session.scalars(select(Candidate).where(Candidate.source_id == "gcf_projects"))}
        total = session.scalar(select(func.count()).select_from(Candidate))
    assert len(xlsx) == 286 and total == 286 + 209
    assert {c.classifier_version for c in xlsx} == {version}
    assert {c.classifier_version for c in api.values()} == {ZERO_SHOT_VERSION}  # crawled before any model
    by_key = {c.record_key: c for c in xlsx}
    assert by_key["FP001"].duplicate_cluster == api["FP001"].duplicate_cluster == f"dup-{api['FP001'].id}"
    assert sum(1 for c in xlsx if c.duplicate_cluster) == 209 - 1  # FP091 in the API only once in the XLSX


def test_cli_dedupe_recomputes_clusters_over_the_database(harvester_env: Path) -> None:
    from click.testing import CliRunner

    from harvester.cli import cli
    from storage.db import get_engine

    upgrade()
    engine = get_engine()
    with transaction(engine) as session:
        session.add_all(
            [Source(id=s, name=s, kind="api", config_hash="x") for s in ("gcf_projects", "gcf_funded_activities")]
        )
    ids = []
    for item in (
        records("gcf_projects")["FP001"],
        records("gcf_projects")["FP002"],
        records("gcf_funded_activities")["FP001"],
    ):
        with transaction(engine) as session:  # stored without linking, as before this feature existed
            ids.append(
                upsert_candidate(
                    session,
                    source_id=item.source_id,
                    url=item.canonical_url or item.url,
                    record_hash=item.record_hash or "",
                    run_id=None,
                    initial_status="pending",
                    values=candidate_values(item),
                ).candidate_id
            )
    runner = CliRunner()
    first = runner.invoke(cli, ["classify", "dedupe", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {
        "candidates": 3,
        "clusters": 1,
        "clustered": 2,
        "changed": 2,
        "cross_source": 1,
        "largest": 2,
    }
    with session_factory(engine)() as session:
        assert [c.duplicate_cluster for c in session.scalars(select(Candidate).order_by(Candidate.id))] == [
            f"dup-{ids[0]}",
            None,
            f"dup-{ids[0]}",
        ]
    again = runner.invoke(cli, ["classify", "dedupe"])
    assert again.output == (
        "3 candidates: 2 in 1 near-duplicate clusters (1 across sources, largest 2); 0 cluster assignments changed\n"
    )


def test_a_key_shared_by_more_than_max_bucket_candidates_is_not_compared_on(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.clusters.MAX_BUCKET", 1)
    with transaction(db_engine) as session:
        session.add(Source(id="climate_adapt_cases", name="c", kind="listing", config_hash="x"))
    original = next(iter(records("climate_adapt_cases").values()))
    copies = [
        dataclasses.replace(original, url=f"https://example.org/mirror/{n}", canonical_url=None, record_key=None)
        for n in (1, 2)
    ]  # same title and text: the same keys
    first, _ = store(db_engine, original)
    _, cluster = store(db_engine, copies[0])
    assert cluster == f"dup-{first}"  # every shared key holds one candidate: compared
    _, cluster = store(db_engine, copies[1])
    assert cluster is None  # every shared key now holds two: too generic, not compared
