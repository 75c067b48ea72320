# ruff: noqa: RUF003  (Arabic, Cyrillic and CJK text is the point here)
"""A bare listing source (``kind: listing`` and a start URL, nothing else) reads pages it has never seen, in
the six UN languages: headline without the site's name, language, publication date at its precision,
the countries the text names (most salient first) and the text from its first sentence, with every
value's provenance and interpretation flags. Values read off the recorded pages by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from harvester.cli import cli
from harvester.recordings.fixtures import folder_index
from harvester.settings import get_settings

MULTILINGUAL = Path("formats") / "multilingual"
BARE_LISTING = """id: {id}
name: A site nobody configured
kind: listing
start_urls: ["https://example.org/news/"]
verified: false
verification: a test source
"""

# file, language, title, published, countries (most salient first), start of the text; the two known misses
# are marked xfail (strict) with what goes wrong
PAGES = [
    pytest.param(
        "natgeo-uk_wild-goats-island_en.html",
        "en",
        "Ravenous wild goats ruled this island for over a century. Now, it's being reborn.",
        "2020-01-03",
        ["AG"],
        "The rocky island of Redonda, once stripped of its flora and fauna",
        marks=pytest.mark.xfail(strict=True, reason="names only the island (Antigua), never Antigua and Barbuda"),
    ),
    pytest.param(
        "greenpeace_forests-asia-pacific_en.html",
        "en",
        "Indonesia",
        None,
        ["ID"],
        "Indonesia is a treasure chest of biodiversity",
        marks=pytest.mark.xfail(
            strict=True,
            reason="a campaign hub with no date of its own: htmldate takes the newest teaser's (2017-04-28)",
        ),
    ),
    (
        "lopinion_glyphosate_fr.html",
        "fr",
        "Glyphosate: radiographie d’une intoxication collective",
        "2019-05-15",
        ["US", "VN", "FR", "CA"],
        "Un jugement ne fait pas une vérité scientifique.",
    ),
    (
        "elpais_ciencia_es.html",
        "es",
        "¿Ha llegado realmente la Antártida a los 20 grados?",
        "2020-02-19",
        ["AQ", "AR"],
        "Que en la Antártida se registren temperaturas de más de 20 grados",
    ),
    (
        "tass_moskva-tskad_ru.html",
        "ru",
        "Движение по ЦКАД-5 открывается от Можайского до Новорижского шоссе",
        "2020-06-29",
        ["RU"],
        "МОСКВА, 29 июня. /ТАСС/. Движение от Можайского до Новорижского шоссе",
    ),
    (
        "cnn-arabic_syria_ar.html",
        "ar",
        "معارضون يسيطرون على مخازن للصواريخ بريف دمشق",
        "2013-08-28",
        ["SY"],
        "دمشق، سوريا (CNN) -- أكدت جهات سورية معارضة",
    ),
    (
        "assabah_sudan_ar.html",
        "ar",
        "الناشط الحقوقي السوداني خالد عبد الكريم ماسا لـ«الصباح»: كل الشروط متوفرة لثورة سودانية ولا حاجة لنستورد شيئا",
        "2019-02-08",
        ["SD", "TN"],
        "مالذي يحدث في السودان؟",
    ),
    (
        "sputnik-arabic_egypt-covid_ar.html",
        "ar",
        "مصر تسجل 30 إصابة جديدة وحالتي وفاة بفيروس كورونا",
        "2020-03-17",
        ["EG", "CN"],
        "وأوضح الدكتور خالد مجاهد، المتحدث الرسمي للوزارة",
    ),
    (
        "xinhua_drug-supply_zh.html",
        "zh",
        "短缺药品保供稳价 全力保障临床用药需求",
        "2023-11-17",
        ["CN"],
        "新华社北京11月17日电",
    ),
    (
        "xinhuanet_wuhan_zh.html",
        "zh",
        "武汉的声音：有英勇的你，才有英雄的城！",
        "2020-02-19",
        ["CN"],
        "“妈妈，为什么还不能出去？”",
    ),
    ("banyuetan_yiyang-digital_zh.html", "zh", "益阳：“数字”是优长", "2020-01-02", ["CN"], "益水之阳，是名益阳。"),
]


@pytest.fixture
def bare_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A registry holding one listing source with no selectors and no link rule."""
    folder = tmp_path / "registry"
    folder.mkdir()
    (folder / "new_site.yaml").write_text(BARE_LISTING.format(id="new_site"), encoding="utf-8")
    monkeypatch.setenv("HARVESTER_REGISTRY_DIR", str(folder))
    get_settings.cache_clear()
    yield "new_site"
    get_settings.cache_clear()


