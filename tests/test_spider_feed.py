"""The ``feed`` kind on recorded real feeds (fixtures/formats/feed and two damaged ones in
fixtures/formats/odd, see their SOURCES.md): RSS 2.0, Atom, JSON Feed, RSS declared ISO-8859-1,
a GDACS feed whose UTF-8 BOM was double-encoded and a UOL feed in Latin-1 without any declaration.
Expected entry counts are computed here with lxml / json, independently of ``iter_feed``; a slow
test crawls one recorded feed from a local server twice (the second time answered with 304)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import select

from harvester.dedupe import canonical_url
from harvester.extraction.feeds import iter_feed
from storage.db import session_factory
from storage.models import Candidate, CrawlRun, FetchedPage
from tests.conftest import run_crawl
from tests.recorded_server import RecordedServer, path_of

ATOM = "{http://www.w3.org/2005/Atom}"
GDACS = "odd/gdacs_rss_double-encoded-bom.xml"
UOL = "odd/uol-noticias_undeclared-latin1.rss"
DOUBLE_ENCODED_BOM = "\ufeff".encode().decode("latin-1").encode()  # C3 AF C2 BB C2 BF


@pytest.fixture(scope="module")
def formats(fixtures_dir: Path) -> Path:
    return fixtures_dir / "formats"


def expected_count(path: Path) -> int:
    """Entries counted without ``iter_feed``: JSON ``items``, Atom ``entry`` or RSS ``item`` elements."""
    body = path.read_bytes()
    if path.suffix == ".json":
        return len(json.loads(body)["items"])
    if body.startswith(DOUBLE_ENCODED_BOM):
        body = body[len(DOUBLE_ENCODED_BOM) :]
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    if not body.lstrip().startswith(b"<?xml"):  # no declaration: read as the Latin-1 it is
        root = etree.fromstring(body.decode("cp1252").encode("utf-8"), parser=parser)
    else:
        root = etree.fromstring(body, parser=parser)
    if root.tag == f"{ATOM}feed":
        return len(root.findall(f"{ATOM}entry"))
    return len(root.findall("channel/item"))


# file -> (entry count, first entry's title, link, published) as recorded
FEEDS = {
    "feed/guardian_us.rss": (
        55,
        "Trump State of the Union address promised unity but emphasized discord",
        "https://www.theguardian.com/us-news/2018/jan/31/donald-trump-state-of-the-union-address-unity-discord",
        "Wed, 31 Jan 2018 07:26:05 GMT",
    ),
    "feed/dailyssrn_rss-all-2.0.xml": (
        363,
        "Hub-urile analitice în intelligence - platforme colaborative pentru promovarea interesului "
        "național (Analytical Hubs in Intelligence -  Collaborative Platforms for Promoting the National "
        "Interest)",
        "http://papers.ssrn.com/sol3/papers.cfm?abstract_id=2619167",
        "Mon, 06 Jul 2015 12:52:52 UTC",
    ),
    "feed/heise_developer.atom": (
        15,
        "Java-Anwendungsserver: Red Hat gibt WildFly 10 frei",
        "http://www.heise.de/developer/meldung/Java-Anwendungsserver-Red-Hat-gibt-WildFly-10-frei-3088438.html"
        "?wt_mc=rss.developer.beitrag.atom",
        "2016-02-01T17:22:00+01:00",
    ),
    "feed/npr_technology_feed.json": (
        25,
        "Keller Rinaudo: How can delivery drones save lives?",
        "https://www.npr.org/2021/10/29/1050315385/keller-rinaudo-how-can-delivery-drones-save-lives"
        "?utm_medium=JSONFeed&utm_campaign=technology",
        "2021-10-29T10:26:00-04:00",
    ),
    "feed/inessential_feed.json": (
        20,
        "James Dempsey and the Breakpoints Benefit App Camp for Girls",
        "http://inessential.com/2017/06/02/james_dempsey_and_the_breakpoints_benefi",
        "2017-06-02T22:05:47-07:00",
    ),
    "feed/jn-pt_ultimas.rss": (
        40,
        "Mãe de utente é a nova presidente da Raríssimas",
        "http://feeds.jn.pt/~r/JN-ULTIMAS/~3/UBnb8Ra3Q1U/sonia-laig-e-a-nova-presidente-da-rarissimas-9021600.html",
        "Wed, 03 Jan 2018 13:47:00 GMT",
    ),
    GDACS: (
        2,
        "Green earthquake alert (Magnitude 5.8M, Depth:28.583km) in United States 10/12/2024 18:04 UTC, "
        "Few people affected in 100km.",
        "https://www.gdacs.org/report.aspx?eventtype=EQ&eventid=1457082",
        "Tue, 10 Dec 2024 18:09:57 GMT",
    ),
    UOL: (
        15,
        "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno",
        "https://noticias.uol.com.br/politica/eleicoes/2018/noticias/2018/09/24/"
        "ibope-bolsonaro-perde-de-haddad-ciro-e-alckmin-em-simulacoes-de-2-turno.htm",
        "Seg, 24 Set 2018 19:42:40 -0300",
    ),
}


def test_every_recorded_feed_is_covered(formats: Path) -> None:
    recorded = {f"feed/{p.name}" for p in (formats / "feed").iterdir() if p.suffix not in (".md", ".jsonl")}
    assert recorded | {GDACS, UOL} == set(FEEDS)


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_iter_feed_reads_every_entry(formats: Path, name: str) -> None:
    count, title, link, published = FEEDS[name]
    entries = list(iter_feed((formats / name).read_bytes()))
    assert len(entries) == count == expected_count(formats / name)
    first = entries[0]
    assert (first["title"], first["link"], first["published"]) == (title, link, published)
    assert all(e["link"] for e in entries)
    assert len({e["link"] for e in entries}) == count


def test_the_damaged_feeds_are_the_damage_their_provenance_describes(formats: Path) -> None:
    gdacs = (formats / GDACS).read_bytes()
    assert gdacs.startswith(DOUBLE_ENCODED_BOM + b"<?xml")
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(gdacs)
    uol = (formats / UOL).read_bytes()
    assert uol.startswith(b"<rss>")
    with pytest.raises(UnicodeDecodeError):
        uol.decode("utf-8")


@pytest.mark.parametrize("name", ["feed/jn-pt_ultimas.rss", UOL, GDACS])
def test_latin1_and_bom_damaged_feeds_have_no_mojibake(formats: Path, name: str) -> None:
    entries = list(iter_feed((formats / name).read_bytes()))
    for entry in entries:
        for key in ("title", "summary", "content"):
            value = entry.get(key) or ""
            assert "Ã" not in value and "Â" not in value and "\ufffd" not in value, (key, value[:80])
    if name != GDACS:  # Portuguese: accented letters came through as letters
        text = " ".join(e["title"] for e in entries)
        assert "ã" in text and "ç" in text


# --- a crawl of one recorded feed -----------------------------------------------------------

SOURCE = "test_feed"
FEED_FILE = "feed/guardian_us.rss"
FEED_PATH = "/us/rss"
ETAG = '"guardian-us-1"'


class ConditionalFeedServer(RecordedServer):
    """Serves one recorded feed with an ETag and answers 304 to a matching ``If-None-Match``;
    logs ``(path, If-None-Match, status)`` for every request."""

    def __init__(self, body: bytes) -> None:
        super().__init__(lambda path: None)
        self.body = body
        self.log: list[tuple[str, str | None, int]] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        base = super()._handler()

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_GET(self) -> None:
                sent_tag = self.headers.get("If-None-Match")
                if path_of(self.path) != FEED_PATH:
                    status, body = 404, b""
                elif sent_tag == ETAG:
                    status, body = 304, b""
                else:
                    status, body = 200, server.body
                with server._lock:
                    server.requests.append(self.path)
                    if path_of(self.path) != "/robots.txt":
                        server.log.append((self.path, sent_tag, status))
                self.send_response(status)
                self.send_header("ETag", ETAG)
                if status == 200:
                    self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def feed_server(formats: Path) -> Iterator[ConditionalFeedServer]:
    server = ConditionalFeedServer((formats / FEED_FILE).read_bytes())
    with server:
        yield server


def runs_json(source: str) -> list[dict]:
    from harvester.cli import cli

    result = CliRunner().invoke(cli, ["runs", "--json", "--source", source])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def crawl(registry: Path) -> None:
    result = run_crawl(SOURCE, env={"HARVESTER_REGISTRY_DIR": str(registry)}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_feed_crawl_stores_every_entry_then_gets_304(
    registry: Path, formats: Path, feed_server: ConditionalFeedServer
) -> None:
    start = feed_server.url + FEED_PATH
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: Feed test source
        kind: feed
        start_urls: ["{start}"]
        verified: false
        verification: "local test server"
        politeness: {{download_delay: 0, autothrottle: false}}
        """),
        encoding="utf-8",
    )

    # What the recorded feed holds, read with lxml: link -> written date of its pubDate.
    root = etree.fromstring((formats / FEED_FILE).read_bytes())
    items = root.findall("channel/item")
    expected = {
        canonical_url(i.findtext("link").strip()): parsedate_to_datetime(i.findtext("pubDate").strip())
        .date()
        .isoformat()
        for i in items
    }
    assert len(items) == len(expected) == 55

    crawl(registry)
    assert feed_server.log == [(FEED_PATH, None, 200)]
    with session_factory()() as session:
        stored = {c.url: c for c in session.scalars(select(Candidate).where(Candidate.source_id == SOURCE))}
        page = session.scalars(select(FetchedPage).where(FetchedPage.source_id == SOURCE)).one()
    assert len(stored) == 55
    assert {url: c.published for url, c in stored.items()} == expected
    first = stored[canonical_url(items[0].findtext("link").strip())]
    assert first.title == "Trump State of the Union address promised unity but emphasized discord"
    assert first.published == "2018-01-31"
    assert first.fetched_url == start
    assert (page.etag, page.record_count, page.http_status) == (ETAG, 55, 200)
    first_run = runs_json(SOURCE)[0]
    assert first_run["status"] == "finished"
    assert (first_run["stats"]["new"], first_run["stats"]["not_modified"]) == (55, 0)

    crawl(registry)
    assert feed_server.log[1:] == [(FEED_PATH, ETAG, 304)], "the stored ETag is sent; the server says 304"
    runs = runs_json(SOURCE)
    assert len(runs) == 2
    second = runs[0]
    assert second["status"] == "finished"
    assert second["stats"]["not_modified"] == 55 == len(items)
    assert second["stats"]["pages_not_modified"] == 1
    assert (second["stats"]["new"], second["stats"]["updated"], second["stats"]["items"]) == (0, 0, 0)
    assert second["stats"]["responses_by_status"] == {"304": 1, "404": 1}  # robots.txt: 404
    with session_factory()() as session:
        assert len(session.scalars(select(Candidate).where(Candidate.source_id == SOURCE)).all()) == 55
        rows = session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE).order_by(CrawlRun.id)).all()
    assert [r.stats["not_modified"] for r in rows] == [0, 55]
