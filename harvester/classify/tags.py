"""Suggest CHM thesaurus tags from the classification (mapping data in ``vocab/chm_tags.yaml``).

- technology-transfer / cooperation evidence (criterion b label ``technology_transfer``) and the
  support types mapped in ``support_types`` -> their ids (GBF-TARGET-20, AICHI-TARGET-19, ...);
- each matched topic -> its CBD subject, GBF and Aichi ids (``topics``);
- countries -> ``countryRegions`` as ISO alpha-2, lower-cased as the CHM ``countries`` thesaurus
  writes them.
"""

from __future__ import annotations

import re
from typing import Any

from harvester.classify.vocab import load_data

TAG_KEYS = ("cbdSubjects", "gbfTargets", "aichiTargets")
_AICHI = re.compile(r"AICHI-TARGET-(\d+)")


def normalise_id(identifier: str) -> str:
    """``AICHI-TARGET-7`` -> ``AICHI-TARGET-07`` (the thesaurus identifier form); others unchanged."""
    return _AICHI.sub(lambda m: f"AICHI-TARGET-{int(m.group(1)):02d}", identifier.strip())


def _add(out: dict[str, list[str]], mapping: Any) -> None:
    if not isinstance(mapping, dict):
        return
    for key in TAG_KEYS:
        for identifier in mapping.get(key) or ():
            ident = normalise_id(str(identifier))
            if ident not in out[key]:
                out[key].append(ident)


def chm_tags(
    support_types: list[str], topics: list[str], technology_transfer: bool, countries: list[str]
) -> dict[str, list[str]]:
    data = load_data("chm_tags")
    out: dict[str, list[str]] = {key: [] for key in TAG_KEYS}
    if technology_transfer:
        _add(out, data.get("technology_transfer"))
    for t in support_types:
        _add(out, (data.get("support_types") or {}).get(t))
    for t in topics:
        _add(out, (data.get("topics") or {}).get(t))
    result = {key: sorted(values) for key, values in out.items()}
    case = data.get("country_case", "lower")
    result["countryRegions"] = [c.lower() if case == "lower" else c.upper() for c in countries]
    return result
