"""Each pipeline stage on real recorded pages: extract, language, dedupe; and the Scrapy stage shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from harvester.crawl.spider_loader import spider_class_for
from harvester.dedupe import canonical_url, record_hash, text_hash
from harvester.extraction.html import ExtractionError, extract_html
from harvester.items import CandidateItem
from harvester.language import detect_language
from harvester.registry import load_registry
from harvester.stages import apply_hashes, apply_language
from pipelines.dedupe import DedupePipeline
from pipelines.extract import ExtractPipeline

ML = "formats/multilingual"


def page(fixtures_dir: Path, name: str) -> bytes:
    return (fixtures_dir / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "lang"),
    [
        (f"{ML}/assabah_sudan_ar.html", "ar"),
        (f"{ML}/xinhua_drug-supply_zh.html", "zh"),
        (f"{ML}/tass_moskva-tskad_ru.html", "ru"),
        (f"{ML}/elpais_ciencia_es.html", "es"),
        (f"{ML}/lopinion_glyphosate_fr.html", "fr"),
        (f"{ML}/natgeo-uk_wild-goats-island_en.html", "en"),
        ("formats/odd/elsol-sanjuan_pescadores_lang-en-but-spanish.html", "es"),
    ],
)
def test_language_of_extracted_text_in_the_six_un_languages(fixtures_dir: Path, name: str, lang: str) -> None:
    found = extract_html(page(fixtures_dir, name), "https://example.org/", {})
    text = found.values["text"]
    assert isinstance(text, str)
    guess = detect_language(text, fallback=found.lang_attr)
    assert (guess.code, guess.source) == (lang, "detected")
    assert guess.probability is not None and guess.probability > 0.9
    assert detect_language(text, fallback=found.lang_attr) == guess


def test_short_text_falls_back_to_the_page_lang_attribute() -> None:
    item = CandidateItem("s", "https://e.org/x", "https://e.org/x", title="ELSA", page_lang="fr-FR")
    guess = apply_language(item, seed=0)
    assert (item.language, item.language_prob, guess.source) == ("fr", None, "fallback")


def test_cp1252_body_declared_utf8_is_decoded_without_replacement_chars(fixtures_dir: Path) -> None:
    body = page(fixtures_dir, "formats/odd/tierschutzpartei_wildvogel_declared-utf8-has-cp1252.html")
    found = extract_html(body, "https://www.tierschutzpartei.de/", {}, declared_encoding="utf-8")
    assert "\ufffd" not in str(found.values["text"])
    assert any(ch in str(found.values["text"]) for ch in "äöüß")


def test_gb2312_page_is_decoded(fixtures_dir: Path) -> None:
    found = extract_html(page(fixtures_dir, "formats/odd/xinhua-hebei_gb2312_in-wayback.html"), "https://e.org/", {})
    text = str(found.values["text"])
    assert "\ufffd" not in text
    assert detect_language(text).code == "zh"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"   \n ", "empty body"),
        (b"\x00\x01\x02PK\x03\x04" * 50, "binary body"),
        (b"<html><body><script>var a = 1;</script></body></html>", "no text extracted"),
    ],
)
def test_pages_without_text_are_extraction_failures(body: bytes, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        extract_html(body, "https://e.org/", {})


def test_extract_stage_drops_an_empty_page_with_a_readable_reason() -> None:
    spec = load_registry()["elsa_undp"]
    crawler = get_crawler(spider_class_for(spec))
    crawler.stats.open_spider()
    stage = ExtractPipeline.from_crawler(crawler)
    item = CandidateItem("elsa_undp", "https://elsa-undp.github.io/elsar/fr/x.html", "u", body=b"")
    with pytest.raises(DropItem, match=r"extraction failed for https://elsa-undp.github.io/elsar/fr/x.html: empty"):
        stage.process_item(item)
    assert crawler.stats.get_value("harvester/extract/failed") == 1
    assert item.body is None


def test_canonical_url_drops_noise_but_keeps_identity() -> None:
    assert (
        canonical_url("HTTPS://WWW.TheGEF.org:443/projects//10233?utm_source=x&b=2&a=1#top")
        == "https://www.thegef.org/projects/10233?a=1&b=2"
    )
    assert canonical_url("https://x.org/Case/AbC") == "https://x.org/Case/AbC"
    assert canonical_url("http://bio.devplx.com/adaptecca/cases_en.xml#4014", keep_fragment=True).endswith("#4014")


def test_text_hash_ignores_spacing_and_case_and_record_hash_ignores_key_order() -> None:
    assert text_hash("Wooden  pile walls\n") == text_hash("wooden pile WALLS")
    assert text_hash("   ") is None
    assert record_hash({"a": 1, "b": [1, 2]}) == record_hash({"b": [1, 2], "a": 1})
    assert record_hash({"a": 1}) != record_hash({"a": 2})


def test_rows_without_their_own_page_keep_the_row_key_in_the_canonical_url() -> None:
    item = CandidateItem(
        "adaptecca_cases",
        "http://bio.devplx.com/adaptecca/cases_en.xml#4014",
        "f",
        record_key="4014",
        title="Amphibians",
    )
    apply_hashes(item)
    assert item.canonical_url == "http://bio.devplx.com/adaptecca/cases_en.xml#4014"
    assert item.record_hash is not None and item.text_hash == text_hash("Amphibians")


def test_dedupe_stage_counts_the_same_text_under_another_url_once_per_repeat(fixtures_dir: Path) -> None:
    spec = load_registry()["elsa_undp"]
    crawler = get_crawler(spider_class_for(spec))
    crawler.stats.open_spider()
    stage = DedupePipeline.from_crawler(crawler)
    found = extract_html(page(fixtures_dir, f"{ML}/elsa-undp_article-elsaR_fr.html"), "u", {})
    other = extract_html(page(fixtures_dir, f"{ML}/elsa-undp_article-elsaR_es.html"), "u", {})
    base = "https://elsa-undp.github.io/elsar/"
    for url, values in (
        (f"{base}fr/a.html", found),
        (f"{base}fr/a.html?utm_source=x", found),
        (f"{base}es/a.html", other),
        (f"{base}fr/b.html", found),
        (f"{base}fr/c.html", found),
    ):
        stage.process_item(
            CandidateItem("elsa_undp", url, url, title=str(values.values["title"]), text=str(values.values["text"]))
        )
    assert crawler.stats.get_value("harvester/dedupe/same_text") == 2, "b and c repeat a; a's tracking URL is a"
