"""Headlines without the site's name, section or date, whatever the page offers; a minimal web source entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from harvester.extraction.titles import reconcile_title
from harvester.registry import load_source_file


@pytest.mark.parametrize(
    ("stated", "h1s", "title_tag", "sites", "url", "expected"),
    [
        # the two suffixes of the issue, with nothing else on the page to compare
        (
            [],
            [],
            "Forests recover after the fires - The Planetary Press",
            [],
            "https://planetary.example/a",
            "Forests recover after the fires",
        ),
        (
            [],
            [],
            "Deutsche Welle kürzt Programme | DW | 23.05.2011",
            [],
            "https://www.dw.com/de/a",
            "Deutsche Welle kürzt Programme",
        ),
        # a dash inside the headline stays when og:title and <h1> agree on it
        (
            [("Climate - what next for Africa", "meta:og:title")],
            ["Climate - what next for Africa"],
            "Climate - what next for Africa | Site",
            ["Site"],
            "https://example.org/a",
            "Climate - what next for Africa",
        ),
        # the <h1> is the logo; og:title is the headline
        (
            [("معارضون يسيطرون على مخازن للصواريخ بريف دمشق", "meta:og:title")],
            ["CNN", "معارضون يسيطرون على مخازن للصواريخ بريف دمشق"],
            "معارضون يسيطرون على مخازن للصواريخ بريف دمشق - CNNArabic.com",
            ["CNNArabic"],
            "http://arabic.cnn.com/a",
            "معارضون يسيطرون على مخازن للصواريخ بريف دمشق",
        ),
        # a Chinese site name glued on with a hyphen
        (
            [],
            [],
            "武汉的声音：有英勇的你，才有英雄的城！-新华网",
            [],
            "http://www.xinhuanet.com/a",
            "武汉的声音：有英勇的你，才有英雄的城！",
        ),
        # twitter:title cut mid-word loses to the whole headline
        (
            [
                ("BBNJ Agreement: A New Infrastructure to Foster Benefit Sharing of Mari", "meta:twitter:title"),
                (
                    "BBNJ Agreement: A New Infrastructure to Foster Benefit Sharing of Marine Genetic Resources",
                    "meta:dc.title",
                ),
            ],
            [],
            None,
            [],
            None,
            "BBNJ Agreement: A New Infrastructure to Foster Benefit Sharing of Marine Genetic Resources",
        ),
    ],
)
def test_the_headline_loses_site_names_sections_and_dates(
    stated: list[tuple[str, str]],
    h1s: list[str],
    title_tag: str | None,
    sites: list[str],
    url: str | None,
    expected: str,
) -> None:
    headline = reconcile_title(stated, h1s, title_tag, sites, url)
    assert headline is not None and headline.title == expected
    assert headline.cleaned == bool(title_tag)


def test_a_short_word_in_a_headline_is_not_taken_for_the_site(tmp_path: Path) -> None:
    headline = reconcile_title(
        [], [], "Drawdown plans for the Rhine | Rhine News", ["Rhine News"], "https://www.dw.com/a"
    )
    assert headline is not None and headline.title == "Drawdown plans for the Rhine"


def test_a_web_source_needs_only_its_kind_and_start_urls(tmp_path: Path) -> None:
    (tmp_path / "minimal.yaml").write_text(
        'kind: listing\nstart_urls: ["https://example.org/news/"]\n', encoding="utf-8"
    )
    spec = load_source_file(tmp_path / "minimal.yaml")
    assert (spec.id, spec.name, spec.kind, spec.verified, spec.selectors, spec.listing) == (
        "minimal",
        "minimal",
        "listing",
        False,
        {},
        None,
    )


def test_json_ld_about_this_page_beats_a_related_article_listed_first() -> None:
    from parsel import Selector

    from harvester.extraction.embedded import embedded_data

    html = (
        '<html><head><script type="application/ld+json">[{"@type": "NewsArticle", "headline": "Other story", '
        '"url": "https://example.org/other", "datePublished": "2020-01-01"}, {"@type": "NewsArticle", '
        '"headline": "This story", "mainEntityOfPage": {"@id": "https://www.example.org/this/"}, '
        '"datePublished": "2021-02-03"}]</script></head><body></body></html>'
    )
    data = embedded_data(Selector(text=html), "https://example.org/this")
    assert (data.titles[0].value, data.dates[0].value) == ("This story", "2021-02-03")
