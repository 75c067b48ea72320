"""``harvester sources new`` writes a usable entry from recorded pages; ``page`` kind, link discovery without a
link selector and dated parser versions (a redesign adds a version, old captures keep their selectors)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from scrapy.http import HtmlResponse

from harvester.cli import cli
from harvester.extraction.links import discover_links
from harvester.recordings.fixtures import folder_index
from harvester.registry import RegistryError, load_source_file
from harvester.settings import get_settings

ML = Path("formats") / "multilingual"


@pytest.fixture
def registry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "registry"
    folder.mkdir()
    monkeypatch.setenv("HARVESTER_REGISTRY_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def page(fixtures_dir: Path, name: str) -> tuple[str, Path]:
    path = fixtures_dir / ML / name
    return folder_index(path.parent)[name]["url"], path


def test_sources_new_from_a_recorded_listing_writes_an_entry_extract_uses_at_once(
    fixtures_dir: Path, registry_dir: Path
) -> None:
    index_url, index = page(fixtures_dir, "elsa-undp_index_es.html")
    article_url, article = page(fixtures_dir, "elsa-undp_article-elsaR_es.html")
    output = run(
        "sources", "new", index_url, "--id", "elsa_es", "--replay", str(index), "--page", article_url, str(article)
    )
    assert "elsa_es.yaml" in output
    written = (registry_dir / "elsa_es.yaml").read_text(encoding="utf-8")
    assert "#   title: meta:og:title (1/1)" in written
    assert "#   text: trafilatura (1/1)" in written
    assert "#   published: not found" in written
    assert "# Record links found on the start page: " in written
    spec = load_source_file(registry_dir / "elsa_es.yaml")
    assert spec.kind == "listing" and not spec.selectors and spec.listing and spec.listing.item_links is None
    assert spec.verified is False
    assert [(r.fixture, r.url) for r in spec.replay] == [
        (str(ML / "elsa-undp_index_es.html"), index_url),
        (str(ML / "elsa-undp_article-elsaR_es.html"), article_url),
    ]

    [candidate] = json.loads(run("extract", "--source", "elsa_es", "--url", article_url, str(article), "--json"))
    assert candidate["title"] == "Un Ejemplo de Flujo de Trabajo ELSA"
    assert candidate["language"] == "es"
    assert candidate["countries"] == ["NP"]  # "usamos Nepal como caso de estudio"
    assert candidate["text"].startswith("Esta traduccion fue generada mediante IA.")


def test_sources_new_on_an_article_proposes_a_page_source(fixtures_dir: Path, registry_dir: Path) -> None:
    url, path = page(fixtures_dir, "lopinion_glyphosate_fr.html")
    run("sources", "new", url, "--replay", str(path))
    [written] = registry_dir.glob("*.yaml")
    assert written.name == "lopinion_fr.yaml"
    assert "#   published: jsonld:datePublished (1/1)" in written.read_text(encoding="utf-8")
    data = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert data["kind"] == "page" and data["start_urls"] == [url]
    [candidate] = json.loads(run("extract", "--source", "lopinion_fr", "--url", url, str(path), "--json"))
    assert candidate["published"] == "2019-05-15"
    assert candidate["organisations"] == ["L'Opinion"]


def test_sources_new_refuses_to_overwrite_an_entry(fixtures_dir: Path, registry_dir: Path) -> None:
    url, path = page(fixtures_dir, "lopinion_glyphosate_fr.html")
    run("sources", "new", url, "--replay", str(path))
    result = CliRunner().invoke(cli, ["sources", "new", url, "--replay", str(path)])
    assert result.exit_code != 0 and "exists" in result.output


def test_links_are_discovered_by_their_shape_when_no_selector_is_given(fixtures_dir: Path) -> None:
    url, path = page(fixtures_dir, "elsa-undp_index_fr.html")
    response = HtmlResponse(url=url, body=path.read_bytes(), encoding="utf-8")
    links = discover_links(response, ["elsa-undp.github.io"])
    assert "https://elsa-undp.github.io/elsar/fr/articles/elsaR.html" in links
    assert all(link.startswith("https://elsa-undp.github.io/elsar/fr/") for link in links)
    assert url not in links


VERSIONED = """id: versioned
name: A partner that redesigned its pages
kind: page
start_urls: ["https://elsa-undp.github.io/elsar/fr/articles/elsaR.html"]
verified: false
verification: a test source
selectors: {title: "h1::text"}
versions:
  - until: 2024-12-31
    selectors: {title: "xpath://meta[@property='og:title']/@content"}
  - until: 2020-06-30
    selectors: {title: "title::text"}
