"""The ``sitemap`` kind on recorded real sitemaps (fixtures/formats/sitemap, see its SOURCES.md and
index.jsonl).

Most recorded sitemaps have absolute ``<loc>`` URLs on their real hosts, which a crawl of a local
server must not (and, with ``allowed_domains``, would not) fetch: those are tested through
``spiders.sitemap.parse_sitemap`` directly. The Hugo sitemap index and its two children have
relative ``<loc>`` values (a real defect of that site: baseURL unset), so they are crawled from a
local server, with recorded HTML pages (fixtures/formats/multilingual) as the detail pages.
Expected counts are computed here with lxml, independently of ``parse_sitemap``."""

from __future__ import annotations

import gzip
import io
import re
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

import spiders.sitemap
from harvester.extraction.structured import StructuredBodyError
from spiders.sitemap import parse_sitemap
from storage.db import session_factory
from storage.models import Candidate, CrawlRun, FetchedPage
from tests.conftest import run_crawl
from tests.recorded_server import RecordedServer, Route, path_of

pytestmark = pytest.mark.slow

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
SOURCE = "test_sitemap"
XML = {"Content-Type": "application/xml"}
HTML = {"Content-Type": "text/html"}


@pytest.fixture(scope="module")
def sitemap_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "formats" / "sitemap"


@pytest.fixture(scope="module")
def html_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "formats" / "multilingual"


def lxml_entries(body: bytes) -> list[tuple[str, str | None]]:
    """(loc, lastmod) of every <url>/<sitemap> child, read with plain lxml (iterparse, gunzipped)."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    out = []
    for _, node in etree.iterparse(io.BytesIO(body), tag=(f"{SM}url", f"{SM}sitemap")):
        loc, lastmod = node.findtext(f"{SM}loc"), node.findtext(f"{SM}lastmod")
        out.append((loc.strip(), lastmod.strip() if lastmod else None))
        node.clear()
    return out


# --- parse_sitemap on the recorded files ------------------------------------------------------


def test_hugo_index_and_children_keep_relative_locs_and_lastmods(sitemap_dir: Path) -> None:
    kind, entries = parse_sitemap((sitemap_dir / "hugo-18f_sitemap-index.xml").read_bytes())
    assert kind == "index"
    assert entries == [("fr/sitemap.xml", "2017-04-09T10:58:08-04:00"), ("en/sitemap.xml", "2017-04-14T11:25:05-04:00")]
    for name, count, with_lastmod in (("hugo-18f_en_sitemap.xml", 13, 10), ("hugo-18f_fr_sitemap.xml", 8, 5)):
        body = (sitemap_dir / name).read_bytes()
        kind, entries = parse_sitemap(body)
        assert kind == "urlset"
        assert entries == lxml_entries(body)
        assert (len(entries), sum(1 for _, m in entries if m)) == (count, with_lastmod)
    en = dict(parse_sitemap((sitemap_dir / "hugo-18f_en_sitemap.xml").read_bytes())[1])
    assert en["/post/chapter-6/"] == "2017-04-14T11:25:05-04:00"
    assert en["/post/"] == "2017-03-02T12:00:00-05:00"
    assert en["/about/"] is None


def test_gzip_sitemap_parses_like_its_plain_twin(sitemap_dir: Path) -> None:
    plain = (sitemap_dir / "sitemaps-org_sitemap.xml").read_bytes()
    packed = (sitemap_dir / "sitemaps-org_sitemap.xml.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b"
    assert parse_sitemap(packed) == parse_sitemap(plain)
    kind, entries = parse_sitemap(packed)
    assert kind == "urlset"
    assert entries == lxml_entries(plain)
    assert len(entries) == 84
    assert entries[0] == ("https://www.sitemaps.org/", "2016-11-21")
    assert entries[-1] == ("https://www.sitemaps.org/zh_TW/terms.html", "2016-11-21")
    assert {lastmod for _, lastmod in entries} == {"2016-11-21"}


def test_lastmod_values_are_carried(sitemap_dir: Path) -> None:
    body = (sitemap_dir / "hebdenbridgetimes_sitemap-article-2015-18.xml").read_bytes()
    kind, entries = parse_sitemap(body)
    assert (kind, len(entries)) == ("urlset", 74)
    assert entries == lxml_entries(body)
    assert entries[0] == (
        "http://www.hebdenbridgetimes.co.uk/news/local/video-tour-de-yorkshire-in-calderdale-1-7242580",
        "2015-05-03T18:51:50+01:00",
    )
    assert all(lastmod for _, lastmod in entries)
    kind, children = parse_sitemap((sitemap_dir / "tripadvisor_sitemap-index.xml").read_bytes())
    assert kind == "index"
    assert [m for _, m in children] == [
        "2023-06-15T17:26:39Z",
        "2023-06-15T17:27:34Z",
        "2023-06-15T17:27:52Z",
        "2023-09-17T18:50:38Z",
    ]
    _, news = parse_sitemap((sitemap_dir / "shinpaideshou_news-sitemap.xml").read_bytes())
    assert len(news) == 3 and all(m is None for _, m in news), "no <lastmod> in the news sitemap"


def test_the_50000_url_child_is_capped_at_50000(sitemap_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = (sitemap_dir / "tripadvisor_hotel-review_sitemap.xml.gz").read_bytes()
    reference = lxml_entries(body)
    assert len(reference) == 50_000
    kind, entries = parse_sitemap(body)
    assert kind == "urlset"
    assert len(entries) == spiders.sitemap.MAX_URLS == 50_000
    assert entries == reference
    assert entries[0] == (
        "https://www.tripadvisor.com/Hotel_Review-g1904151-d4770620-Reviews-Camping_du_Lac-Caurel_"
        "Cotes_d_Armor_Brittany.html",
        None,
    )
    assert spiders.sitemap.parse_sitemap_capped(body)[2] == 0, "exactly at the cap: nothing left out"
    monkeypatch.setattr(spiders.sitemap, "MAX_URLS", 49_999)  # the cap, not the file, ends the list
    assert parse_sitemap(body)[1] == reference[:49_999]
    assert spiders.sitemap.parse_sitemap_capped(body)[2] == 1, "what the cap leaves out is counted, not hidden"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/laughs/&lol9;</loc></url></urlset>
"""


