"""Hostile and broken input for the parsers and extractors: every case is refused with the declared
error type or yields clean text, never a crash, an expanded entity, a network fetch or a stored
half-record.

XML attacks are files in ``tests/badinput/xml/`` (``<format>-<attack>.xml``: billion laughs,
external entity, parameter entity, external DTD for sitemaps, RSS, Atom, OAI-PMH and XML exports).
HTML cases are generated here (some are megabytes). Each case names its expected outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harvester.extraction.feeds import iter_feed
from harvester.extraction.html import ExtractionError, extract_html
from harvester.extraction.item import extract_item
from harvester.extraction.normalise import clean_text, parse_date
from harvester.extraction.oai import parse_oai
from harvester.extraction.structured import StructuredBodyError, iter_xml_records, maybe_gunzip
from harvester.items import CandidateItem
from harvester.registry import SourceSpec
from spiders.sitemap import parse_sitemap
from tests.recorded_server import RecordedServer

XML_DIR = Path(__file__).parent / "badinput" / "xml"
XML_FILES = sorted(XML_DIR.glob("*.xml"))
PARSERS: dict[str, Callable[[bytes], Any]] = {
    "sitemap": parse_sitemap,
    "rss": lambda body: list(iter_feed(body)),
    "atom": lambda body: list(iter_feed(body)),
    "oai": lambda body: parse_oai(body).records,
    "export": lambda body: list(iter_xml_records(body, "record")),
}
SPEC = SourceSpec.model_validate(
    {
        "id": "bad_input",
        "name": "bad input",
        "kind": "listing",
        "start_urls": ["https://example.org/"],
        "verified": False,
        "verification": "test",
        "listing": {"item_links": "a::attr(href)"},
        "selectors": {"title": "h1::text"},
    }
)
TEXT = "Community seed banks train farmers to exchange local varieties across borders. " * 8


def page(body: str, title: str = "Seed banks", head: str = "") -> str:
    return (
        f"<html><head>{head}<title>{title}</title></head><body><h1>{title}</h1><main><p>{body}</p></main></body></html>"
    )


def test_the_xml_corpus_covers_every_format_and_attack() -> None:
    names = {f.stem for f in XML_FILES}
    for fmt in PARSERS:
        for attack in ("billion-laughs", "external-entity", "parameter-entity", "external-dtd"):
            assert f"{fmt}-{attack}" in names


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: p.stem)
def test_hostile_xml_is_refused_or_read_without_entities_or_network(path: Path) -> None:
    """Entity declarations are refused with ``StructuredBodyError``; an external DTD is never
    fetched (a canary server stands in for the DTD's host) and adds nothing to the text."""
    with RecordedServer(lambda p: (200, {"Content-Type": "application/xml-dtd"}, b'<!ENTITY x "pwned">')) as canary:
        body = path.read_bytes().replace(b"127.0.0.1:9", f"127.0.0.1:{canary.port}".encode())
        parse = PARSERS[path.stem.split("-", 1)[0]]
        if path.stem.endswith("external-dtd"):
            parsed = repr(parse(body))
            assert "plain" in parsed
        else:
            with pytest.raises(StructuredBodyError, match=r"entit|amplification"):
                parse(body)
            parsed = ""
        assert canary.requests == []
    assert "root:" not in parsed and "pwned" not in parsed and "lollol" not in parsed


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": 5}',
        b'{"items": "abc"}',
        b"[1, 2]",
        b'{"items": [',
        b"\x00\x01\x02",
        b"<rss><channel><item>",
        b"<html><body>not a feed</body></html>",
    ],
    ids=["items-int", "items-str", "json-list", "cut-json", "binary", "cut-xml", "html"],
)
def test_broken_feeds_raise_the_declared_error(body: bytes) -> None:
    with pytest.raises(StructuredBodyError):
        list(iter_feed(body))


def test_json_feed_entries_with_wrong_types_keep_only_what_fits() -> None:
    body = b'{"items": [7, {"id": "1", "title": "Seeds", "tags": 3, "authors": "x"}, {"tags": ["a", 1]}]}'
    entries = list(iter_feed(body))
    assert [(e["title"], e["categories"], e["authors"]) for e in entries] == [("Seeds", [], []), (None, ["a"], [])]


@pytest.mark.parametrize("body", [b"", b"<", b"<?xml version='1.0'?>", b"\xff\xfe\x00<", b"<OAI-PMH>"])
def test_broken_oai_responses_raise_the_declared_error(body: bytes) -> None:
    with pytest.raises(StructuredBodyError):
        parse_oai(body)


def test_a_gzip_bomb_sitemap_is_refused_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    import harvester.extraction.structured as structured

    monkeypatch.setattr(structured, "MAX_DECOMPRESSED", 1024 * 1024)
    bomb = gzip.compress(b"<" * (3 * 1024 * 1024))
    with pytest.raises(StructuredBodyError, match="expands beyond"):
        maybe_gunzip(bomb)
    with pytest.raises(StructuredBodyError, match="bad gzip"):
        maybe_gunzip(bomb[: len(bomb) // 2])


# --- HTML ----------------------------------------------------------------------------------------

REFUSED: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty body"),
    "whitespace": (b" \r\n\t \n", "empty body"),
    "binary served as HTML": (bytes(range(256)) * 40, "binary body"),
    "PNG served as HTML": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 200, "binary body"),
    "PDF served as HTML": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "no text"),
    "script only": (
        b"<html><head><script>var a=1;</script></head><body><script>alert(1)</script></body></html>",
        "no text",
    ),
    "over the page size cap": (page(TEXT * 2000).encode() + b"<p>" + b"x" * (9 * 1024 * 1024), "too large"),
    "100k nested divs": (b"<html><body>" + b"<div>" * 100_000 + TEXT.encode() + b"</div>" * 100_000, "no text"),
}

