"""``harvester extract`` on saved responses: every bundled capture, Arabic and Chinese pages, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harvester.cli import cli
from harvester.recordings.fixtures import folder_index
from harvester.registry import load_registry
from tests.conftest import FIXTURES

# The whole 5,892-row GEF export is slow; every other capture stays in the fast loop.
CAPTURES = [
    pytest.param(
        spec.id,
        ref.fixture,
        id=f"{spec.id}:{Path(ref.fixture).name}",
        marks=[pytest.mark.slow] if (FIXTURES / ref.fixture).stat().st_size > 1_000_000 else [],
    )
    for spec in load_registry().values()
    for ref in spec.replay
    if not (spec.kind == "listing" and "index" in ref.fixture)
]


def extract(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["extract", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(("source_id", "fixture"), CAPTURES)
def test_extract_works_on_every_bundled_capture(fixtures_dir: Path, source_id: str, fixture: str) -> None:
    path = fixtures_dir / fixture
    url = folder_index(path.parent)[path.name]["url"]
    code, output = extract("--source", source_id, "--url", url, "--json", str(path))
    assert code == 0, output
    candidates = json.loads(output[output.index("[") :])
    assert candidates
    first = candidates[0]
    assert {
        "url",
        "title",
        "organisations",
        "countries",
        "start_date",
        "end_date",
        "published",
        "language",
        "summary",
        "text",
        "criteria",
        "provenance",
    } <= set(first)
    assert first["provenance"]["title"]


@pytest.mark.parametrize(
    ("name", "lang", "title"),
    [
        ("xinhua_drug-supply_zh.html", "zh", "短缺药品保供稳价 全力保障临床用药需求"),
        (
            "assabah_sudan_ar.html",
            "ar",
            "الناشط الحقوقي السوداني خالد عبد الكريم ماسا لـ«الصباح»: "
            "كل الشروط متوفرة لثورة سودانية ولا حاجة لنستورد شيئا",
        ),
    ],
)
def test_extract_arabic_and_chinese_pages(fixtures_dir: Path, name: str, lang: str, title: str) -> None:
    path = fixtures_dir / "formats" / "multilingual" / name
    url = folder_index(path.parent)[name]["url"]
    code, output = extract("--source", "elsa_undp", "--url", url, "--json", str(path))
    assert code == 0, output
    [candidate] = json.loads(output)
    assert candidate["language"] == lang
    assert candidate["title"] == title
    assert candidate["provenance"]["text"] == "trafilatura"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\x00\x01\x02\x03" * 100, "binary body"),
    ],
)
def test_a_bad_file_is_one_clear_error_line(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.html"
    bad.write_bytes(content)
    code, output = extract("--source", "elsa_undp", "--url", "https://elsa-undp.github.io/elsar/x.html", str(bad))
    assert code != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert any(message in line for line in lines), output
    assert "Traceback" not in output


def test_truncated_export_is_one_clear_error_line(fixtures_dir: Path, tmp_path: Path) -> None:
    cut = tmp_path / "projects.json"
    cut.write_bytes((fixtures_dir / "gcf/api-v1-projects-all-2023-02.json").read_bytes()[:5000])
    code, output = extract("--source", "gcf_projects", "--url", "https://api.gcfund.org/v1/projects", str(cut))
    assert code != 0
    assert "bad JSON" in output and "Traceback" not in output


def test_wrong_charset_page_is_decoded_not_garbled(fixtures_dir: Path) -> None:
    path = fixtures_dir / "formats/odd/tierschutzpartei_wildvogel_declared-utf8-has-cp1252.html"
    code, output = extract("--source", "elsa_undp", "--url", "https://www.tierschutzpartei.de/x/", "--json", str(path))
    assert code == 0, output
    [candidate] = json.loads(output)
    assert "\ufffd" not in candidate["text"] and "Ă" not in candidate["text"]
    assert candidate["language"] == "de"
