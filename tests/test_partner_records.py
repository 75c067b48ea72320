"""Named records of every recorded partner, extracted by the real spider and stages from the captures."""

from __future__ import annotations

from functools import cache

import pytest

from harvester.crawl.offline import candidates_from_response
from harvester.items import CandidateItem
from harvester.recordings.fixtures import load_capture
from harvester.recordings.warc import RecordedResponse
from harvester.registry import load_registry


@cache
def harvest(source_id: str) -> dict[str, CandidateItem]:
    """Every candidate of a source's replay, keyed by record key (or URL)."""
    spec = load_registry()[source_id]
    out: dict[str, CandidateItem] = {}
    for capture_ref in spec.replay:
        capture = load_capture(capture_ref.fixture, capture_ref.url)
        if spec.kind == "listing" and capture.url in spec.start_urls:
            continue  # a listing page leads to records; it is not one
        recorded = RecordedResponse(capture.url, 200, capture.headers(), capture.body)
        for item in candidates_from_response(spec, recorded).items:
            out[item.record_key or item.url] = item
    return out


def fields(item: CandidateItem) -> dict[str, object]:
    return {k: v for k, v in item.harvested_fields().items() if v not in (None, [], {})}


def test_gef_project_10233_from_the_csv_export() -> None:
    item = harvest("gef_projects")["10233"]
    assert item.url == "https://www.thegef.org/projects-operations/projects/10233"
    assert fields(item) == {
        "title": "Sustainable Management of Conservation Areas and Improved Livelihoods to Combat Wildlife "
        "Trafficking in Madagascar",
        "organisations": ["United Nations Environment Programme"],
        "countries": ["MG"],
        "keywords": ["Biodiversity"],
        "published": "2021",
        "extra": {
            "status": "Project Approved",
            "record_type": "Full-size Project",
            "amount": 5763303.0,
            "cofinancing": 14642944.0,
            "published_precision": "year",
        },
    }


def test_gef_export_has_every_project_and_strips_the_title_prefix() -> None:
    projects = harvest("gef_projects")
    assert len(projects) == 5892
    assert projects["11305"].title.startswith("Lebanon’s First Biennial Transparency Reports")
    umbrella = projects["11286"]
    assert {"DZ", "AG", "AR", "BH", "BZ"} <= set(umbrella.countries)
    assert umbrella.organisations == ["United Nations Environment Programme"] or umbrella.organisations


def test_gef_multi_agency_cells_become_an_organisation_list() -> None:
    multi = [i for i in harvest("gef_projects").values() if len(i.organisations) > 3]
    assert multi, "the export has projects run by several agencies"
    assert all("," not in org for item in multi for org in item.organisations)


def test_gcf_project_fp001_from_the_projects_api() -> None:
    item = harvest("gcf_projects")["FP001"]
    assert item.url == "https://www.greenclimate.fund/projects/FP001"
    got = fields(item)
    assert got["title"] == "Building the Resilience of Wetlands in the Province of Datem del Marañón, Peru"
    assert got["countries"] == ["PE"]
    assert got["organisations"] == ["Peruvian Trust Fund for National Parks and Protected Areas"]
    assert (got["start_date"], got["end_date"], got["published"]) == ("2017-03-10", "2022-03-10", "2015-11-05")
    assert got["regions"] == ["Latin America and the Caribbean"]
    assert got["keywords"][:3] == ["Cross-cutting", "Public", "Energy generation and access"]
    assert got["extra"]["amount"] == 6240000.0


def test_gcf_api_has_209_projects_with_iso3_countries_as_alpha2() -> None:
    projects = harvest("gcf_projects")
    assert len(projects) == 209
    assert all(len(c) == 2 and c.isupper() for item in projects.values() for c in item.countries)


def test_gcf_funded_activity_fp003_from_the_xlsx_export() -> None:
    items = harvest("gcf_funded_activities")
    assert len(items) == 286
    item = items["FP003"]
    assert item.url == "https://www.greenclimate.fund/projects/FP003"
    assert fields(item) == {
        "title": "Increasing the resilience of ecosystems and communities through\nthe restoration of the "
        "productive bases of salinized lands",
        "organisations": ["CSE"],
        "countries": ["SN"],
        "keywords": ["Adaptation", "Public"],
        "extra": {"record_type": "PAP", "amount": 7610000.0},
    }


