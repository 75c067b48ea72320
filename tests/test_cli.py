"""The CLI's JSON outputs and its one-line errors for user mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harvester.cli import cli
from harvester.registry import load_registry


@pytest.fixture
def runner(harvester_env: Path) -> CliRunner:
    return CliRunner()


def test_sources_list_json_shows_kind_and_verified_flag(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["sources", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.output)}
    assert rows["gef_projects"]["kind"] == "export"
    assert rows["gef_projects"]["verified"] is True
    assert set(rows) == set(load_registry())
    assert all(isinstance(r["verified"], bool) for r in rows.values())


def test_sources_check_prints_the_effective_politeness(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["sources", "check"])
    assert result.exit_code == 0, result.output
    assert ("gef_projects (export, verified): one CSV file, a candidate per row keyed by ID") in result.output
    assert (
        "politeness: robots.txt obeyed, delay 1.0 s, 1 request(s) per host, autothrottle on, "
        "Crawl-delay cap 30.0 s, timeout 30 s, max 33554432 bytes, 10 redirects"
    ) in result.output
    data = json.loads(runner.invoke(cli, ["sources", "check", "--json"]).output)
    politeness = {d["id"]: d["politeness"] for d in data}["gef_projects"]
    assert politeness["user_agent"].startswith("CHM-Harvester/")
    assert "+http" in politeness["user_agent"]


def test_unknown_source_is_one_line_and_exit_2(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["crawl", "no_such_source"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown source 'no_such_source'; known: ")
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_database_url_is_one_line_and_exit_2(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from harvester.settings import get_settings

    monkeypatch.setenv("HARVESTER_DATABASE_URL", "notadb://nowhere")
    get_settings.cache_clear()
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 2
    assert result.output.startswith("error: unsupported database URL 'notadb://nowhere'")


def test_unreachable_database_is_one_line_and_exit_2(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from harvester.settings import get_settings

    monkeypatch.setenv("HARVESTER_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    result = runner.invoke(cli, ["queue", "--json"])
    assert result.exit_code == 2
    assert result.output.startswith("error: database unavailable:")
    assert len(result.output.strip().splitlines()) == 1


def test_unreadable_registry_is_one_line_and_exit_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harvester.settings import get_settings

    (tmp_path / "broken.yaml").write_text("id: broken\nkind: [\n", encoding="utf-8")
    monkeypatch.setenv("HARVESTER_REGISTRY_DIR", str(tmp_path))
    get_settings.cache_clear()
    result = runner.invoke(cli, ["sources", "list"])
    assert result.exit_code == 2
    assert result.output.startswith("error: broken.yaml: cannot read:")


def test_every_command_has_help_and_is_in_the_readme(runner: CliRunner) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")

    def walk(group: object, prefix: list[str]) -> list[list[str]]:
        out = []
        for name, command in getattr(group, "commands", {}).items():
            path = [*prefix, name]
            out.append(path)
            out += walk(command, path)
        return out

    for path in walk(cli, []):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage:" in result.output
        assert f"harvester {' '.join(path)}" in readme, f"`harvester {' '.join(path)}` missing from README"


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from harvester.settings import get_settings
    from storage.db import dispose_engines

    monkeypatch.setenv("HARVESTER_DATABASE_URL", url)
    get_settings.cache_clear()
    dispose_engines()


def test_a_mysql_url_is_one_line_not_a_traceback(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_database(monkeypatch, "mysql://harvester@127.0.0.1/harvester")
    for args in (["db", "upgrade"], ["queue"], ["crawl", "gef_projects"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.strip().splitlines() == [
            "error: unsupported database URL 'mysql://harvester@127.0.0.1/harvester': use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ]


def test_a_misspelt_sqlite_path_is_refused_instead_of_creating_an_empty_database(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use_database(monkeypatch, f"sqlite:///{tmp_path / 'no-such-folder' / 'harvester.sqlite3'}")
    for args in (["db", "upgrade"], ["queue"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert result.output.startswith(
            f"error: SQLite database folder {tmp_path / 'no-such-folder'} does not exist"
        ), result.output
    assert not (tmp_path / "no-such-folder").exists()

    misspelt = tmp_path / "harvestr.sqlite3"
    _use_database(monkeypatch, f"sqlite:///{misspelt}")
    for args in (["queue"], ["crawl", "gef_projects"], ["runs"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith(f"error: SQLite database {misspelt} does not exist"), result.output
    assert not misspelt.exists()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0  # made on purpose
    assert runner.invoke(cli, ["queue", "--json"]).output.strip() == "[]"
