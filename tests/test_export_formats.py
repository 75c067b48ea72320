"""``iter_export`` on the partners' real export files (fixtures/gef, climate-adapt, gcf), on inputs
derived from them at test time for formats no partner capture has (JSON Lines, ";" and tab
delimiters, a legacy encoding, gzip), on bad bodies (each a clear ``StructuredBodyError``) and on a
100,000-row CSV, whose rows must stream without the table being held in memory."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tracemalloc
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from harvester.extraction import structured
from harvester.extraction.structured import StructuredBodyError, iter_export
from harvester.recordings.fixtures import load_capture
from harvester.registry import ExportOptions

GEF_CSV = "gef/dump-gef-project-database-export.csv"
CLIMATE_ADAPT_CSV = "climate-adapt/dump-case-studies-search-export.csv.gz"
GCF_XLSX = "gcf/dump-gcf-open-data-funded-activities-20250112.xlsx"
GCF_JSON = "gcf/api-v1-projects-all-2023-02.json"
ADAPTECCA_XML = "climate-adapt/feed-adaptecca-cases-en-2019.xml"

GEF_COLUMNS = [
    "Title",
    "ID",
    "Countries",
    "Focal Areas",
    "Type",
    "Agencies",
    "GEF Grant",
    "Cofinancing",
    "Status",
    "Approval FY",
    "Funding Source (indexed field)",
    "Non-Grant Instrument (indexed field)",
    "Capacity-building Initiative for Transparency",
    "GEF Period",
]


@cache
def raw(fixtures: Path, relative: str) -> bytes:
    """A capture's bytes as stored in the fixtures folder."""
    return (fixtures / relative).read_bytes()


def rows(body: bytes, **options: Any) -> list[dict[str, Any]]:
    return list(iter_export(body, ExportOptions(**options)))


@pytest.fixture(scope="module")
def gef_rows(fixtures_dir: Path) -> list[dict[str, Any]]:
    return rows(raw(fixtures_dir, GEF_CSV), format="csv")


# --- the partners' real files -------------------------------------------------------------------


def test_gef_csv_export_every_project_title_prefix_kept_as_served(
    fixtures_dir: Path, gef_rows: list[dict[str, Any]]
) -> None:
    assert len(gef_rows) == 5892
    assert list(gef_rows[0]) == GEF_COLUMNS
    first = gef_rows[0]
    assert first["Title"].startswith("Project Title: \tLebanon’s First Biennial Transparency Reports")
    assert (first["ID"], first["Countries"], first["GEF Grant"], first["Approval FY"]) == (
        "11305",
        "Lebanon",
        "1,233,000",
        "2023",
    )
    assert first["Cofinancing"] == ""
    assert gef_rows[-1]["ID"] == "1"
    assert gef_rows[-1]["Title"] == "Transhumance for Biodiversity Conservation in the Southern High Atlas"
    assert len({r["ID"] for r in gef_rows}) == 5892
    assert all(list(r) == GEF_COLUMNS for r in gef_rows)


def test_climate_adapt_csv_gzip_stored_with_bom_and_multiline_cells(fixtures_dir: Path) -> None:
    capture = load_capture(CLIMATE_ADAPT_CSV, root=fixtures_dir)
    stored = raw(fixtures_dir, CLIMATE_ADAPT_CSV)
    assert stored[:2] == b"\x1f\x8b" and capture.body[:3] == b"\xef\xbb\xbf"
    assert len(capture.body) == 2_494_187
    assert hashlib.sha1(capture.body).hexdigest() == "60e1f3052b65486c41451c1547da4d59e9328d11"

    cases = rows(capture.body, format="csv")
    assert len(cases) == 146
    assert list(cases[0])[:3] == ["About", "Title", "Creation Date"], "the BOM is not part of the first key"
    assert all(c["About"].startswith("https://climate-adapt.eea.europa.eu/en/metadata/case-studies/") for c in cases)
    assert len({c["About"] for c in cases}) == 146
    assert cases[0]["Title"].startswith("Online training in climate change and health")
    assert cases[0]["Publication Date"] == "2024-10-23"
    # Quoted Description cells span many physical lines; each is still one record's cell.
    assert capture.body.count(b"\n") > 10 * 146
    assert all("\n" in c["Description"] for c in cases)
    assert all(c["Description"].startswith("All official European Union website addresses") for c in cases)
    # The file as stored (gzip) reads to the same records: magic bytes or ``gzip: true``.
    assert rows(stored, format="csv") == cases
    assert rows(stored, format="csv", gzip=True) == cases


