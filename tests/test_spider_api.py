"""The ``api`` spider's pagination through the real Scrapy stack against a local server answering
with recorded real API pages (fixtures/formats/api, see its SOURCES.md and index.jsonl): page
numbers (figshare), offsets (NSF awards, GBIF), paging only in the ``Link`` header (IUCN Red List)
and a ``next`` link that leads back to a page already fetched."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from storage.db import session_factory
from storage.models import Candidate, CrawlRun
from tests.conftest import run_crawl
from tests.recorded_server import RecordedServer, Route, path_of, query_of, recorded_headers

pytestmark = pytest.mark.slow


SOURCE = "test_source"
JSON = {"Content-Type": "application/json"}
IUCN_ORIGIN = "https://api.iucnredlist.org"
IUCN_PATH = "/api/v4/taxa/family/Sturnidae"


@pytest.fixture
def api_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "formats" / "api"


def original_url(api_dir: Path, name: str) -> str:
    """The URL a recorded file was fetched from (index.jsonl)."""
    for line in (api_dir / "index.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["file"] == name:
            return entry["url"]
    raise KeyError(name)


def local_url(server: RecordedServer, url: str) -> str:
    """The recorded URL's path and query on the local server."""
    rest = url.split("://", 1)[1]
    return server.url + rest[rest.index("/") :]


