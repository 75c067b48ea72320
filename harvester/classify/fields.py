"""Turn a ``ClassifierInput`` into named text fields, each with its weight and the matchers it gets.

Field names are the ones evidence offsets refer to: ``title``, ``summary``, ``text``,
``keywords[i]``, ``organisations[i]``, ``regions[i]``, ``countries[i]``, ``extra.<key>`` and
``extra.<key>[i]``. ``field_text(doc, name)`` returns the text a name refers to.

Field factors (how much one match counts): title 2.0, keywords 1.5, structured metadata
(extra, regions, organisations) 1.5, countries given without a code 2.0, summary 1.25, text 1.0.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harvester.classify.model import ClassifierInput

ALL_TERMS = ("support_type", "cbd_relevance", "active", "international", "organisations")
MAX_LIST_ITEMS = 200
MAX_EXTRA_KEYS = 50

_FACTORS = {
    "title": 2.0,
    "summary": 1.25,
    "text": 1.0,
    "keywords": 1.5,
    "extra": 1.5,
    "regions": 1.5,
    "organisations": 1.5,
    "countries": 2.0,
}


@dataclass(frozen=True)
class Field:
    name: str
    text: str
    factor: float
    groups: tuple[str, ...]  # vocabulary matchers run over this field
    find_countries: bool  # scan for country names


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value[:MAX_LIST_ITEMS] if isinstance(v, str)]
    return []


def collect_fields(doc: ClassifierInput) -> list[Field]:
    """The non-empty fields of ``doc`` in display order (tolerates missing or mistyped values)."""
    out: list[Field] = []
    for name in ("title", "summary", "text"):
        value = getattr(doc, name, None)
        if isinstance(value, str) and value.strip():
            out.append(Field(name, value, _FACTORS[name], ALL_TERMS, True))
    for i, kw in _indexed(getattr(doc, "keywords", None)):
        out.append(Field(f"keywords[{i}]", kw, _FACTORS["keywords"], ALL_TERMS, True))
    for i, org in _indexed(getattr(doc, "organisations", None)):
        out.append(Field(f"organisations[{i}]", org, _FACTORS["organisations"], ("organisations",), False))
    for i, region in _indexed(getattr(doc, "regions", None)):
        out.append(Field(f"regions[{i}]", region, _FACTORS["regions"], ("international",), False))
    extra = getattr(doc, "extra", None)
    if isinstance(extra, dict):
        for key in list(extra)[:MAX_EXTRA_KEYS]:
            value = extra[key]
            if isinstance(value, str):
                if value.strip():
                    out.append(Field(f"extra.{key}", value, _FACTORS["extra"], ALL_TERMS, False))
            else:
                for i, item in _indexed(value):
                    out.append(Field(f"extra.{key}[{i}]", item, _FACTORS["extra"], ALL_TERMS, False))
    return out


def unresolved_country_field(index: int, value: str) -> Field:
    """A given country value that is not a country ("Global", "Regional"): a scope label."""
    return Field(f"countries[{index}]", value, _FACTORS["countries"], ("international",), False)


def _indexed(values: Any) -> Iterator[tuple[int, str]]:
    if not isinstance(values, list | tuple):
        return
    for i, v in enumerate(values[:MAX_LIST_ITEMS]):
        if isinstance(v, str) and v.strip():
            yield i, v


_NAME = re.compile(r"(?P<base>[a-z_]+|extra\.[^\[\]]+)(?:\[(?P<i>\d+)\])?")


def field_text(doc: ClassifierInput, name: str) -> str | None:
    """The text of field ``name`` in ``doc`` (what evidence offsets index), or ``None``."""
    m = _NAME.fullmatch(name)
    if not m:
        return None
    base, idx = m.group("base"), m.group("i")
    if base.startswith("extra."):
        extra = getattr(doc, "extra", None)
        value = extra.get(base[len("extra.") :]) if isinstance(extra, dict) else None
    else:
        value = getattr(doc, base, None)
    if idx is not None:
        if not isinstance(value, list | tuple) or int(idx) >= len(value):
            return None
        value = value[int(idx)]
    return value if isinstance(value, str) else None