def external_entity(system_id: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "{system_id}">]>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<url><loc>/xxe/&xxe;</loc></url></urlset>\n"
    ).encode()


def test_entity_tricks_are_refused_without_expanding(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET", encoding="utf-8")
    for body in (
        BILLION_LAUGHS,
        gzip.compress(BILLION_LAUGHS),
        external_entity(secret.as_uri()),
        external_entity("http://127.0.0.1:9/leak"),
    ):
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(StructuredBodyError) as refused:
                parse_sitemap(body)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert time.monotonic() - started < 2
        assert peak < 5 * 1024 * 1024, f"{peak} bytes: the entities were expanded"
        assert "TOPSECRET" not in str(refused.value) and "lollollol" not in str(refused.value)


# --- crawls of the relative Hugo sitemaps on a local server ------------------------------------

# Detail pages: each sitemap URL the crawl may fetch answers with a different recorded HTML page.
PAGES = {
    "/post/chapter-6/": "elsa-undp_article-elsaR_es.html",
    "/post/chapter-5/": "elsa-undp_article-elsaR_fr.html",
    "/post/chapter-4/": "elsa-undp_article-elsaR_ru.html",
    "/post/chapter-3/": "elsa-undp_index_en.html",
    "/post/chapter-2/": "elsa-undp_index_es.html",
    "/post/chapter-1/": "elsa-undp_index_fr.html",
    "/about/": "elsa-undp_index_ru.html",
    "/fr/post/chapter-1/": "xinhua_drug-supply_zh.html",
    "/fr/about/": "xinhuanet_wuhan_zh.html",
}
FOLLOW = r"/post/chapter-\d/$|/about/$|/xxe/"
SITEMAPS = {
    "/sitemap.xml": "hugo-18f_sitemap-index.xml",
    "/fr/sitemap.xml": "hugo-18f_fr_sitemap.xml",
    "/en/sitemap.xml": "hugo-18f_en_sitemap.xml",
}


def hugo_route(sitemap_dir: Path, html_dir: Path, override: dict[str, bytes] | None = None) -> Route:
    def route(path: str) -> tuple[int, dict[str, str], bytes] | None:
        path = path_of(path)
        if override and path in override:
            return 200, XML, override[path]
        if path in SITEMAPS:
            return 200, XML, (sitemap_dir / SITEMAPS[path]).read_bytes()
        if path in PAGES:
            return 200, HTML, (html_dir / PAGES[path]).read_bytes()
        return None

    return route


def write_source(registry: Path, start_urls: list[str], sitemap: str) -> None:
    urls = ", ".join(f'"{u}"' for u in start_urls)
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: Sitemap test source
        kind: sitemap
        start_urls: [{urls}]
        verified: false
        verification: "local test server"
        politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 4}}
        """)
        + sitemap,
        encoding="utf-8",
    )


def crawl(registry: Path) -> None:
    result = run_crawl(SOURCE, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def runs() -> list[CrawlRun]:
    with session_factory()() as session:
        return list(session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE).order_by(CrawlRun.id)))


def pages() -> dict[str, FetchedPage]:
    with session_factory()() as session:
        return {p.url: p for p in session.scalars(select(FetchedPage).where(FetchedPage.source_id == SOURCE))}


def candidates() -> dict[str, Candidate]:
    with session_factory()() as session:
        return {c.url: c for c in session.scalars(select(Candidate).where(Candidate.source_id == SOURCE))}


def followed(sitemap_dir: Path, after: str | None = None) -> dict[str, str | None]:
    """path -> lastmod of the children's URLs the follow rule (and ``after``) keeps, read with lxml."""
    out = {}
    for name in ("hugo-18f_fr_sitemap.xml", "hugo-18f_en_sitemap.xml"):
        for loc, lastmod in lxml_entries((sitemap_dir / name).read_bytes()):
            if re.search(FOLLOW, loc) and not (after and lastmod and lastmod[:10] < after):
                out[loc] = lastmod
    return out


