"""The CHM facts the mapper and validator need: schema field tables (read at run time from the shared
reference folder) and the known thesaurus ids (``terms.yaml``, derived from that folder)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pycountry
import yaml

from harvester.settings import get_settings

SCHEMAS = ("resource", "capacityBuildingInitiative", "organization")
UN_LANGUAGES = ("ar", "en", "es", "fr", "ru", "zh")
_MAX_WORDS = re.compile(r"max\.?\s+(\d+)\s+words", re.IGNORECASE)


class ReferenceMissingError(FileNotFoundError):
    """The CHM reference folder or one of its field tables is not where the settings say."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    mandatory: bool
    max_words: int | None = None


@dataclass(frozen=True)
class SchemaTable:
    schema: str
    fields: dict[str, FieldSpec]

    @property
    def mandatory(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.mandatory]


def chm_reference_dir(base: Path | None = None) -> Path:
    folder = (base or get_settings().reference_dir) / "chm"
    if not folder.is_dir():
        raise ReferenceMissingError(
            f"CHM reference folder {folder} not found: put the shared reference data there or set "
            "HARVESTER_REFERENCE_DIR"
        )
    return folder


@cache
def terms() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((Path(__file__).with_name("terms.yaml")).read_text(encoding="utf-8"))
    return data


@cache
def _load_table(folder: Path, schema: str) -> SchemaTable:
    path = folder / f"schema-fields-{schema}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceMissingError(f"CHM field table {path} not found") from None
    limits = terms()["wordLimits"].get(schema, {})
    fields: dict[str, FieldSpec] = {}
    for entry in raw["fields"]:
        name = entry["field"]
        if "." in name:
            continue  # nested parts of an object field (nagoya.subjects, ...) are the object's business
        found = _MAX_WORDS.search(entry.get("title") or "")
        max_words = int(found.group(1)) if found else limits.get(name)
        fields[name] = FieldSpec(name, _field_type(schema, name, entry["type"]), bool(entry["mandatory"]), max_words)
    return SchemaTable(schema, fields)


def _field_type(schema: str, name: str, declared: str) -> str:
    # The docs' table types publicationDate as lstring, but its example and the forms use a "YYYY-MM" string.
    if schema == "resource" and name == "publicationDate":
        return "yearMonth"
    return declared


def schema_table(schema: str, base: Path | None = None) -> SchemaTable:
    if schema not in SCHEMAS:
        raise ValueError(f"unsupported CHM schema {schema!r}; one of {', '.join(SCHEMAS)}")
    return _load_table(chm_reference_dir(base), schema)


@cache
def country_ids() -> frozenset[str]:
    return frozenset(c.alpha_2.lower() for c in pycountry.countries) | {"eu"}


def known_ids(domain: str) -> frozenset[str]:
    """Known term ids of a thesaurus field (``cbdSubjects``, ``gbfTargets``, ``countryRegions`` ...)."""
    data = terms()
    if domain == "countryRegions":
        return country_ids() | frozenset(data["regions"])
    entry = data.get(domain)
    if isinstance(entry, dict):
        return frozenset(f"{entry['prefix']}{n:02d}" for n in range(entry["first"], entry["last"] + 1))
    return frozenset(entry or ())
