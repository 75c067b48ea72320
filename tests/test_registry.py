"""The source registry: every entry valid, bad entries rejected with the file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from harvester.registry import RegistryError, SourceKind, load_registry

GOOD = """\
id: {id}
name: Test
kind: api
start_urls: ["https://example.org/api"]
verified: false
verification: documented interface only
"""


def test_bundled_registry_loads_and_verified_sources_name_their_captures(fixtures_dir: Path) -> None:
    registry = load_registry()
    assert {s.kind for s in registry.values()} >= {
        SourceKind.EXPORT,
        SourceKind.API,
        SourceKind.OAI,
        SourceKind.LISTING,
    }
    for spec in registry.values():
        if spec.verified:
            for capture in spec.replay:
                assert (fixtures_dir / capture.fixture).is_file(), (spec.id, capture.fixture)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_unknown_key_is_rejected_naming_file_and_field(tmp_path: Path) -> None:
    _write(tmp_path, "bad_source", GOOD.format(id="bad_source") + "politness: {download_delay: 2}\n")
    with pytest.raises(RegistryError, match=r"bad_source\.yaml: politness: Extra inputs are not permitted"):
        load_registry(tmp_path)


def test_wrong_type_is_rejected_naming_the_nested_field(tmp_path: Path) -> None:
    _write(tmp_path, "bad_source", GOOD.format(id="bad_source") + "politeness: {download_delay: soon}\n")
    with pytest.raises(RegistryError, match=r"politeness\.download_delay"):
        load_registry(tmp_path)


def test_id_must_match_file_name(tmp_path: Path) -> None:
    _write(tmp_path, "one_name", GOOD.format(id="other_name"))
    with pytest.raises(RegistryError, match="must equal the file name"):
        load_registry(tmp_path)


def test_non_http_start_url_is_refused(tmp_path: Path) -> None:
    _write(
        tmp_path, "local_file", GOOD.format(id="local_file").replace("https://example.org/api", "file:///etc/passwd")
    )
    with pytest.raises(RegistryError, match="only http and https"):
        load_registry(tmp_path)


def test_verified_source_without_captures_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "claims_verified", GOOD.format(id="claims_verified").replace("verified: false", "verified: true"))
    with pytest.raises(RegistryError, match="needs the 'replay' captures"):
        load_registry(tmp_path)


def test_unparseable_yaml_is_one_clear_error(tmp_path: Path) -> None:
    _write(tmp_path, "broken", "id: broken\nname: [unclosed\n")
    with pytest.raises(RegistryError, match=r"^broken\.yaml: cannot read"):
        load_registry(tmp_path)
