"""Every feed dialect a partner may publish becomes one candidate per entry, keyed by the entry's id:
RSS 0.91 / 1.0 (RDF) / 2.0, Atom 0.3 / 1.0, ``xml:base``, HTML entities and a stray ``&``, Atom entries
without a link and JSON Feed items without a ``url``. The feeds are small ones written here (feedparser's
wheel ships no test corpus); each expectation is the value a reader of the feed sees, not the parser's output."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from harvester.crawl.offline import candidates_from_response
from harvester.dedupe import canonical_url
from harvester.extraction.feeds import entry_key, iter_feed
from harvester.recordings.warc import RecordedResponse
from harvester.registry import SourceSpec
from storage.db import transaction
from storage.models import Candidate, CandidateStatus
from storage.queue import Outcome, upsert_candidate
from storage.runs import ensure_source

FEED_URL = "https://partner.example.org/news/feed.xml"

RSS_091 = b"""<?xml version="1.0"?>
<rss version="0.91"><channel><title>Seed news</title><link>https://partner.example.org/</link>
<item><title>Seed banks in the Sahel</title><link>https://partner.example.org/a/1</link>
<description>Farmers exchange seeds.</description></item>
<item><title>Mangrove nurseries</title><link>https://partner.example.org/a/2</link>
<description>Coastal restoration.</description></item>
</channel></rss>"""

RSS_10_RDF = b"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://partner.example.org/rdf"><title>Crop biotech</title>
    <link>https://partner.example.org/</link><description>d</description>
    <items><rdf:Seq><rdf:li rdf:resource="https://partner.example.org/kc/1"/>
    <rdf:li rdf:resource="https://partner.example.org/kc/2"/></rdf:Seq></items></channel>
  <item rdf:about="https://partner.example.org/kc/1"><title>Drought-tolerant maize approved</title>
    <link>https://partner.example.org/kc/1</link><description>Kenya approves a variety.</description>
    <dc:date>2024-03-01</dc:date><dc:creator>ISAAA</dc:creator></item>
  <item rdf:about="https://partner.example.org/kc/2"><title>Biosafety training in Ghana</title>
    <link>https://partner.example.org/kc/2</link><description>Regulators trained.</description>
    <dc:date>2024-03-02</dc:date></item>
</rdf:RDF>"""

ATOM_03 = b"""<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#">
  <title>Old Atom</title><modified>2005-07-31T12:29:29Z</modified>
  <entry><title>Community forests</title><link rel="alternate" type="text/html" href="https://partner.example.org/cf"/>
    <id>tag:partner.example.org,2005:cf</id><issued>2005-07-31T12:29:29Z</issued>
    <summary>Forest user groups in Nepal.</summary></entry>
</feed>"""

ATOM_XML_BASE_NO_LINKS = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://partner.example.org/projects/">
  <title>Projects</title><id>urn:uuid:feed</id><updated>2024-01-01T00:00:00Z</updated>
  <entry><id>urn:uuid:p1</id><title>Wetland restoration</title><updated>2024-01-01T00:00:00Z</updated>
    <link href="wetlands/1"/><summary>Ramsar sites.</summary></entry>
  <entry xml:base="/other/"><id>urn:uuid:p2</id><title>Pollinator corridors</title>
    <updated>2024-01-02T00:00:00Z</updated><link href="pollinators"/><summary>Bees.</summary></entry>
  <entry><id>urn:uuid:p3</id><title>Coral gardening</title><updated>2024-01-03T00:00:00Z</updated>
    <summary>No page of its own.</summary></entry>
  <entry><id>urn:uuid:p4</id><title>Kelp forests</title><updated>2024-01-04T00:00:00Z</updated>
    <summary>No page either.</summary></entry>
</feed>"""

# HTML entities that XML does not define, and an unescaped ampersand: real feeds do this.
RSS_ENTITIES = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>News &amp; views</title><link>https://partner.example.org/</link>
<item><title>Biodiversit&eacute; &ndash; forests & farms</title><guid isPermaLink="false">n-1</guid>
<link>https://partner.example.org/n?id=1&lang=fr</link><description>Caf&eacute;&nbsp;agroforestry</description>
</item></channel></rss>"""