def extract(fixtures_dir: Path, source_id: str, name: str) -> dict:
    path = fixtures_dir / MULTILINGUAL / name
    url = folder_index(path.parent)[name]["url"]
    result = CliRunner().invoke(cli, ["extract", "--source", source_id, "--url", url, str(path), "--json"])
    assert result.exit_code == 0, result.output
    [candidate] = json.loads(result.output)
    return candidate


@pytest.mark.parametrize(
    ("name", "language", "title", "published", "countries", "text_start"),
    PAGES,
    ids=[(p.values if hasattr(p, "values") else p)[0].removesuffix(".html") for p in PAGES],
)
def test_a_bare_listing_reads_a_never_seen_page(
    fixtures_dir: Path,
    bare_listing: str,
    name: str,
    language: str,
    title: str,
    published: str,
    countries: list[str],
    text_start: str,
) -> None:
    candidate = extract(fixtures_dir, bare_listing, name)
    got = {name: candidate[name] for name in ("title", "language", "published", "countries")}
    assert {**got, "text": candidate["text"][: len(text_start)]} == {
        "title": title,
        "language": language,
        "published": published,
        "countries": countries,
        "text": text_start,
    }


def test_every_value_says_where_it_came_from(fixtures_dir: Path, bare_listing: str) -> None:
    candidate = extract(fixtures_dir, bare_listing, "tass_moskva-tskad_ru.html")
    assert candidate["provenance"]["title"] == "jsonld:headline"
    assert candidate["provenance"]["published"] == "jsonld:datePublished"
    assert candidate["provenance"]["text"] == "trafilatura"
    assert candidate["origins"] == {
        "title": "structured-data",
        "published": "structured-data",
        "summary": "structured-data",
        "organisations": "structured-data",
        "text": "extractor",
        "countries": "inferred-from-text",
        "language": "extractor",
    }
    assert candidate["organisations"] == ["ТАСС"]
    # the <title> was "... -  Москва - ТАСС"; the countries come from the text: Moscow, never named as Russia
    assert candidate["flags"] == {"title": ["title-cleaned"], "countries": ["country-inferred-from-text"]}
    assert candidate["extra"]["country_names"]["RU"][:2] == ["МОСКВА", "Москвы"]


def test_a_country_in_quotes_is_a_name_not_a_mention(fixtures_dir: Path, bare_listing: str) -> None:
    # 'от М-1 "Беларусь"' is the highway to Belarus, not Belarus
    candidate = extract(fixtures_dir, bare_listing, "tass_moskva-tskad_ru.html")
    assert "Беларусь" in candidate["text"]
    assert "BY" not in candidate["countries"]


def test_a_year_only_date_keeps_its_precision_and_is_flagged(fixtures_dir: Path, bare_listing: str) -> None:
    candidate = extract(fixtures_dir, bare_listing, "springer_bbnj-benefit-sharing-mgr_en.html")
    assert candidate["title"] == (
        "BBNJ Agreement: A New Infrastructure to Foster Benefit Sharing of Marine Genetic Resources"
    )  # not twitter:title, which is cut mid-word
    assert candidate["published"] == "2025"
    assert candidate["extra"]["published_precision"] == "year"
    assert "date-year-only" in candidate["flags"]["published"]


def test_a_date_written_in_the_text_beats_a_guessed_year(fixtures_dir: Path, bare_listing: str) -> None:
    # htmldate only finds 2013 (in the URL); the page says "الأربعاء، 28 آب/اغسطس 2013"
    candidate = extract(fixtures_dir, bare_listing, "cnn-arabic_syria_ar.html")
    assert candidate["published"] == "2013-08-28"
    assert candidate["provenance"]["published"] == "text:dateline"
    assert candidate["origins"]["published"] == "inferred-from-text"


def test_language_flags_say_when_the_page_lang_was_used_or_contradicted(fixtures_dir: Path, bare_listing: str) -> None:
    path = fixtures_dir / "formats" / "odd" / "elsol-sanjuan_pescadores_lang-en-but-spanish.html"
    result = CliRunner().invoke(
        cli, ["extract", "--source", bare_listing, "--url", "https://example.org/a", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    [candidate] = json.loads(result.output)
    assert candidate["title"] == "Pescadores gestionarán crías de peces"
    assert candidate["language"] == "es"  # <html lang="en">, Spanish text
    assert candidate["flags"]["language"] == ["page-lang-disagrees"]