def crawl(registry: Path, start_url: str, api: str, record: str) -> None:
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: API test source
        kind: api
        start_urls: ["{start_url}"]
        verified: false
        verification: "local test server"
        politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 4}}
        """)
        + api
        + record,
        encoding="utf-8",
    )
    result = run_crawl(SOURCE, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def stored() -> dict[str, Candidate]:
    with session_factory()() as session:
        return {c.record_key or c.url: c for c in session.scalars(select(Candidate))}


def run_row() -> CrawlRun:
    with session_factory()() as session:
        return session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE)).one()


def records_in(api_dir: Path, name: str, path: str) -> list[dict[str, Any]]:
    data: Any = json.loads((api_dir / name).read_bytes())
    for part in path.split("."):
        data = data[part]
    return data


def test_page_number_paging_stops_at_the_empty_page(
    registry: Path, api_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    pages = {n: f"figshare_search_page{n}.json" for n in ("1", "2", "3")}
    first = original_url(api_dir, pages["1"])
    assert "page=" not in first and original_url(api_dir, pages["3"]).endswith("&page=3")

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path_of(path) != "/v1/articles/search" or query_of(path).get("search_for") != "*":
            return None
        name = pages.get(query_of(path).get("page", "1"))
        return (200, JSON, (api_dir / name).read_bytes()) if name else None

    server = recorded_server(route)
    crawl(
        registry,
        local_url(server, first),
        api="api: {records_path: items, pagination: {type: page, param: page, start: 1}}\n",
        record=textwrap.dedent("""\
              record:
                key: article_id
                url: DOI
                fields:
                  title: title
                  summary: {path: description, html: true}
                  published: published_date
                  organisations: "authors[].author_name"
              """),
    )

    served = [query_of(p)["page"] for p in server.served("/v1/")]
    assert served == ["1", "2", "3"], "stops at the empty page 3"
    counts = [len(records_in(api_dir, pages[n], "items")) for n in ("1", "2", "3")]
    assert counts == [10, 2, 0]
    candidates = stored()
    assert len(candidates) == 12 == json.loads((api_dir / pages["1"]).read_bytes())["items_found"]
    quartz = candidates["963308"]
    assert quartz.title == (
        "Quartz and calcite microfabric transitions in a pressure and temperature gradient, Sivrihisar, Turkey"
    )
    assert quartz.url == "http://dx.doi.org/10.6084/m9.figshare.963308"
    assert quartz.published == "2013-12-25"
    assert quartz.organisations == [
        "Donna L. Whitney",
        "Matthew T. Heizler",
        "Nicholas C.A. Seaton",
        "Christian Teyssier",
    ]
    assert quartz.summary.startswith("Interlayered quartzite and marble in the southern Sivrihisar Massif")
    assert "<p>" not in quartz.summary
    assert run_row().status == "finished"


def test_offset_paging_stops_at_the_short_last_page(
    registry: Path, api_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    """NSF awards: 25 a page, 1-based ``offset``; the 4-award page at offset 26 is the last one."""
    first = original_url(api_dir, "nsf_awards_first.json")
    assert original_url(api_dir, "nsf_awards_offset26.json") == first + "&offset=26"

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        q = query_of(path)
        if path_of(path) != "/services/v1/awards.json" or q.get("dateStart") != "04/17/2016":
            return None
        name = {"1": "nsf_awards_first.json", "26": "nsf_awards_offset26.json"}.get(q.get("offset", "1"))
        return (200, JSON, (api_dir / name).read_bytes()) if name else None

    server = recorded_server(route)
    crawl(
        registry,
        local_url(server, first),
        api=textwrap.dedent("""\
              api:
                records_path: response.award
                pagination: {type: offset, param: offset, start: 1, size: 25}
              """),
        record=textwrap.dedent("""\
              record:
                key: id
                url: "https://www.nsf.gov/awardsearch/showAward?AWD_ID={id}"
                fields:
                  title: title
                  organisations: awardeeName
                  published: date
                  amount: {path: fundsObligatedAmt, type: money}
              """),
    )

    assert [query_of(p)["offset"] for p in server.served("/services/")] == ["1", "26"]
    counts = [
        len(records_in(api_dir, n, "response.award")) for n in ("nsf_awards_first.json", "nsf_awards_offset26.json")
    ]
    assert counts == [25, 4]
    candidates = stored()
    assert len(candidates) == 29
    polar = candidates["1559691"]
    assert polar.title == "The Polar Geospatial Center: Community and Facility Support"
    assert polar.url == "https://www.nsf.gov/awardsearch/showAward?AWD_ID=1559691"
    assert polar.organisations == ["University of Minnesota-Twin Cities"]
    assert polar.published == "2016-04-18"
    assert polar.extra["amount"] == 2518120
    assert candidates["1551799"].fetched_url.endswith("&offset=26")


def test_offset_paging_with_limit_and_total_stops_at_max_pages(
    registry: Path, api_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    """GBIF download statistics: ``limit``/``offset`` from 0, ``count`` 5.3 million: only two pages
    were recorded, so ``max_pages: 2`` is what ends this crawl (never a third request)."""
    pages = {n: f"gbif_download-statistics_limit5_offset{n}.json" for n in ("0", "5")}
    assert original_url(api_dir, pages["5"]).endswith("?limit=5&offset=5")

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        q = query_of(path)
        if path_of(path) != "/v1/occurrence/download/statistics" or q.get("limit") != "5":
            return None
        name = pages.get(q.get("offset", "0"))
        return (200, JSON, (api_dir / name).read_bytes()) if name else None

    server = recorded_server(route)
    crawl(
        registry,
        local_url(server, original_url(api_dir, pages["0"])),
        api=textwrap.dedent("""\
              api:
                records_path: results
                pagination: {type: offset, param: offset, size_param: limit, size: 5, start: 0,
                             total_path: count, max_pages: 2}
              """),
        record=textwrap.dedent("""\
              record:
                key: datasetKey
                url: "https://www.gbif.org/dataset/{datasetKey}"
                fields:
                  title: datasetKey
                  downloads: {path: numberDownloads, type: int}
                  records: {path: totalRecords, type: int}
              """),
    )

    served = [(query_of(p)["offset"], query_of(p)["limit"]) for p in server.served("/v1/")]
    assert served == [("0", "5"), ("5", "5")]
    candidates = stored()
    assert len(candidates) == 10 == sum(len(records_in(api_dir, n, "results")) for n in pages.values())
    first = candidates["0000e36f-d0e9-46b0-aa23-cc1980f00515"]
    assert first.url == "https://www.gbif.org/dataset/0000e36f-d0e9-46b0-aa23-cc1980f00515"
    assert first.title == "0000e36f-d0e9-46b0-aa23-cc1980f00515"
    assert (first.extra["downloads"], first.extra["records"]) == (536, 78236)


def iucn_route(api_dir: Path, server: Callable[[], RecordedServer], pages: dict[str, str]) -> Route:
    """IUCN Red List v4: body and recorded headers; ``pages`` maps the ``page`` parameter to a file
    stem. Only the Link header's origin is mapped to the local server."""

    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path_of(path) != IUCN_PATH:
            return None
        stem = pages.get(query_of(path).get("page", ""))
        if stem is None:
            return None
        status, headers = recorded_headers(api_dir / f"{stem}.headers.json", IUCN_ORIGIN, server().url)
        return status, headers, (api_dir / f"{stem}.json").read_bytes()

    return route