def test_gcf_xlsx_export_header_names_and_typed_cells(fixtures_dir: Path) -> None:
    activities = rows(raw(fixtures_dir, GCF_XLSX), format="xlsx")
    assert len(activities) == 286
    assert list(activities[0]) == [
        "Ref #",
        "Modality",
        "Project Name",
        "Entity",
        "Countries",
        "BM",
        "Sector",
        "Theme",
        "Project Size",
        "ESS Category",
        "FA Financing",
    ]
    assert activities[0] == {
        "Ref #": "FP001",
        "Modality": "PAP",
        "Project Name": "Building the Resilience of Wetlands in the Province of Datem del Marañón, Peru",
        "Entity": "Profonanpe",
        "Countries": "Peru",
        "BM": "B.11",
        "Sector": "Public",
        "Theme": "Cross-cutting",
        "Project Size": "Micro",
        "ESS Category": "Category C",
        "FA Financing": 6240000,
    }
    assert activities[-1]["Ref #"] == "SAP047"
    assert len({a["Ref #"] for a in activities}) == 286


def test_gcf_projects_json_array_without_records_path(fixtures_dir: Path) -> None:
    projects = rows(raw(fixtures_dir, GCF_JSON), format="json")
    assert len(projects) == 209
    fp001 = projects[0]
    assert (fp001["ApprovedRef"], fp001["ProjectsID"], fp001["TotalGCFFunding"]) == ("FP001", 13020, 6240000)
    assert fp001["ProjectURL"] == "https://www.greenclimate.fund/projects/FP001"
    assert [c["ISO3"] for c in fp001["Countries"]] == ["PER"]
    assert len({p["ApprovedRef"] for p in projects}) == 209


def test_adaptecca_xml_items_with_cdata(fixtures_dir: Path) -> None:
    body = raw(fixtures_dir, ADAPTECCA_XML)
    assert b"<![CDATA[" in body
    items = rows(body, format="xml", record_tag="item")
    assert len(items) == 96
    first = items[0]
    assert (first["item_id"], first["field_year"]) == ("4014", "2018")
    assert first["field_title"] == (
        "Adaptation, restoration and creation of habitats for amphibians threatened "
        "by climate change in the Montes de Valsaín mountain range, Segovia"
    )
    assert first["field_information"].startswith("<p>Amphibians suffer a global decline."), (
        "CDATA markup is kept as text"
    )
    assert first["field_governance"] == "<ul><li>Local</li>\n</ul>"
    assert len({i["item_id"] for i in items}) == 96
    assert all(i["field_title"] for i in items)


# --- formats no partner capture has, derived from the real files ---------------------------------


def test_json_lines_from_the_gcf_projects(fixtures_dir: Path) -> None:
    projects = rows(raw(fixtures_dir, GCF_JSON), format="json")[:50]
    lines = [json.dumps(p, ensure_ascii=False) for p in projects]
    lines.insert(25, "")  # a blank line is skipped
    body = ("\r\n".join(lines) + "\n").encode("utf-8")
    assert rows(body, format="jsonl") == projects
    assert rows(gzip.compress(body), format="jsonl") == projects


def reserialise(records: list[dict[str, Any]], delimiter: str, encoding: str = "utf-8") -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(records[0]), delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode(encoding)


@pytest.mark.parametrize(("delimiter", "encoding"), [(";", "utf-8"), ("\t", "utf-8"), ("|", "utf-8"), (";", "cp1252")])
def test_gef_rows_rewritten_with_another_delimiter_or_encoding(
    gef_rows: list[dict[str, Any]], delimiter: str, encoding: str
) -> None:
    sample = gef_rows[:50]
    body = reserialise(sample, delimiter, encoding)
    assert rows(body, format="csv", delimiter=delimiter, encoding=encoding) == sample
    if encoding == "cp1252":
        assert "’".encode("cp1252") in body
        with pytest.raises(StructuredBodyError, match="bad CSV"):
            rows(body, format="csv", delimiter=delimiter)  # read as the default UTF-8
    else:
        assert len(rows(body, format="csv")[0]) == 1, "the default ',' does not split these rows"


def test_gzip_compressed_gef_csv_reads_like_the_plain_file(fixtures_dir: Path, gef_rows: list[dict[str, Any]]) -> None:
    packed = gzip.compress(raw(fixtures_dir, GEF_CSV))
    assert len(packed) < len(raw(fixtures_dir, GEF_CSV)) / 3
    assert rows(packed, format="csv") == gef_rows
    assert rows(packed, format="csv", gzip=True) == gef_rows


# --- bad bodies -------------------------------------------------------------------------------------


