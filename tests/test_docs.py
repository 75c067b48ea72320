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


def test_readme_set_up_commands_and_ci_install_the_locked_versions() -> None:
    root = Path(__file__).resolve().parents[1]
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0].strip() for b in README.split("```bash\n")[1:3]]
    assert all("pip install -c constraints.txt -e " in b for b in blocks), blocks
    assert "pip install --quiet -c constraints.txt -e '.[test]'" in ci
    assert blocks[1].rsplit("&& ", 1)[1] in ci.splitlines(), "CI must run README's test command"
    pinned = [
        line
        for line in (root / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert pinned and all("==" in line for line in pinned), "constraints.txt pins exact versions"
