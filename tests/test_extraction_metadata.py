"""The metadata subset and the shared parse give trafilatura's own answers on every recorded HTML page."""

from __future__ import annotations

from pathlib import Path

import pytest
import trafilatura

from harvester.extraction.html import ExtractionError, decode_html
from harvester.extraction.metadata import page_metadata


def recorded_pages(fixtures_dir: Path) -> list[tuple[str, str]]:
    pages = []
    for path in sorted(fixtures_dir.rglob("*.htm*")):
        try:
            pages.append((path.relative_to(fixtures_dir).as_posix(), decode_html(path.read_bytes())))
        except ExtractionError:
            continue
    return pages


def test_every_recorded_html_page_is_compared(fixtures_dir: Path) -> None:
    assert len(recorded_pages(fixtures_dir)) >= 20


def test_kept_metadata_fields_equal_trafilaturas_full_metadata_on_every_recorded_page(fixtures_dir: Path) -> None:
    differences = {}
    for name, html in recorded_pages(fixtures_dir):
        url = f"https://partner.example/{name}"
        full = trafilatura.extract_metadata(html, default_url=url)
        tree = trafilatura.load_html(html)
        assert tree is not None, name
        kept = page_metadata(tree, url)
        expected = (full.title, full.date, full.description, full.sitename)
        if (kept.title, kept.date, kept.description, kept.sitename) != expected:
            differences[name] = (kept, expected)
    assert differences == {}


def test_page_metadata_leaves_the_tree_for_text_extraction_unchanged(fixtures_dir: Path) -> None:
    options = {"include_comments": False, "include_tables": True, "favor_recall": True}
    for name, html in recorded_pages(fixtures_dir):
        tree = trafilatura.load_html(html)
        page_metadata(tree, None)
        assert trafilatura.extract(tree, **options) == trafilatura.extract(html, **options), name


@pytest.mark.parametrize(
    ("head", "site"),
    [
        ('<meta property="og:site_name" content="@wocat">', "Wocat"),
        ('<meta property="og:site_name" content="cgspace.cgiar.org">', "cgspace.cgiar.org"),
        ("", "partner.example"),
    ],
)
def test_site_name_is_capitalised_or_taken_from_the_url(head: str, site: str) -> None:
    html = f"<html><head>{head}<title>A page</title></head><body><p>Text.</p></body></html>"
    tree = trafilatura.load_html(html)
    assert page_metadata(tree, "https://www.partner.example/page").sitename == site