JSON_FEED_NO_URLS = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "Notes",
"items": [{"id": "note-1", "title": "Seed vault", "content_text": "Svalbard."},
          {"id": "note-2", "title": "Gene bank", "content_text": "Nairobi."}]}"""


def entries(body: bytes) -> list[dict]:
    return list(iter_feed(body, base_url=FEED_URL))


def test_rss_091_items_are_read() -> None:
    got = [(e["title"], e["link"], e["summary"]) for e in entries(RSS_091)]
    assert got == [
        ("Seed banks in the Sahel", "https://partner.example.org/a/1", "Farmers exchange seeds."),
        ("Mangrove nurseries", "https://partner.example.org/a/2", "Coastal restoration."),
    ]


def test_rss_10_rdf_items_are_records_not_dropped() -> None:
    got = entries(RSS_10_RDF)
    assert [(e["id"], e["title"], e["published"], e["authors"]) for e in got] == [
        ("https://partner.example.org/kc/1", "Drought-tolerant maize approved", "2024-03-01", ["ISAAA"]),
        ("https://partner.example.org/kc/2", "Biosafety training in Ghana", "2024-03-02", []),
    ]
    assert [e["summary"] for e in got] == ["Kenya approves a variety.", "Regulators trained."]


def test_atom_03_is_read() -> None:
    [entry] = entries(ATOM_03)
    assert (entry["id"], entry["title"], entry["link"], entry["summary"]) == (
        "tag:partner.example.org,2005:cf",
        "Community forests",
        "https://partner.example.org/cf",
        "Forest user groups in Nepal.",
    )


def test_xml_base_resolves_links_per_entry() -> None:
    got = entries(ATOM_XML_BASE_NO_LINKS)
    assert [e["link"] for e in got] == [
        "https://partner.example.org/projects/wetlands/1",
        "https://partner.example.org/other/pollinators",
        None,
        None,
    ]


def test_html_entities_and_a_stray_ampersand_do_not_refuse_the_feed() -> None:
    [entry] = entries(RSS_ENTITIES)
    assert entry["title"] == "Biodiversité – forests & farms"
    assert entry["link"] == "https://partner.example.org/n?id=1&lang=fr"
    assert entry["summary"] == "Café\xa0agroforestry"
    assert entry_key(entry) == "n-1"


def test_an_entry_without_id_or_link_is_keyed_by_its_content() -> None:
    a = {"id": None, "link": None, "title": "A", "published": "2024", "summary": "s", "content": None}
    b = {**a, "title": "B"}
    assert entry_key(a) == entry_key(dict(a)) != entry_key(b)
    assert entry_key(a).startswith("sha256:")


FEED_SPEC = SourceSpec.model_validate(
    {
        "id": "test_feed",
        "name": "test feed",
        "kind": "feed",
        "start_urls": [FEED_URL],
        "verified": False,
        "verification": "test",
    }
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [(ATOM_XML_BASE_NO_LINKS, 4), (JSON_FEED_NO_URLS, 2), (RSS_10_RDF, 2), (ATOM_03, 1), (RSS_ENTITIES, 1)],
    ids=["atom-without-links", "json-feed-without-urls", "rss-1.0", "atom-0.3", "entities"],
)
def test_each_entry_is_its_own_candidate_even_without_a_link(db_engine: Engine, body: bytes, expected: int) -> None:
    result = candidates_from_response(FEED_SPEC, RecordedResponse(FEED_URL, 200, [], body))
    assert len(result.items) == expected and result.failures == []
    with transaction(db_engine) as session:
        ensure_source(session, "test_feed", "test feed", "feed", False, True, "h")
        outcomes = [
            upsert_candidate(
                session,
                source_id=item.source_id,
                url=item.canonical_url or canonical_url(item.url),
                record_hash=item.record_hash or "",
                run_id=None,
                initial_status=CandidateStatus.PENDING,
                values={"record_key": item.record_key, "title": item.title, "fetched_url": item.fetched_url},
            ).outcome
            for item in result.items
        ]
        stored = session.scalars(select(Candidate.title)).all()
    assert outcomes == [Outcome.NEW] * expected, "a first run has only new records, none 'updated'"
    assert sorted(stored) == sorted(item.title for item in result.items)