def test_climate_adapt_case_by_url_drops_the_eu_banner() -> None:
    url = (
        "https://climate-adapt.eea.europa.eu/en/metadata/case-studies/online-training-in-climate-change-and-"
        "health-for-the-public-health-and-wider-health-workforce-in-europe"
    )
    items = harvest("climate_adapt_cases")
    assert len(items) == 146
    item = items[url]
    assert item.title == (
        "Online training in climate change and health for the public health and wider health workforce in Europe"
    )
    assert item.text is not None and item.text.startswith(
        "An open online course on the interplay between climate change and health, by the Association of "
        "Schools of Public Health in the European Region (ASPHER)"
    )
    assert item.published == "2024-10-23"
    assert item.keywords[:3] == ["Health", "Health professionals", "Education"]
    assert not any("europa.eu domain" in (i.text or "") for i in items.values())


def test_adaptecca_case_4014_from_the_xml_feed() -> None:
    items = harvest("adaptecca_cases")
    assert len(items) == 96
    item = items["4014"]
    assert item.url == "http://bio.devplx.com/adaptecca/cases_en.xml#4014"
    assert item.title == (
        "Adaptation, restoration and creation of habitats for amphibians threatened by climate "
        "change in the Montes de Valsaín mountain range, Segovia"
    )
    assert item.summary is not None and item.summary.startswith("Amphibians suffer a global decline.")
    assert item.regions == ["Mediterranean"]
    assert item.published == "2018"
    assert "Biodiversity conservation" in item.keywords


@pytest.mark.parametrize(("source_id", "count"), [("bhl_oai", 42), ("dryad_oai", 162)])
def test_oai_partners_yield_every_record_with_metadata(source_id: str, count: int) -> None:
    assert len(harvest(source_id)) == count


def test_bhl_record_from_oai_dc() -> None:
    item = harvest("bhl_oai")["oai:biodiversitylibrary.org:item/126821"]
    assert item.url == "http://www.biodiversitylibrary.org/item/126821"
    assert item.title == "The American naturalist."
    assert item.keywords == ["Biology", "Natural history", "Periodicals"]
    assert item.language == "en"


@pytest.mark.parametrize(
    ("lang", "title"),
    [
        ("fr", "Un Exemple de Flux de Travail ELSA"),
        ("es", "Un Ejemplo de Flujo de Trabajo ELSA"),
        ("ru", "Пример Рабочего Процесса ELSA"),
    ],
)
def test_elsa_article_in_three_languages(lang: str, title: str) -> None:
    items = harvest("elsa_undp")
    assert len(items) == 3
    item = items[f"https://elsa-undp.github.io/elsar/{lang}/articles/elsaR.html"]
    assert (item.language, item.title) == (lang, title)
    assert item.provenance["title"] == "selector:main h1::text"
    assert item.text is not None and item.text.startswith(f"{title}\n\nelsaR.Rmd")


def test_wocat_questionnaire_detail_through_the_partner_class(fixtures_dir) -> None:
    """The recorded QCAT API v2 detail (the list endpoint was never recorded, so the source stays unverified)."""
    spec = load_registry()["wocat_technologies"]
    name = "api-v2-questionnaire-detail-technology-armenia-wooden-pile-walls.json"
    body = (fixtures_dir / "wocat-qcat" / name).read_bytes()
    url = "https://qcat.wocat.net/en/api/v2/questionnaires/{code}/"  # the capture's code was not recorded
    result = candidates_from_response(spec, RecordedResponse(url, 200, [("Content-Type", "application/json")], body))
    assert result.failures == []
    [item] = result.items
    assert (item.url, item.record_key) == (url, None)
    assert item.title == "Slope erosion control using wooden pile walls"
    assert item.countries == ["AM"]
    assert item.regions == ["Aragatsotn and Shirak Marzes (Provinces)"]
    assert item.organisations == [
        "GIZ",
        "ESAC NGO",
        "Armenian National Agrarian Univercity",
        "E.C.O. Institute of Ecology",
    ]
    assert item.published == "2018-10-03"
    assert item.summary is not None and item.summary.startswith(
        "Small horizontal wooden structures and terraces on eroded slopes built to mitigate sheet or rill erosion"
    )
    assert item.language == "en"
