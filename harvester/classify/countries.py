# ruff: noqa: RUF001, RUF002  (Cyrillic, Arabic and CJK text is intended here)
"""Country names in six languages -> ISO 3166-1 alpha-2, for free text and structured values.

Names: pycountry's English ``name``/``common_name``/``official_name`` and their ``iso3166-1``
gettext translations (fr, es, ru, ar, zh_CN, zh_TW), plus ``vocab/countries.yaml`` aliases. In free
text a name must be unambiguous (one code), not on the stop list, and long enough (4 characters for
Latin/Cyrillic, 3 for Arabic, 2 for Chinese); Latin and Cyrillic names match whole words, Arabic
and Chinese names as substrings. Russian names also match their case endings (``Кени~``, up to
three letters), except indeclinable ones ending in a vowel other than а/я.
Built once per language (``lru_cache``).
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterator
from functools import cache

import pycountry

from harvester.classify.folding import fold_term, is_unspaced_script
from harvester.classify.matching import FoldedText, Match, Matcher
from harvester.classify.vocab import load_data

_LOCALES = {"fr": ("fr",), "es": ("es",), "ru": ("ru",), "ar": ("ar",), "zh": ("zh_CN", "zh_TW")}
_ATTRS = ("name", "common_name", "official_name")
_RU_ADJ = ("ая", "яя", "ий", "ый", "ой", "ое", "ее", "ые", "ие")


def _pycountry_names(lang: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    translators = [
        gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[loc], fallback=True)
        for loc in _LOCALES.get(lang, ())
    ]
    for country in pycountry.countries:
        for attr in _ATTRS:
            english = getattr(country, attr, None)
            if not english:
                continue
            if lang == "en":
                out.append((english, country.alpha_2))
            for tr in translators:
                name = tr.gettext(english)
                if name and name != english:
                    out.append((name, country.alpha_2))
    return out


def _aliases(lang: str) -> dict[str, str]:
    aliases = (load_data("countries").get("aliases") or {}).get(lang) or {}
    return {str(k): str(v).upper() for k, v in aliases.items()}


def _stop(lang: str) -> set[str]:
    return {fold_term(str(s)) for s in ((load_data("countries").get("stop") or {}).get(lang) or ())}


def _long_enough(folded: str) -> bool:
    letters = folded.replace(" ", "")
    if any(is_unspaced_script(c) for c in letters):
        cjk = any(0x2E80 <= ord(c) <= 0x9FFF for c in letters)
        return len(letters) >= (2 if cjk else 3)
    return len(letters) >= 4


def _russian_forms(name: str) -> str:
    """``Южная Африка`` -> ``Южн~ Африк~`` (matches Южной Африки, Южную Африку, ...)."""
    words = []
    for word in name.split(" "):
        low = word.lower()
        if len(word) < 5 or not re.fullmatch(r"[а-яё]+", low):
            words.append(word)
        elif low.endswith(_RU_ADJ):
            words.append(word[:-2] + "~")
        elif low[-1] in "аяйь":
            words.append(word[:-1] + "~")
        elif low[-1] in "оеёиуыэю":
            words.append(word)  # indeclinable (Палау, Сан-Марино): never stem into other words
        else:
            words.append(word + "~")
    return " ".join(words)


@cache
def _table(lang: str) -> dict[str, str]:
    """Folded name -> code for one language, ambiguous names (several codes) removed."""
    codes: dict[str, set[str]] = {}
    for name, code in _pycountry_names(lang) + list(_aliases(lang).items()):
        if "," in name or "\u060c" in name:
            continue  # "Korea, Republic of": inverted forms never appear in running text
        codes.setdefault(fold_term(name), set()).add(code)
    return {name: next(iter(cs)) for name, cs in codes.items() if len(cs) == 1 and name}


@cache
def structured_table() -> dict[str, str]:
    """Folded name in any language -> code, for structured country fields (stop list not applied)."""
    merged: dict[str, set[str]] = {}
    for lang in ("en", *_LOCALES):
        for name, code in _table(lang).items():
            merged.setdefault(name, set()).add(code)
    return {name: next(iter(cs)) for name, cs in merged.items() if len(cs) == 1}


@cache
def matcher(lang: str) -> Matcher:
    """Free-text country matcher for one language; each term's label is the ISO2 code."""
    stop = _stop(lang)
    aliases = {fold_term(a) for a in _aliases(lang)}
    entries = []
    for name, code in _table(lang).items():
        if name in stop or (name not in aliases and not _long_enough(name)):
            continue
        entries.append((_russian_forms(name) if lang == "ru" else name, code, 1.0))
    return Matcher(entries)


def find_countries(ft: FoldedText, languages: tuple[str, ...]) -> Iterator[Match]:
    """Country mentions in one folded field, de-duplicated by span across languages."""
    seen: set[tuple[int, int]] = set()
    for lang in languages:
        if lang != "en" and lang not in _LOCALES:
            continue
        for m in ft.find(matcher(lang)):
            if (m.start, m.end) not in seen:
                seen.add((m.start, m.end))
                yield m


def resolve(value: str) -> str | None:
    """A structured country value (ISO2, ISO3 or a name in one of the six languages) -> ISO2."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    if len(v) == 2 and v.isalpha():
        c = pycountry.countries.get(alpha_2=v.upper())
        return c.alpha_2 if c else None
    if len(v) == 3 and v.isalpha() and v.isupper():
        c = pycountry.countries.get(alpha_3=v)
        if c:
            return c.alpha_2
    return structured_table().get(fold_term(v))
