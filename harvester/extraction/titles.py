# ruff: noqa: RUF001  (CJK, Arabic and typographic punctuation is intended here)
"""The record's headline, reconciled from what the page offers: JSON-LD ``headline``, microdata, ``og:title``
and other title meta, ``<h1>`` and ``<title>``.

``<title>`` usually carries the site's name, a section or a date ("... | DW | 23.05.2011",
"...-新华网"); ``<h1>`` is sometimes the logo. So every candidate is cut at title separators, parts naming
the site (its ``og:site_name``, JSON-LD organisation or host name) or a date are dropped, and the
candidate most of the others agree with wins, publisher-stated sources first on a tie.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from harvester.extraction.normalise import parse_date

_CJK = "\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
SEPARATORS = re.compile(
    rf"\s+[|\-–—•·»/:]{{1,2}}\s+|\s*[|•·»‹›«]\s*|(?<=[{_CJK}])\s*[-_—|]\s*(?=[{_CJK}])|(?<=[^\s\d])-(?=[{_CJK}])"
)
SHORT_PART_WORDS = 3
SHORT_PART_CJK = 8
_PRIORITY = ("jsonld", "microdata", "rdfa", "meta", "html:title", "html:h1")


@dataclass(frozen=True)
class Headline:
    title: str
    where: str
    cleaned: bool  # the page's <title> said more than this (site name, section or date cut off)


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", "", text)


def _site_keys(site_names: list[str], url: str | None) -> set[str]:
    keys = {fold(n) for n in site_names if fold(n)}
    host = (urlsplit(url).hostname or "") if url else ""
    labels = [
        p
        for p in host.split(".")
        if p
        not in (
            "www",
            "com",
            "org",
            "net",
            "int",
            "gov",
            "edu",
            "co",
            "uk",
            "news",
            "cn",
            "ru",
            "fr",
            "es",
            "github",
            "io",
        )
    ]
    keys |= {fold(p) for p in labels if len(p) >= 2}
    return keys


def _site_like(part: str, sites: set[str]) -> bool:
    key = fold(part)
    if not key:
        return True
    if any(
        key == s or (min(len(key), len(s)) >= 4 and (key in s or s in key) and len(key) <= 2 * len(s) + 4)
        for s in sites
    ):
        return True
    return bool(re.fullmatch(r"[\d\s./:-]+", part)) and parse_date(part.strip()) is not None


def _short(part: str) -> bool:
    cjk = sum(1 for c in part if re.match(f"[{_CJK}]", c))
    return (cjk <= SHORT_PART_CJK) if cjk else len(part.split()) <= SHORT_PART_WORDS


def clean_title(raw: str, sites: set[str], trim_short: bool = False) -> str:
    """``raw`` without site-name, date and (with ``trim_short``) short trailing section parts."""
    text = re.sub(r"\s+", " ", raw).strip()
    parts = [p.strip() for p in SEPARATORS.split(text)]
    if len(parts) == 1:
        return text
    while len(parts) > 1 and _site_like(parts[-1], sites):
        parts.pop()
    while len(parts) > 1 and _site_like(parts[0], sites):
        parts.pop(0)
    if trim_short:
        while len(parts) > 1 and _short(parts[-1]) and len(parts[0]) >= 2 * len(parts[-1]):
            parts.pop()
    if len(parts) == len(SEPARATORS.split(text)):
        return text
    # keep the original separators inside what is left
    start = text.find(parts[0])
    end = text.rfind(parts[-1]) + len(parts[-1])
    return text[start:end].strip() if start >= 0 and end > start else " ".join(parts)


def _truncated(title: str, others: list[str]) -> bool:
    """Cut off with an ellipsis, or in the middle of a word that another candidate spells out."""
    if re.search(r"(\.\.\.|…)$", title):
        return True
    return any(
        len(o) > len(title) and o.startswith(title) and title[-1].isalnum() and o[len(title)].isalnum() for o in others
    )


def reconcile_title(
    stated: list[tuple[str, str]], h1s: list[str], title_tag: str | None, site_names: list[str], url: str | None
) -> Headline | None:
    """``stated`` is (value, where) of publisher-stated titles (JSON-LD, microdata, meta), strongest first."""
    sites = _site_keys(site_names, url)
    candidates: list[tuple[str, str, str]] = []  # cleaned, where, raw
    for value, where in stated:
        candidates.append((clean_title(value, sites), where, value))
    for h1 in h1s[:3]:
        candidates.append((clean_title(h1, sites), "html:h1", h1))
    if title_tag and title_tag.strip():
        candidates.append((clean_title(title_tag, sites, trim_short=not stated and not h1s), "html:title", title_tag))
    candidates = [c for c in candidates if fold(c[0])]
    whole = [c for c in candidates if not _truncated(c[0], [o[0] for o in candidates])]
    candidates = whole or candidates  # "twitter:title" and friends are often cut to a length
    if not candidates:
        return None

    def support(index: int) -> int:
        key = fold(candidates[index][0])
        return sum(1 for j, other in enumerate(candidates) if j != index and key in fold(other[2]))

    def rank(index: int) -> tuple[int, int, int]:
        where = candidates[index][1]
        kind = next((i for i, p in enumerate(_PRIORITY) if where.startswith(p)), len(_PRIORITY))
        return (-support(index), kind, index)

    best = min(range(len(candidates)), key=rank)
    title, where, _ = candidates[best]
    if support(best) == 0 and where == "html:h1" and title_tag:
        title, where = clean_title(title_tag, sites, trim_short=True), "html:title"
    raw_title = re.sub(r"\s+", " ", title_tag or "").strip()
    return Headline(title, where, cleaned=bool(raw_title) and fold(raw_title) != fold(title))
