"""Docs that cannot drift: every setting and every source is in the README."""

from __future__ import annotations

from pathlib import Path

from harvester.registry import load_registry
from harvester.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_has_help_and_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no help text"
        assert f"`HARVESTER_{name.upper()}`" in README, f"HARVESTER_{name.upper()} missing from README"


def test_every_source_is_in_a_readme_sources_table() -> None:
    for spec in load_registry().values():
        assert f"| `{spec.id}` | {spec.kind.value}" in README, f"{spec.id} missing from the README sources tables"
