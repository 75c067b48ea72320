"""``harvester import``: the three partner files in fixtures/{unfccc-cip,wipo-green,cgspace} imported as runs
of their own, through the registry entries' record mappings. Values asserted below were read off the files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from harvester.cli.main import cli
from harvester.registry import RegistryError, load_source_file
from harvester.settings import get_settings
from storage.db import dispose_engines, session_factory
from storage.models import Candidate, CrawlRun, Decision, Source
from tests.conftest import reset_postgres

CIP = "unfccc-cip/dump-initiatives-20230611.csv"
WIPO = "wipo-green/dump-wind-technologies-69-processed.json"
WORLDFISH = "cgspace/dump-worldfish-dspace6-rest-climate-change-journal-articles.csv"
CIP_URL = "https://climateinitiativesplatform.org/index.php/Category:Climate_initiative#"


def harvester(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def candidate(key: str) -> Candidate:
    with session_factory()() as session:
        return session.scalars(select(Candidate).where(Candidate.record_key == key)).one()


def counts() -> tuple[int, int, int]:
    """Sources, runs and candidates stored."""
    with session_factory()() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Source, CrawlRun, Candidate))


def cip_rows(fixtures_dir: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO((fixtures_dir / CIP).read_text(encoding="utf-8-sig"), newline="")))
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


@pytest.mark.slow
def test_cip_file_maps_each_initiative_and_a_reimport_changes_nothing(harvester_env: Path, fixtures_dir: Path) -> None:
    result = harvester("import", "unfccc_cip_initiatives", "--json")
    assert result.exit_code == 0, result.output
    assert '"new": 288' in result.output

    fcpf = candidate("Forest Carbon Partnership Facility (FCPF)")
    assert fcpf.url == CIP_URL + "Forest Carbon Partnership Facility (FCPF)"
    assert fcpf.extra["function"] == [
        "Capacity building",
        "Technical dialogue",
        "Implementation",
        "Funding",
        "Political dialogue",
    ]
    assert fcpf.regions == ["Global", "Africa", "Asia and the Pacific", "Latin America and The Caribbean"]
    assert (fcpf.start_date, fcpf.end_date) == ("2008", "2025")
    assert fcpf.organisations == ["The World Bank"]
    assert fcpf.extra["lead_organisation_type"] == "International organisation"
    assert {"Agriculture", "Forestry", "Adaptation"} <= set(fcpf.keywords) and "Transport" not in fcpf.keywords

    pacmun = candidate("PACMUN project")
    assert pacmun.extra["function"] == ["Technical dialogue", "Political dialogue"]
    assert pacmun.regions == ["Only one country"]
    assert (pacmun.start_date, pacmun.end_date) == ("2011", "2015")
    assert pacmun.organisations == ["ICLEI Mexico"]
    assert pacmun.extra["lead_organisation_location"] == "Mexico"

    sha256 = hashlib.sha256((fixtures_dir / CIP).read_bytes()).hexdigest()
    assert (
        pacmun.provenance["file"],
        pacmun.provenance["file_sha256"],
        pacmun.provenance["file_captured"],
        pacmun.provenance["file_record"],
    ) == ("dump-initiatives-20230611.csv", sha256, "2023-06-11", "198")
    # The CIP lists the same alliance under two names: the import links them as near-duplicates.
    assert (
        candidate("Net-Zero Asset Owner Alliance").duplicate_cluster
        == candidate("United Nations-Convened Net Zero Asset Owner Alliance").duplicate_cluster
        is not None
    )

    with session_factory()() as session:
        source = session.get(Source, "unfccc_cip_initiatives")
        assert source is not None and (source.kind, source.verified) == ("file", False)
        run = session.scalars(select(CrawlRun)).one()
        assert (run.trigger, run.replay, run.status) == ("import", False, "finished")
        assert run.stats["import"]["files"][0]["sha256"] == sha256
        assert run.stats["classifier"] == "rules" and run.stats["duration_s"] > 0
        before = {c.id: (c.version_id, c.updated_at, c.record_hash) for c in session.scalars(select(Candidate))}
        decisions = session.scalar(select(func.count()).select_from(Decision))

    again = harvester("import", "unfccc_cip_initiatives", "--json")
    assert again.exit_code == 0, again.output
    with session_factory()() as session:
        run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
        assert run is not None
        assert (run.stats["new"], run.stats["updated"], run.stats["not_modified"], run.stats["gone"]) == (0, 0, 288, 0)
        after = {c.id: (c.version_id, c.updated_at, c.record_hash) for c in session.scalars(select(Candidate))}
        assert after == before
        assert session.scalar(select(func.count()).select_from(Decision)) == decisions
        assert set(session.scalars(select(Candidate.last_run_id))) == {run.id}


def test_wipo_green_and_worldfish_files_are_keyed_by_article_id_and_handle(harvester_env: Path) -> None:
    assert harvester("import", "wipo_green_wind").exit_code == 0
    assert harvester("import", "worldfish_articles").exit_code == 0
    assert counts() == (2, 2, 69 + 38)

    flexible = candidate("171988")
    assert flexible.url == "https://wipogreen.wipo.int/wipogreen-database/articles/171988"
    assert flexible.title == "Flexibile foundations for earthquake-proof offshore wind power"
    assert flexible.organisations == ["J-Power"]
    assert flexible.published == "2025-04-30"
    assert flexible.extra["readiness"] == "Technology development / prototype (TRL 5-6)"
    assert flexible.provenance["file_captured"] == "2025-09-02"

    black_box = candidate("https://hdl.handle.net/20.500.12348/3792")
    assert black_box.url == "https://hdl.handle.net/20.500.12348/3792"
    assert black_box.title == "The black box of power in polycentric environmental governance"
    assert black_box.organisations[:2] == ["James Cook University", "University of Exeter"]
    assert black_box.regions == ["Global"] and black_box.published == "2019"
    assert "small-scale fisheries" in black_box.keywords
    assert black_box.extra["doi"] == "https://doi.org/10.1016/j.gloenvcha.2019.101934"


def test_a_record_without_its_key_refuses_the_whole_file(
    harvester_env: Path, fixtures_dir: Path, tmp_path: Path
) -> None:
    header, rows = cip_rows(fixtures_dir)
    rows = [list(r) for r in rows[:5]]
    rows[3][header.index("Name of initiative")] = ""
    bad = write_csv(tmp_path / "cip-five.csv", header, rows)
    result = harvester("import", "unfccc_cip_initiatives", str(bad), "--captured", "2023-06-11")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {bad}: record 4 has no 'Name of initiative' (the record key)"
    ]
    assert counts() == (0, 0, 0)


def test_a_malformed_file_is_one_error_line_and_nothing_is_stored(
    harvester_env: Path, fixtures_dir: Path, tmp_path: Path
) -> None:
    assert harvester("import", "worldfish_articles").exit_code == 0
    stored = counts()
    body = (fixtures_dir / WIPO).read_bytes()
    cut = tmp_path / "wipo-cut.json"
    cut.write_bytes(body[: len(body) // 2])
    result = harvester("import", "wipo_green_wind", str(cut), "--captured", "2025-09-02")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {cut}: not a readable JSON file: bad JSON")
    assert counts() == stored


def test_a_repeated_key_refuses_the_file(harvester_env: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    header, rows = cip_rows(fixtures_dir)
    twice = write_csv(tmp_path / "cip-twice.csv", header, [rows[0], rows[1], rows[0]])
    result = harvester("import", "unfccc_cip_initiatives", str(twice), "--captured", "2023-06-11")
    assert result.exit_code == 2
    assert "record 3 repeats the record key '100 Resilient Cities' of cip-twice.csv record 1" in result.output
    assert counts() == (0, 0, 0)


def test_a_record_missing_from_the_next_file_is_gone_only_when_the_file_is_complete(
    harvester_env: Path, fixtures_dir: Path, tmp_path: Path
) -> None:
    header, rows = cip_rows(fixtures_dir)
    first = write_csv(tmp_path / "cip-2023-06.csv", header, rows[:5])
    later = write_csv(tmp_path / "cip-2023-07.csv", header, rows[:4])
    fifth = rows[4][header.index("Name of initiative")]
    assert harvester("import", "unfccc_cip_initiatives", str(first), "--captured", "2023-06-11").exit_code == 0

    partial = harvester("import", "unfccc_cip_initiatives", str(later), "--captured", "2023-07-01", "--json")
    assert partial.exit_code == 0 and '"gone": 0' in partial.output
    assert candidate(fifth).gone_at_source is False

    complete = harvester(
        "import", "unfccc_cip_initiatives", str(later), "--captured", "2023-07-01", "--complete", "--json"
    )
    assert complete.exit_code == 0 and '"gone": 1' in complete.output and '"not_modified": 4' in complete.output
    gone = candidate(fifth)
    assert gone.gone_at_source is True
    with session_factory()() as session:
        decision = session.scalars(select(Decision).where(Decision.candidate_id == gone.id)).one()
    assert decision.reason_code == "gone_at_source" and decision.note == "not in the complete file cip-2023-07.csv"
    # Unchanged records keep the provenance of the file their values came from.
    resilient = candidate("100 Resilient Cities")
    assert resilient.provenance["file"] == "cip-2023-06.csv"
    assert resilient.keywords == ["Cities and subnational governments", "Adaptation", "Resilience"]  # theme flags


def test_a_given_file_needs_its_capture_date(harvester_env: Path, fixtures_dir: Path) -> None:
    result = harvester("import", "unfccc_cip_initiatives", str(fixtures_dir / CIP))
    assert result.exit_code == 2 and "--captured YYYY-MM-DD" in result.output


def test_a_file_source_is_never_verified_and_never_crawled(harvester_env: Path, tmp_path: Path) -> None:
    entry = (Path(__file__).resolve().parents[1] / "harvester/sources/wipo_green_wind.yaml").read_text()
    bad = tmp_path / "wipo_green_wind.yaml"
    bad.write_text(entry.replace("verified: false", "verified: true\nreplay: [{fixture: " + WIPO + "}]"))
    with pytest.raises(RegistryError, match="a file source is never verified"):
        load_source_file(bad)
    result = harvester("crawl", "wipo_green_wind")
    assert result.exit_code == 2 and "a file source is imported, not crawled" in result.output


@pytest.mark.postgres
def test_a_reimport_on_postgresql_changes_nothing(
    harvester_env: Path, postgres_url: str, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_postgres(postgres_url).dispose()
    monkeypatch.setenv("HARVESTER_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    dispose_engines()
    header, rows = cip_rows(fixtures_dir)
    five = write_csv(tmp_path / "cip-five.csv", header, rows[:5])
    assert harvester("import", "unfccc_cip_initiatives", str(five), "--captured", "2023-06-11").exit_code == 0
    with session_factory()() as session:
        before = {c.id: (c.version_id, c.record_hash) for c in session.scalars(select(Candidate))}
    again = harvester("import", "unfccc_cip_initiatives", str(five), "--captured", "2023-06-11", "--json")
    assert again.exit_code == 0 and '"not_modified": 5' in again.output and '"new": 0' in again.output
    with session_factory()() as session:
        assert {c.id: (c.version_id, c.record_hash) for c in session.scalars(select(Candidate))} == before
    assert counts() == (1, 2, 5)


@pytest.mark.slow
def test_xlsx_and_json_lines_files_import_with_the_same_mapping(
    registry: Path, fixtures_dir: Path, tmp_path: Path
) -> None:
    """The GCF funded-activities XLSX export, and the WIPO GREEN records rewritten one JSON object a line."""
    (registry / "gcf_file.yaml").write_text(
        textwrap.dedent("""\
        id: gcf_file
        name: GCF funded activities as a file
        kind: file
        start_urls: ["https://data.greenclimate.fund/public/data/projects"]
        verified: false
        verification: test entry
        file: {format: xlsx, fixture: gcf/dump-gcf-open-data-funded-activities-20250112.xlsx, captured: 2025-01-12}
        record:
          key: "Ref #"
          url: "https://www.greenclimate.fund/projects/{Ref #}"
          fields: {title: Project Name, organisations: Entity, countries: {path: Countries, split: ","}}
        """)
    )
    (registry / "wipo_lines.yaml").write_text(
        textwrap.dedent("""\
        id: wipo_lines
        name: WIPO GREEN records as JSON Lines
        kind: file
        start_urls: ["https://wipogreen.wipo.int/wipogreen-database"]
        verified: false
        verification: test entry
        file: {format: jsonl}
        record:
          key: id
          url: "https://wipogreen.wipo.int/wipogreen-database/articles/{id}"
          fields: {title: technologyNameEN, text: description, organisations: companyName}
        """)
    )
    assert harvester("import", "gcf_file").exit_code == 0
    wetlands = candidate("FP001")
    assert wetlands.title == "Building the Resilience of Wetlands in the Province of Datem del Marañón, Peru"
    assert (wetlands.organisations, wetlands.countries) == (["Profonanpe"], ["PE"])

    lines = tmp_path / "wipo.jsonl"
    records = json.loads((fixtures_dir / WIPO).read_text(encoding="utf-8"))
    lines.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    result = harvester("import", "wipo_lines", str(lines), "--captured", "2025-09-02", "--json")
    assert result.exit_code == 0 and '"new": 69' in result.output
    assert candidate("171988").organisations == ["J-Power"]
    assert counts() == (2, 2, 286 + 69)


def test_every_bundled_file_source_names_a_file_in_the_fixtures(fixtures_dir: Path) -> None:
    from harvester.registry import SourceKind, load_registry

    files = {s.id: s.file for s in load_registry().values() if s.kind == SourceKind.FILE}
    assert set(files) == {"unfccc_cip_initiatives", "wipo_green_wind", "worldfish_articles"}
    for source_id, options in files.items():
        assert options is not None and options.fixture and options.captured, source_id
        assert (fixtures_dir / options.fixture).is_file(), source_id


def test_the_candidate_page_says_which_file_a_record_came_from(
    harvester_env: Path, fixtures_dir: Path, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from harvester.web.app import create_app
    from harvester.web.auth import add_user
    from storage.db import get_engine, transaction

    header, rows = cip_rows(fixtures_dir)
    three = write_csv(tmp_path / "cip-three.csv", header, rows[:3])
    assert harvester("import", "unfccc_cip_initiatives", str(three), "--captured", "2023-06-11").exit_code == 0
    with transaction() as session:
        add_user(session, "ada", "curator", "curator-pass-1")
    sha256 = hashlib.sha256(three.read_bytes()).hexdigest()
    with TestClient(create_app(get_engine()), follow_redirects=False) as client:
        assert (
            client.post("/login", data={"name": "ada", "password": "curator-pass-1", "next": "/queue"}).status_code
            == 303
        )
        page = client.get(f"/candidates/{candidate('2050 Pathways Platform').id}")
    assert page.status_code == 200
    assert (
        f"cip-three.csv, record 2, sha256 <code>{sha256}</code>, captured 2023-06-11 "
        "(a partner's file, not a page the harvester fetched)"
    ) in page.text