def test_index_children_and_unchanged_lastmod_is_not_fetched_again(
    registry: Path, sitemap_dir: Path, html_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    server = recorded_server(hugo_route(sitemap_dir, html_dir))
    write_source(registry, [server.url + "/sitemap.xml"], f"sitemap: {{follow: ['{FOLLOW}']}}\n")
    expected = followed(sitemap_dir)
    assert set(expected) == set(PAGES) and len(expected) == 9
    with_lastmod = {p for p, m in expected.items() if m}
    assert with_lastmod == set(PAGES) - {"/about/", "/fr/about/"}

    crawl(registry)
    served = server.served()
    assert served[0] == "/sitemap.xml"
    assert set(served[1:3]) == {"/fr/sitemap.xml", "/en/sitemap.xml"}, "children come from the index"
    assert sorted(served[3:]) == sorted(PAGES), "every followed page once, nothing else"
    stored = candidates()
    assert {u.removeprefix(server.url) for u in stored} == set(PAGES)
    assert stored[server.url + "/post/chapter-6/"].title == "Un Ejemplo de Flujo de Trabajo ELSA"
    fetched = pages()
    assert fetched[server.url + "/post/chapter-6/"].sitemap_lastmod == "2017-04-14T11:25:05-04:00"
    assert fetched[server.url + "/fr/post/chapter-1/"].sitemap_lastmod == "2017-04-09T10:58:08-04:00"
    assert fetched[server.url + "/about/"].sitemap_lastmod is None
    assert {
        u.removeprefix(server.url): p.sitemap_lastmod for u, p in fetched.items() if u.removeprefix(server.url) in PAGES
    } == expected

    server.clear()
    crawl(registry)
    served = server.served()
    assert sorted(served) == sorted(["/sitemap.xml", "/fr/sitemap.xml", "/en/sitemap.xml", "/about/", "/fr/about/"])
    assert not with_lastmod & set(served), "unchanged lastmod: not fetched again"
    first, second = runs()
    assert first.status == second.status == "finished"
    assert first.stats["new"] == 9
    assert second.stats["new"] == 0 and second.stats["items"] == 0
    assert second.stats["pages_not_modified"] == 2, "the two pages without lastmod: same body hash"
    assert len(candidates()) == 9


def test_lastmod_after_filters_older_urls(
    registry: Path, sitemap_dir: Path, html_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    server = recorded_server(hugo_route(sitemap_dir, html_dir))
    write_source(
        registry, [server.url + "/sitemap.xml"], f"sitemap: {{follow: ['{FOLLOW}'], lastmod_after: '2017-04-12'}}\n"
    )
    expected = followed(sitemap_dir, after="2017-04-12")
    assert sorted(expected) == ["/about/", "/fr/about/", "/post/chapter-4/", "/post/chapter-5/", "/post/chapter-6/"]

    crawl(registry)
    details = [p for p in server.served() if p not in SITEMAPS]
    assert sorted(details) == sorted(expected)
    assert {u.removeprefix(server.url) for u in candidates()} == set(expected)


def test_hostile_sitemaps_are_refused_and_the_crawl_goes_on(
    registry: Path, sitemap_dir: Path, html_dir: Path, recorded_server: Callable[[Route], RecordedServer]
) -> None:
    """The index's fr child answers with a billion-laughs document and a second start URL with an
    external entity naming a URL on the same server: both are refused, the en child is crawled."""
    override = {"/fr/sitemap.xml": BILLION_LAUGHS}
    server = recorded_server(hugo_route(sitemap_dir, html_dir, override))
    override["/xxe.xml"] = external_entity(server.url + "/leak")
    write_source(
        registry, [server.url + "/sitemap.xml", server.url + "/xxe.xml"], f"sitemap: {{follow: ['{FOLLOW}']}}\n"
    )

    started = time.monotonic()
    crawl(registry)
    assert time.monotonic() - started < 60
    served = server.served()
    assert "/leak" not in served and not any(p.startswith(("/xxe/", "/laughs/")) for p in served)
    en_pages = {p for p in PAGES if not p.startswith("/fr/")}
    assert set(served) == {"/sitemap.xml", "/fr/sitemap.xml", "/en/sitemap.xml", "/xxe.xml"} | en_pages
    assert {u.removeprefix(server.url) for u in candidates()} == en_pages
    fetched = pages()
    for path in ("/fr/sitemap.xml", "/xxe.xml"):
        assert fetched[server.url + path].error.startswith("sitemap refused"), path
    (run,) = runs()
    assert run.status == "finished" and run.finish_reason == "finished"
    assert run.stats["errors"] == 2