IUCN_RECORD = textwrap.dedent("""\
    record:
      key: assessment_id
      url: url
      fields:
        title: assessment_id
        published: year_published
        taxon: {path: sis_taxon_id, type: int}
        scope: "scopes[].description.en"
    """)


def test_link_header_paging_stops_when_there_is_no_next(
    registry: Path, api_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    """Pages 1 and 2 and the last page (11) were recorded; page 11 answers the request for page 3
    (the one page 2's Link header names), and its Link header has no rel="next"."""
    holder: list[RecordedServer] = []
    pages = {
        "1": "iucn-redlist_sturnidae_page1",
        "2": "iucn-redlist_sturnidae_page2",
        "3": "iucn-redlist_sturnidae_page11",
    }
    server = recorded_server(iucn_route(api_dir, lambda: holder[0], pages))
    holder.append(server)
    for stem in pages.values():
        assert json.loads((api_dir / f"{stem}.json").read_bytes()).keys() == {"assessments", "filters"}
    last_link = recorded_headers(api_dir / f"{pages['3']}.headers.json", IUCN_ORIGIN, "")[1]["link"]
    assert 'rel="next"' not in last_link

    crawl(
        registry,
        local_url(server, original_url(api_dir, f"{pages['1']}.json")),
        api="api: {records_path: assessments, pagination: {type: link_header}}\n",
        record=IUCN_RECORD,
    )

    assert [query_of(p)["page"] for p in server.served(IUCN_PATH)] == ["1", "2", "3"]
    counts = [len(records_in(api_dir, f"{stem}.json", "assessments")) for stem in pages.values()]
    assert counts == [100, 100, 16]
    candidates = stored()
    assert len(candidates) == 216
    first = candidates["22850880"]
    assert first.url == "https://www.iucnredlist.org/species/22710921/22850880"
    assert first.title == "22850880"
    assert first.published == "2009"
    assert (first.extra["taxon"], first.extra["scope"]) == (22710921, "Global")
    assert run_row().status == "finished"


def test_next_link_back_to_a_fetched_page_does_not_loop(
    registry: Path, api_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    """Page 3 is answered with page 1's recording, whose Link header says next = page 2 again."""
    holder: list[RecordedServer] = []
    pages = {
        "1": "iucn-redlist_sturnidae_page1",
        "2": "iucn-redlist_sturnidae_page2",
        "3": "iucn-redlist_sturnidae_page1",
    }
    server = recorded_server(iucn_route(api_dir, lambda: holder[0], pages))
    holder.append(server)

    crawl(
        registry,
        local_url(server, original_url(api_dir, "iucn-redlist_sturnidae_page1.json")),
        api="api: {records_path: assessments, pagination: {type: link_header}}\n",
        record=IUCN_RECORD,
    )

    served = server.served(IUCN_PATH)
    assert [query_of(p)["page"] for p in served] == ["1", "2", "3"], "page 2 is not fetched twice"
    assert len(stored()) == 200
    run = run_row()
    assert run.status == "finished" and run.stats["requests"] <= 4  # robots.txt + 3 pages
