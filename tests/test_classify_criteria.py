"""The rules classifier (harvester.classify) on real partner records from ../shared/fixtures.

Fixtures are read at run time from HARVESTER_FIXTURES_DIR (default: ../shared/fixtures beside the
project); a missing folder fails the tests instead of skipping them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from datetime import date
from pathlib import Path
from xml.etree import ElementTree

import pytest
from bs4 import BeautifulSoup

from harvester.classify import (
    CRITERIA,
    SUPPORT_TYPES,
    Classification,
    ClassifierInput,
    available_languages,
    classify,
    field_text,
    topic_ids,
)
from harvester.classify.tags import normalise_id
from harvester.classify.vocab import GROUPS, load_data, validate, vocabulary

FIXTURES = Path(
    os.environ.get("HARVESTER_FIXTURES_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures")
)
REFERENCE = FIXTURES.parent / "reference" / "chm"
TODAY = date(2025, 6, 1)
MULTILINGUAL = "formats/multilingual"


def fixture(relative: str) -> Path:
    assert FIXTURES.is_dir(), (
        f"shared fixtures folder {FIXTURES} is missing: put the project beside ../shared or set HARVESTER_FIXTURES_DIR"
    )
    path = FIXTURES / relative
    assert path.is_file(), f"fixture {path} is missing"
    return path


def html_text(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    return soup.get_text(" ")


def assert_offsets_slice_back(doc: ClassifierInput, result: Classification) -> int:
    """Every span evidence slices back to its text in its field; returns how many were checked."""
    checked = 0
    for criterion in result.criteria.values():
        for ev in criterion.evidence:
            if ev.start is None:
                assert ev.end is None and ev.kind in ("date", "country", "field")
                continue
            source = field_text(doc, ev.field)
            assert source is not None, ev
            assert source[ev.start : ev.end].lower() == ev.text.lower(), ev
            checked += 1
    return checked


# ---------------------------------------------------------------- real records


def adaptecca_case(item_id: str | None = None) -> ClassifierInput:
    """One AdapteCCA case study (the feed's first item by default) as the feed source maps it."""
    root = ElementTree.parse(fixture("climate-adapt/feed-adaptecca-cases-en-2019.xml")).getroot()
    items = root.findall("item")
    item = items[0] if item_id is None else next(i for i in items if i.findtext("item_id") == item_id)
    fields = {child.tag: child.text or "" for child in item}
    body = [html_text(fields[k]) for k in ("field_challenges", "field_objectives", "field_solutions") if fields.get(k)]
    return ClassifierInput(
        title=fields["field_title"],
        summary=html_text(fields["field_information"]).strip(),
        text="\n\n".join(body),
        language="en",
        keywords=[k.strip() for k in fields["field_keywords"].split(",") if k.strip()],
        organisations=[],
        countries=[],
        regions=[fields["field_regions"]] if fields.get("field_regions") else [],
        start_date=None,
        end_date=None,
        published=None,
        extra={},
    )


def gef_rows() -> list[dict[str, str]]:
    with fixture("gef/dump-gef-project-database-export.csv").open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def gef_input(row: dict[str, str]) -> ClassifierInput:
    """The GEF export row mapped as the gef_projects source maps it."""
    return ClassifierInput(
        title=re.sub(r"^Project Title:\s*", "", row["Title"]),
        summary=None,
        text=None,
        language="en",
        keywords=[k.strip() for k in row["Focal Areas"].split(",") if k.strip()],
        organisations=[a.strip() for a in row["Agencies"].split(", ") if a.strip()],
        countries=[c.strip() for c in row["Countries"].split(",") if c.strip()],
        regions=[],
        start_date=None,
        end_date=None,
        published=row["Approval FY"] or None,
        extra={"status": row["Status"], "type": row["Type"]},
    )


def multilingual_input(name: str, lang: str) -> ClassifierInput:
    html = fixture(f"{MULTILINGUAL}/{name}").read_bytes().decode("utf-8", errors="replace")
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    return ClassifierInput(
        title=title,
        summary=None,
        text=html_text(html),
        language=lang,
        keywords=[],
        organisations=[],
        countries=[],
        regions=[],
        start_date=None,
        end_date=None,
        published=None,
        extra={},
    )


# ---------------------------------------------------------------- vocabularies and tag data


def test_every_vocab_file_parses_and_has_every_group() -> None:
    assert {"en", "fr", "es", "ar", "ru", "zh"} <= set(available_languages())
    topics = topic_ids()
    assert {
        "agricultural",
        "forest",
        "inland_waters",
        "marine_coastal",
        "dry_subhumid_lands",
        "mountain",
        "island",
        "protected_areas",
        "invasive_alien_species",
        "taxonomy",
        "traditional_knowledge",
        "access_benefit_sharing",
        "biosafety",
        "climate_change",
        "ecosystem_restoration",
        "sustainable_use",
        "pollinators",
    } <= set(topics)
    for lang in available_languages():
        data = load_data(lang)
        assert data["language"] == lang
        assert validate(data, topics) == [], lang
        for group, labels in GROUPS.items():
            for label in labels or topics:
                assert len(data[group][label]) >= 3, (lang, group, label)
        compiled = vocabulary(lang)
        assert len(compiled.cbd_relevance) >= 150 and len(compiled.support_type) >= 60, lang


def test_chm_tag_ids_come_from_the_reference_data() -> None:
    tags = load_data("chm_tags")
    assert set(tags["topics"]) == set(topic_ids())
    assert set(tags["support_types"]) == set(SUPPORT_TYPES)
    crosswalk = json.loads((REFERENCE / "gbf-target-crosswalk-subjects-sdg.json").read_text(encoding="utf-8"))
    aichi_xw = json.loads((REFERENCE / "gbf-target-crosswalk-aichi-sdgtargets.json").read_text(encoding="utf-8"))
    samples = (REFERENCE / "thesaurus-term-samples-from-docs.json").read_text(encoding="utf-8")
    known_subjects = {s for ids in crosswalk.values() for s in ids if s.startswith("CBD-SUBJECT-")}
    known_subjects |= set(re.findall(r'"(CBD-SUBJECT-[A-Z-]+)"', samples))
    known_aichi = {
        normalise_id(a)
        for ids in [*crosswalk.values(), *aichi_xw.values()]
        for a in ids
        if a.startswith("AICHI-TARGET-")
    }
    mappings = [tags["technology_transfer"], *tags["support_types"].values(), *tags["topics"].values()]
    for mapping in mappings:
        for gbf in mapping.get("gbfTargets", []):
            assert gbf in crosswalk
        for subject in mapping.get("cbdSubjects", []):
            assert subject in known_subjects
        for aichi in mapping.get("aichiTargets", []):
            assert re.fullmatch(r"AICHI-TARGET-\d\d", aichi) and aichi in known_aichi
    assert tags["technology_transfer"] == {
        "gbfTargets": ["GBF-TARGET-20"],
        "aichiTargets": ["AICHI-TARGET-19"],
        "cbdSubjects": ["CBD-SUBJECT-STTM"],
    }
    assert "AICHI-TARGET-19" in crosswalk["GBF-TARGET-20"]  # the rule follows SCBD's own crosswalk


def test_aichi_ids_are_written_in_the_padded_thesaurus_form() -> None:
    assert normalise_id("AICHI-TARGET-6") == "AICHI-TARGET-06"
    assert normalise_id("AICHI-TARGET-19") == "AICHI-TARGET-19"
    assert normalise_id("GBF-TARGET-20") == "GBF-TARGET-20"


# ---------------------------------------------------------------- criterion (b) on real records


def test_amphibian_habitat_restoration_case_is_cbd_relevant_with_highlightable_evidence() -> None:
    doc = adaptecca_case()
    assert doc.title is not None and doc.title.startswith("Adaptation, restoration and creation of habitats")
    result = classify(doc, today=TODAY)

    relevance = result.criteria["cbd_relevance"]
    assert relevance.score > 0.5
    assert {"ecosystem_restoration", "inland_waters", "protected_areas"} <= set(result.topics)
    restoration = [e for e in relevance.evidence if e.label == "ecosystem_restoration"]
    assert restoration[0].field == "title"
    assert (restoration[0].text, restoration[0].start, restoration[0].end) == ("restoration", 12, 23)
    assert doc.title[12:23] == "restoration"
    assert restoration[0].detail == doc.title
    assert ("keywords[1]", "Biodiversity conservation") in {(e.field, e.text) for e in relevance.evidence}
    assert len(relevance.evidence) <= 8
    assert all(e.detail and len(e.detail) <= 310 for e in relevance.evidence)
    assert assert_offsets_slice_back(doc, result) >= 8
    # topics map to CHM subjects and GBF targets through chm_tags.yaml
    assert {"CBD-SUBJECT-WTR", "CBD-SUBJECT-PA"} <= set(result.tags["cbdSubjects"])
    assert {"GBF-TARGET-02", "GBF-TARGET-03"} <= set(result.tags["gbfTargets"])
    assert result.countries == [] and result.tags["countryRegions"] == []


def test_urban_heat_island_is_not_island_biodiversity() -> None:
    doc = adaptecca_case("3924")  # Stuttgart: combating the heat island effect ... with green ventilation
    assert doc.title is not None and "heat island" in doc.title
    result = classify(doc, today=TODAY)
    assert "island" not in result.topics
    assert all(e.label != "island" for e in result.criteria["cbd_relevance"].evidence)
    assert result.criteria["cbd_relevance"].score > 0.5  # urban green infrastructure is still relevant


def test_gef_biodiversity_project_scores_higher_than_climate_only_project() -> None:
    rows = gef_rows()
    bio_row = next(r for r in rows if r["Focal Areas"] == "Biodiversity")
    climate_row = next(r for r in rows if r["Focal Areas"] == "Climate Change")
    assert bio_row["ID"] == "11286" and climate_row["ID"] == "11305"
    bio_doc, climate_doc = gef_input(bio_row), gef_input(climate_row)
    bio, climate = classify(bio_doc, today=TODAY), classify(climate_doc, today=TODAY)

    assert bio.criteria["cbd_relevance"].score > 0.75
    assert climate.criteria["cbd_relevance"].score < 0.35
    assert bio.criteria["cbd_relevance"].score > climate.criteria["cbd_relevance"].score
    bio_terms = {(e.field, e.text) for e in bio.criteria["cbd_relevance"].evidence}
    assert ("keywords[0]", "Biodiversity") in bio_terms and ("title", "NBSAP") in bio_terms
    # 53 listed countries + "Global" -> international, with the country codes as CHM countryRegions
    assert len(bio.countries) == 53 and "global" not in bio.tags["countryRegions"]
    assert bio.tags["countryRegions"] == [c.lower() for c in bio.countries]
    assert bio.criteria["international"].score > 0.9
    scope = [e for e in bio.criteria["international"].evidence if e.label == "scope"]
    assert scope and scope[0].text == "Global" and scope[0].kind == "field"
    for doc, result in ((bio_doc, bio), (climate_doc, climate)):
        assert_offsets_slice_back(doc, result)


def test_gef_biodiversity_focal_area_ranks_above_climate_change_across_the_export() -> None:
    rows = gef_rows()
    bio = [
        classify(gef_input(r), today=TODAY).criteria["cbd_relevance"].score
        for r in rows
        if r["Focal Areas"] == "Biodiversity"
    ][:150]
    climate = [
        classify(gef_input(r), today=TODAY).criteria["cbd_relevance"].score
        for r in rows
        if r["Focal Areas"] == "Climate Change"
    ][:150]
    pairs = [(b > c) + 0.5 * (b == c) for b in bio for c in climate]
    auc = sum(pairs) / len(pairs)
    assert auc > 0.95, auc


# ---------------------------------------------------------------- other languages


@pytest.mark.parametrize(
    ("name", "lang", "pa_text", "dry_text"),
    [
        ("elsa-undp_article-elsaR_fr.html", "fr", "zones protegees", "desertification"),
        ("elsa-undp_article-elsaR_es.html", "es", "areas protegidas", "desertificacion"),
        ("elsa-undp_article-elsaR_ru.html", "ru", "охраняемые территории", "опустынивания"),
    ],
)
def test_elsa_workflow_article_matches_topics_in_its_own_language(
    name: str, lang: str, pa_text: str, dry_text: str
) -> None:
    doc = multilingual_input(name, lang)
    result = classify(doc, today=TODAY)
    assert {"protected_areas", "dry_subhumid_lands"} <= set(result.topics)
    evidence = result.criteria["cbd_relevance"].evidence
    assert pa_text in {e.text.lower() for e in evidence if e.label == "protected_areas"}
    assert dry_text in {e.text.lower() for e in evidence if e.label == "dry_subhumid_lands"}
    assert result.criteria["cbd_relevance"].score > 0.8
    assert result.countries == ["NP"]  # the worked example is Nepal, named in the page's language
    assert_offsets_slice_back(doc, result)


def test_chinese_article_matches_chinese_terms_without_word_boundaries() -> None:
    doc = multilingual_input("banyuetan_yiyang-digital_zh.html", "zh")
    result = classify(doc, today=TODAY)
    assert "mountain" in result.topics
    mountain = [e for e in result.criteria["cbd_relevance"].evidence if e.label == "mountain"]
    assert mountain[0].text == "山区"
    assert "capacity_building" in result.support_types
    assert "培训" in {e.text for e in result.criteria["support_type"].evidence}
    assert "CN" in result.countries
    # a digital-economy article: broad agricultural cues alone stay weak
    assert "agricultural" not in result.topics
    assert result.criteria["cbd_relevance"].score < 0.5
    assert_offsets_slice_back(doc, result)


def test_arabic_article_matches_arabic_terms_inside_words() -> None:
    doc = multilingual_input("assabah_sudan_ar.html", "ar")
    result = classify(doc, today=TODAY)
    assert "workshops" in result.support_types
    workshop_terms = {e.text for e in result.criteria["support_type"].evidence if e.label == "workshops"}
    assert "ندوة" in workshop_terms  # found inside "الندوة" (with the article)
    assert {"SD", "TN", "EG"} <= set(result.countries)
    assert result.criteria["cbd_relevance"].score < 0.2  # political interview: not about biodiversity
    assert_offsets_slice_back(doc, result)


# ---------------------------------------------------------------- criteria (c) and (d)


def test_one_off_workshop_long_past_scores_low_on_active() -> None:
    doc = ClassifierInput(
        title="Regional workshop on seed banks",
        summary=None,
        text="The workshop was held in Nairobi in March 2009.",
        language="en",
        keywords=[],
        organisations=[],
        countries=[],
        regions=[],
        start_date="2009-03-18",
        end_date="2009-03-20",
        published=None,
        extra={},
    )
    result = classify(doc, today=TODAY)
    active = result.criteria["active"]
    assert active.score < 0.05
    date_ev = active.evidence[0]
    assert (date_ev.kind, date_ev.field, date_ev.text) == ("date", "end_date", "2009-03-20")
    assert date_ev.start is None and date_ev.end is None
    assert "not active" in (date_ev.detail or "")
    assert ("past", "was held") in {(e.label, e.text) for e in active.evidence}
    assert "workshops" in result.support_types
    assert_offsets_slice_back(doc, result)


def test_programme_with_future_end_date_scores_high_on_active() -> None:
    doc = ClassifierInput(
        title="Annual training programme on genebank management",
        text="The programme has been running since 2010 and is under implementation.",
        language="en",
        start_date="2010-01",
        end_date="2027-12-31",
    )
    active = classify(doc, today=TODAY).criteria["active"]
    assert active.score > 0.9
    assert {"running since 2010", "under implementation"} <= {e.text for e in active.evidence}


def test_kenya_uganda_south_south_cooperation_scores_high_on_international() -> None:
    doc = ClassifierInput(
        title="Seed-saving exchange between Kenya and Uganda",
        summary=None,
        text="Farmers from Kenya and Uganda share community seed-bank techniques through South-South "
        "cooperation, supported by FAO.",
        language="en",
        keywords=[],
        organisations=[],
        countries=[],
        regions=[],
        start_date=None,
        end_date=None,
        published=None,
        extra={},
    )
    result = classify(doc, today=TODAY)
    assert result.criteria["international"].score > 0.8
    assert result.countries == ["KE", "UG"]
    assert result.tags["countryRegions"] == ["ke", "ug"]
    kinds = {e.kind for e in result.criteria["international"].evidence}
    assert {"country", "term", "org"} <= kinds
    # cooperation evidence -> GBF target 20 / Aichi target 19
    assert "GBF-TARGET-20" in result.tags["gbfTargets"] and "AICHI-TARGET-19" in result.tags["aichiTargets"]
    assert "other_implementation" in result.support_types
    assert_offsets_slice_back(doc, result)


def test_single_country_national_text_is_not_international() -> None:
    doc = ClassifierInput(
        title="Community forest restoration in Kenya",
        text="Volunteers replanted indigenous trees in Kakamega forest.",
        language="en",
    )
    result = classify(doc, today=TODAY)
    assert result.countries == ["KE"]
    assert result.criteria["international"].score == 0.0


# ---------------------------------------------------------------- robustness


def test_empty_input_never_raises_and_scores_zero() -> None:
    for doc in (
        ClassifierInput(
            title=None,
            summary=None,
            text=None,
            language=None,
            keywords=[],
            organisations=[],
            countries=[],
            regions=[],
            start_date=None,
            end_date=None,
            published=None,
            extra={},
        ),
        ClassifierInput(),
        ClassifierInput(
            title="   ",
            summary="",
            text="\n\t",
            language="xx",
            keywords=["", " "],
            start_date="not a date",
            end_date="2024-13-45",
            published="soon",
        ),
    ):
        result = classify(doc, today=TODAY)
        assert list(result.criteria) == list(CRITERIA)
        assert {k: v.score for k, v in result.criteria.items()} == dict.fromkeys(CRITERIA, 0.0)
        assert all(v.evidence == [] for v in result.criteria.values())
        assert result.score == 0.0
        assert (result.support_types, result.topics, result.countries) == ([], [], [])
        assert result.tags == {"cbdSubjects": [], "gbfTargets": [], "aichiTargets": [], "countryRegions": []}
        assert result.version == "rules-1"
        assert result.criteria["active"].as_dict() == {"score": 0.0, "evidence": []}


def test_mistyped_fields_are_ignored_not_fatal() -> None:
    doc = ClassifierInput(
        title="Biodiversity workshop",
        keywords=None,  # type: ignore[arg-type]
        organisations=[None, 3],
        countries=["Kenya", None, "Atlantis"],  # type: ignore[list-item]
        extra={"status": 5, "scope": ["Global", None], "nested": {"a": "b"}},
    )
    result = classify(doc, today=TODAY)
    assert result.countries == ["KE"]
    assert result.criteria["cbd_relevance"].score > 0
    # the scope label "Global" in extra is an explicit international scope
    scope = [e for e in result.criteria["international"].evidence if e.label == "scope"]
    assert [(e.kind, e.field, e.text) for e in scope] == [("field", "extra.scope[0]", "Global")]
    assert result.criteria["international"].score > 0.6
    assert_offsets_slice_back(doc, result)


def test_untrusted_text_is_scanned_in_linear_time() -> None:
    hostile = [
        "a" * 200_000,
        ("capacity " * 25_000),
        ("biodiversity-" * 15_000),
        ("تنوع " * 40_000),
        ("生物多样" * 50_000),
        ("since 20" * 25_000),
    ]
    start = time.perf_counter()
    for text in hostile:
        classify(ClassifierInput(title=None, text=text, language=None), today=TODAY)
    assert time.perf_counter() - start < 8.0


def test_evidence_is_capped_and_serialisable() -> None:
    doc = adaptecca_case()
    result = classify(doc, today=TODAY)
    payload = {name: score.as_dict() for name, score in result.criteria.items()}
    json.dumps(payload, ensure_ascii=False)
    for name, value in payload.items():
        assert 0.0 <= value["score"] <= 1.0
        assert len(value["evidence"]) <= 8
        for ev in value["evidence"]:
            assert set(ev) == {"criterion", "kind", "text", "start", "end", "field", "detail", "label"}
            assert ev["criterion"] == name
            assert ev["kind"] in {"term", "date", "country", "org", "field"}
    expected = (
        0.4 * result.criteria["cbd_relevance"].score
        + 0.25 * result.criteria["support_type"].score
        + 0.15 * result.criteria["active"].score
        + 0.2 * result.criteria["international"].score
    )
    assert result.score == pytest.approx(expected)