def test_truncated_json_is_a_clear_error(fixtures_dir: Path) -> None:
    body = raw(fixtures_dir, GCF_JSON)
    with pytest.raises(StructuredBodyError, match="bad JSON"):
        rows(body[: len(body) // 2], format="json")
    lines = b"\n".join(json.dumps(p).encode() for p in rows(body, format="json")[:3])
    with pytest.raises(StructuredBodyError, match="bad JSON on line 3"):
        rows(lines[:-10], format="jsonl")


def test_json_without_a_record_list_is_a_clear_error() -> None:
    with pytest.raises(StructuredBodyError, match=r"no record list at data\.items"):
        rows(b'{"data": {"items": "none"}}', format="json", records_path="data.items")


def test_truncated_xml_keeps_the_records_before_the_cut(fixtures_dir: Path) -> None:
    body = raw(fixtures_dir, ADAPTECCA_XML)
    seen: list[str] = []
    with pytest.raises(StructuredBodyError, match="bad XML"):
        for item in iter_export(body[: len(body) // 2], ExportOptions(format="xml", record_tag="item")):
            seen.append(item["item_id"])
    full = [i["item_id"] for i in rows(body, format="xml", record_tag="item")]
    assert 0 < len(seen) < 96 and seen == full[: len(seen)]


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE cases [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<cases><item><item_id>1</item_id><field_title>&secret;</field_title></item></cases>
"""
XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE cases [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<cases><item><item_id>1</item_id></item></cases>
"""


@pytest.mark.parametrize("body", [XXE, XXE_PARAMETER], ids=["general", "parameter"])
def test_xml_with_an_external_entity_is_refused(body: bytes) -> None:
    with pytest.raises(StructuredBodyError, match="external entity"):
        rows(body, format="xml", record_tag="item")


def test_xml_internal_entities_are_not_expanded() -> None:
    small = (
        b'<?xml version="1.0"?><!DOCTYPE cases [<!ENTITY org "UNEP">]>'
        b"<cases><item><item_id>1</item_id><field_title>&org; &org;</field_title></item></cases>"
    )
    assert rows(small, format="xml", record_tag="item") == [{"item_id": "1", "field_title": ""}]
    # Billion laughs: libxml2 refuses the amplification outright; it is never expanded either way.
    levels = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE cases [{"".join(levels)}]>'
        "<cases><item><item_id>1</item_id><field_title>&lol9;</field_title></item></cases>"
    ).encode()
    try:
        items = rows(bomb, format="xml", record_tag="item")
    except StructuredBodyError as exc:
        assert "bad XML" in str(exc)
    else:
        assert items == [{"item_id": "1", "field_title": ""}]


def test_xml_doctype_naming_an_external_dtd_is_not_fetched() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE cases PUBLIC "-//Test//DTD Cases//EN" '
        b'"http://127.0.0.1:9/cases.dtd">\n<cases><item><item_id>7</item_id></item></cases>'
    )
    assert rows(body, format="xml", record_tag="item") == [{"item_id": "7"}]


def test_xml_export_without_record_tag_is_a_clear_error(fixtures_dir: Path) -> None:
    with pytest.raises(StructuredBodyError, match="record_tag"):
        rows(raw(fixtures_dir, ADAPTECCA_XML), format="xml")


def test_gzip_expanding_beyond_the_cap_is_refused(fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packed = gzip.compress(raw(fixtures_dir, GEF_CSV))
    monkeypatch.setattr(structured, "MAX_DECOMPRESSED", 512 * 1024)
    with pytest.raises(StructuredBodyError, match="expands beyond 524288 bytes"):
        rows(packed, format="csv")
    with pytest.raises(StructuredBodyError, match="expands beyond"):
        rows(packed, format="csv", gzip=True)


@pytest.mark.parametrize("cut", ["truncated", "not_gzip"])
def test_broken_gzip_is_a_clear_error(fixtures_dir: Path, cut: str) -> None:
    stored = raw(fixtures_dir, CLIMATE_ADAPT_CSV)
    body = stored[: len(stored) // 2] if cut == "truncated" else raw(fixtures_dir, GEF_CSV)
    with pytest.raises(StructuredBodyError, match="bad gzip body"):
        rows(body, format="csv", gzip=True)


def test_xlsx_that_is_not_a_zip_is_a_clear_error(fixtures_dir: Path) -> None:
    with pytest.raises(StructuredBodyError, match="bad XLSX"):
        rows(raw(fixtures_dir, GEF_CSV), format="xlsx")


@pytest.mark.parametrize("body", [b"", b"\xef\xbb\xbf", b"\n\n"], ids=["empty", "bom_only", "blank_lines"])
def test_empty_csv_is_a_clear_error(body: bytes) -> None:
    with pytest.raises(StructuredBodyError, match="no header row"):
        rows(body, format="csv")


# --- streaming -----------------------------------------------------------------------------------


def test_100k_row_csv_streams_in_flat_memory(gef_rows: list[dict[str, Any]]) -> None:
    """GEF rows repeated under new IDs to 100,000 rows (~27 MB): iterating keeps the peak of new
    Python allocations far below the body's size (the body is allocated before tracing)."""
    total = 100_000
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(GEF_COLUMNS)
    for n in range(total):
        row = gef_rows[n % len(gef_rows)]
        writer.writerow([str(n + 1_000_000) if c == "ID" else row[c] for c in GEF_COLUMNS])
    body = out.getvalue().encode("utf-8")
    del out, writer
    assert len(body) > 24 * 1024 * 1024

    tracemalloc.start()
    try:
        count, last_id = 0, None
        for record in iter_export(body, ExportOptions(format="csv")):
            count += 1
            last_id = record["ID"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, last_id) == (total, str(total - 1 + 1_000_000))
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while streaming a {len(body) / 2**20:.0f} MiB body"