ACCEPTED: dict[str, tuple[bytes, str | None, str]] = {
    # name: (body, declared charset, text that must come out)
    "unclosed tags": (
        b"<html><title>Seed banks</title><body><h1>Seed banks<main><p>" + TEXT.encode() + b"<p><b><i>more",
        None,
        "exchange local varieties",
    ),
    "tag soup": (
        b"<p><table><b><tr>" + TEXT.encode() + b"</p></b><td></html><html><h1>Seed banks</h1>",
        None,
        "exchange local varieties",
    ),
    "huge attribute": (page(f'<span data-x="{"A" * 2_000_000}">{TEXT}</span>').encode(), None, "across borders"),
    "NUL byte late in the page": (page(TEXT * 10 + "\x00 after the NUL").encode(), None, "after the NUL"),
    "right-to-left Arabic": (
        page(
            "بنوك البذور المجتمعية تدرب المزارعين على تبادل الأصناف المحلية عبر الحدود. " * 6, title="بنوك البذور"
        ).encode(),
        "utf-8",
        "تبادل الأصناف المحلية",
    ),
    "right-to-left Hebrew with an override mark": (
        page("\u202eבנקי זרעים קהילתיים מלמדים חקלאים. " * 8).encode(),
        "utf-8",
        "בנקי זרעים",
    ),
    "mixed scripts": (
        page("Семенные банки 社区种子库 सामुदायिक बीज बैंक Community seed banks. " * 8).encode(),
        "utf-8",
        "社区种子库 सामुदायिक",
    ),
    "UTF-16 with BOM": (page(TEXT).encode("utf-16"), None, "exchange local varieties"),
    "cp1252 labelled UTF-8": (
        page(TEXT + " Atelier régional “semences”").encode("cp1252"),
        "utf-8",
        "Atelier régional “semences”",
    ),
    "charset in meta only (Latin-1)": (
        page(TEXT + " Gestión en Perú", head='<meta charset="iso-8859-1">').encode("latin-1"),
        None,
        "Gestión en Perú",
    ),
    "CDATA and comments": (
        page(f"<!-- {'-' * 1000} --><![CDATA[ x ]]>{TEXT}<!--unclosed").encode(),
        None,
        "exchange local varieties",
    ),
}


@pytest.mark.parametrize("name", REFUSED)
def test_unusable_pages_are_refused_with_a_reason(name: str) -> None:
    body, reason = REFUSED[name]
    started = time.monotonic()
    with pytest.raises(ExtractionError, match=reason):
        extract_item(
            CandidateItem(
                "bad_input", "https://example.org/p", "https://example.org/p", body=body, content_type="text/html"
            ),
            SPEC,
        )
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("name", ACCEPTED)
def test_broken_but_readable_pages_yield_clean_text(name: str) -> None:
    body, charset, expected = ACCEPTED[name]
    content_type = f"text/html; charset={charset}" if charset else "text/html"
    item = extract_item(
        CandidateItem(
            "bad_input", "https://example.org/p", "https://example.org/p", body=body, content_type=content_type
        ),
        SPEC,
    )
    text = " ".join(filter(None, (item.title, item.summary, item.text)))
    assert expected in text
    assert "\ufffd" not in text and "\x00" not in text
    for value in (item.title, item.summary, item.text):
        assert value is None or value == value.strip()


def test_extracted_values_of_a_hostile_page_carry_no_markup() -> None:
    hostile = page(
        TEXT + '<script>alert(1)</script><img src=x onerror="alert(2)"><iframe srcdoc="<b>x</b>">',
        title="Seeds <b>bold</b>",
    ).encode()
    found = extract_html(hostile, "https://example.org/p", {"title": "h1", "text": "main"})
    assert "alert(1)" not in str(found.values["text"]) and "<" not in str(found.values["text"])
    assert found.values["title"] == "Seeds bold"


# --- dates and text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0000-00-00",
        "9999-99-99",
        "31/02/2024",
        "2024-02-30",
        "2024-13-01",
        "",
        "null",
        "n/a",
        "99999999",
        "-1",
        "1e10",
        "\x00",
        "0",
        "x" * 10_000,
        10**20,
        -5,
        "٢٠٢٤-١٣-٠١",
    ],
)
def test_invalid_dates_give_no_date_and_no_error(value: Any) -> None:
    assert parse_date(value) is None


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2024-01-15", "2024-01-15"),
        ("٢٠٢٤-٠١-١٥", "2024-01-15"),
        ("15 janvier 2024", "2024-01-15"),
        ("2019", "2019"),
    ],
)
def test_valid_dates_in_other_scripts_and_languages_parse(value: str, iso: str) -> None:
    parsed = parse_date(value, ["fr"] if "janvier" in value else None)
    assert parsed is not None and parsed.iso == iso


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a\u00a0\u2003b \t c  ", "a b c"),
        ("line\r\nbreak\rhere", "line\nbreak\nhere"),
        ("a\x00b\x07c", "abc"),
        ("e\u0301", "\u00e9"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("\n\n\n\n", None),
        ("\u202eevil", "\u202eevil"),
    ],
)
def test_text_normalisation_of_hostile_strings(raw: str, clean: str | None) -> None:
    assert clean_text(raw) == clean
