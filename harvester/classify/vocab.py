"""Load the per-language vocabulary files (``vocab/<lang>.yaml``) and compile their matchers.

Each file has the same groups (checked by ``validate``)::

    support_type:   {needs_assessment, capacity_building, workshops,
                     information_dissemination, other_implementation}: [terms]
    cbd_relevance:  {general, technology_transfer}: [terms]
    topics:         {<topic id>: [terms]}          # same ids in every file, from en.yaml
    active:         {ongoing, past}: [terms]
    international:  {scope, signals, organisations}: [terms]

Every group except ``topics`` may also have an ``ignore`` list: phrases that contain a cue word but
are not evidence ("urban heat island", "random forest", "global warming"). They are matched with
the group, so the longer phrase wins at its position, and then dropped.

A term is ``"text"`` (weight 1) or ``{"text": weight}``; term syntax is described in ``matching``.
Compiled vocabularies are cached per language (built once per process).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

from harvester.classify.matching import Matcher

VOCAB_DIR = Path(__file__).resolve().parent / "vocab"
SUPPORT_TYPES = (
    "needs_assessment",
    "capacity_building",
    "workshops",
    "information_dissemination",
    "other_implementation",
)
REFERENCE_LANGUAGE = "en"
_NOT_LANGUAGES = {"countries", "chm_tags", "places"}
GROUPS: dict[str, tuple[str, ...] | None] = {
    "support_type": SUPPORT_TYPES,
    "cbd_relevance": ("general", "technology_transfer"),
    "topics": None,  # ids taken from the reference language file
    "active": ("ongoing", "past"),
    "international": ("scope", "signals", "organisations"),
}
IGNORE = "ignore"  # optional label in every group but topics
MAX_WEIGHT = 3.0


@dataclass(frozen=True)
class Vocabulary:
    """One language's compiled matchers. Labels: support type ids; ``general``,
    ``technology_transfer`` and topic ids; ``ongoing``/``past``; ``scope``/``signals``;
    ``organisations``; plus ``ignore`` in each (hits to drop)."""

    language: str
    support_type: Matcher
    cbd_relevance: Matcher
    active: Matcher
    international: Matcher
    organisations: Matcher


@cache
def available_languages() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in VOCAB_DIR.glob("*.yaml") if p.stem not in _NOT_LANGUAGES))


@cache
def load_data(name: str) -> dict[str, Any]:
    """The parsed YAML file ``vocab/<name>.yaml`` (a dict; raises if the file is not one)."""
    path = VOCAB_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


@lru_cache(maxsize=1)
def topic_ids() -> tuple[str, ...]:
    return tuple(load_data(REFERENCE_LANGUAGE).get("topics") or {})


def parse_entry(entry: Any) -> tuple[str, float]:
    """``"term"`` -> (term, 1.0); ``{"term": 1.5}`` -> (term, 1.5). Raises ``ValueError``."""
    if isinstance(entry, str):
        term, weight = entry, 1.0
    elif isinstance(entry, dict) and len(entry) == 1:
        ((term, weight),) = entry.items()
    else:
        raise ValueError(f"bad vocabulary entry {entry!r}")
    if not isinstance(term, str) or not term.strip():
        raise ValueError(f"bad vocabulary term {term!r}")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= MAX_WEIGHT:
        raise ValueError(f"bad weight {weight!r} for {term!r}")
    return term, float(weight)


def validate(data: dict[str, Any], topics: tuple[str, ...] | None = None) -> list[str]:
    """Problems with one language file's structure (empty list = valid)."""
    problems: list[str] = []
    for group, labels in GROUPS.items():
        section = data.get(group)
        if not isinstance(section, dict):
            problems.append(f"missing group {group!r}")
            continue
        expected = labels if labels is not None else (topics or tuple(section))
        for label in expected:
            items = section.get(label)
            if not isinstance(items, list) or not items:
                problems.append(f"{group}.{label}: missing or empty")
                continue
            for entry in items:
                try:
                    parse_entry(entry)
                except ValueError as exc:
                    problems.append(f"{group}.{label}: {exc}")
        if IGNORE in section and group != "topics":
            for entry in section.get(IGNORE) or ():
                try:
                    parse_entry(entry)
                except ValueError as exc:
                    problems.append(f"{group}.{IGNORE}: {exc}")
        extra = set(section) - set(expected) - ({IGNORE} if group != "topics" else set())
        if extra:
            problems.append(f"{group}: unknown labels {sorted(extra)}")
    return problems


def _entries(data: dict[str, Any], group: str, labels: tuple[str, ...]) -> list[tuple[str, str, float]]:
    section = data.get(group) or {}
    out = []
    for label in labels:
        for entry in section.get(label) or ():
            term, weight = parse_entry(entry)
            out.append((term, label, weight))
    return out


@cache
def vocabulary(language: str) -> Vocabulary:
    """The compiled vocabulary of ``language`` (one of ``available_languages()``)."""
    data = load_data(language)
    problems = validate(data, topic_ids())
    if problems:
        raise ValueError(f"vocab/{language}.yaml: " + "; ".join(problems))
    topics = topic_ids()
    return Vocabulary(
        language=language,
        support_type=Matcher(_entries(data, "support_type", (*SUPPORT_TYPES, IGNORE))),
        cbd_relevance=Matcher(
            _entries(data, "cbd_relevance", ("general", "technology_transfer", IGNORE))
            + _entries(data, "topics", topics)
        ),
        active=Matcher(_entries(data, "active", ("ongoing", "past", IGNORE))),
        international=Matcher(_entries(data, "international", ("scope", "signals", IGNORE))),
        organisations=Matcher(_entries(data, "international", ("organisations",))),
    )