"""


def test_a_parser_version_is_chosen_by_the_date_a_page_was_fetched(tmp_path: Path) -> None:
    (tmp_path / "versioned.yaml").write_text(VERSIONED, encoding="utf-8")
    spec = load_source_file(tmp_path / "versioned.yaml")
    assert spec.selectors_for(date(2019, 1, 1)) == {"title": "title::text"}
    assert spec.selectors_for(date(2020, 7, 1)) == {"title": "xpath://meta[@property='og:title']/@content"}
    assert spec.selectors_for(date(2025, 1, 1)) == {"title": "h1::text"}
    assert spec.selectors_for(None) == {"title": "h1::text"}


def test_an_old_capture_is_read_with_its_own_version(fixtures_dir: Path, tmp_path: Path) -> None:
    from harvester.crawl.offline import candidates_from_response
    from harvester.recordings.warc import RecordedResponse

    (tmp_path / "versioned.yaml").write_text(VERSIONED, encoding="utf-8")
    spec = load_source_file(tmp_path / "versioned.yaml")
    url, path = page(fixtures_dir, "elsa-undp_article-elsaR_fr.html")
    titles = {}
    for day in ("Mon, 01 Jun 2020 12:00:00 GMT", "Tue, 01 Jun 2021 12:00:00 GMT", None):
        headers = [("Content-Type", "text/html; charset=utf-8"), *([("Date", day)] if day else [])]
        [item] = candidates_from_response(spec, RecordedResponse(url, 200, headers, path.read_bytes())).items
        titles[day] = (item.title, item.provenance["title"])
    assert titles == {
        "Mon, 01 Jun 2020 12:00:00 GMT": ("Un Exemple de Flux de Travail ELSA • elsar", "selector:title::text"),
        "Tue, 01 Jun 2021 12:00:00 GMT": (
            "Un Exemple de Flux de Travail ELSA",
            "selector:xpath://meta[@property='og:title']/@content",
        ),
        None: ("Un Exemple de Flux de Travail ELSA", "selector:h1::text"),
    }


def test_two_versions_ending_the_same_day_are_refused(tmp_path: Path) -> None:
    bad = VERSIONED.replace("2020-06-30", "2024-12-31")
    (tmp_path / "versioned.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(RegistryError, match="same date"):
        load_source_file(tmp_path / "versioned.yaml")


def test_sources_test_replays_a_new_entry_at_once(
    fixtures_dir: Path, registry_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harvester.crawl.source_check

    monkeypatch.setattr(harvester.crawl.source_check, "EXPECTED_DIR", tmp_path / "expected")
    index_url, index = page(fixtures_dir, "elsa-undp_index_ru.html")
    article_url, article = page(fixtures_dir, "elsa-undp_article-elsaR_ru.html")
    run("sources", "new", index_url, "--id", "elsa_ru", "--replay", str(index), "--page", article_url, str(article))
    assert "elsa_ru: ok" in run("sources", "test", "elsa_ru", "--update")
    expected = json.loads((tmp_path / "expected" / "elsa_ru" / "elsa-undp_article-elsaR_ru.json").read_text())
    assert expected["records"][article_url]["title"] == "Пример Рабочего Процесса ELSA"
    assert expected["records"][article_url]["countries"] == ["NP"]
    assert "elsa_ru: ok" in run("sources", "test", "elsa_ru")
