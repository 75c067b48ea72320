"""``harvester sources test``: every verified source matches its reviewed expected outputs, and a changed
selector is caught as a regression."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harvester.cli import cli
from harvester.crawl.source_check import EXPECTED_DIR, check_capture, expected_path
from harvester.registry import load_registry
from harvester.settings import get_settings
from tests.conftest import FIXTURES

# One test per verified capture, so a failure reads `<source>/<capture>:<field>`; whole-corpus captures
# (the 5,892-row GEF export) are slow, the rest stay in the fast loop.
CAPTURES = [
    pytest.param(
        spec,
        ref,
        id=f"{spec.id}/{Path(ref.fixture).name}",
        marks=[pytest.mark.slow] if (FIXTURES / ref.fixture).stat().st_size > 1_000_000 else [],
    )
    for spec in load_registry().values()
    if spec.verified
    for ref in spec.replay
]


def test_every_verified_source_has_expected_outputs_for_its_captures() -> None:
    for spec in load_registry().values():
        if spec.verified:
            records = [p for c in spec.replay if (p := expected_path(spec, c.fixture)).is_file()]
            assert records, f"{spec.id} has no expected output under {EXPECTED_DIR}"


@pytest.mark.parametrize(("spec", "capture"), CAPTURES)
def test_each_verified_capture_extracts_its_reviewed_expected_fields(spec: Any, capture: Any) -> None:
    tally = check_capture(spec, capture)
    assert not tally.problems, "\n".join(tally.problems)
    assert tally.ok


@pytest.mark.slow
def test_sources_test_passes_on_the_bundled_sources() -> None:
    result = CliRunner().invoke(cli, ["sources", "test"])
    assert result.exit_code == 0, result.output
    assert "gef_projects: ok" in result.output
    assert "REGRESSION" not in result.output


def test_a_changed_selector_is_reported_as_a_regression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "sources"
    shutil.copytree(get_settings().registry_dir, registry)
    entry = registry / "elsa_undp.yaml"
    entry.write_text(
        entry.read_text(encoding="utf-8").replace('title: "main h1::text"', 'title: "main h2::text"'), encoding="utf-8"
    )
    monkeypatch.setenv("HARVESTER_REGISTRY_DIR", str(registry))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["sources", "test", "elsa_undp"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "elsa_undp: REGRESSION" in result.output
    assert any(line.split()[:3] == ["title", "0", "3"] for line in result.output.splitlines()), result.output
