"""Countries a record's text is about: country names found in the title and text (six languages),
ranked by salience, each with the place names that support it.

Salience counts every mention, a mention in the title three times and one in the lead (the first
``LEAD_CHARS`` characters of the text) twice. Large cities and capitals (``vocab/places.yaml``: Москва,
北京, دمشق, Lima) support the country they lie in: they add to a named country's salience at
``CITY_SHARE`` of a mention, and name the countries only when the text names no country at all.
A country far below the leading one (less than ``MIN_SHARE`` of its salience) is a passing mention and
left out; at most ``MAX_COUNTRIES`` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from harvester.classify import countries as country_names
from harvester.classify.folding import fold_term
from harvester.classify.matching import FoldedText, Match, Matcher
from harvester.classify.vocab import load_data

LANGUAGES = ("en", "fr", "es", "ru", "ar", "zh")
LEAD_CHARS = 600
TITLE_WEIGHT = 3.0
LEAD_WEIGHT = 2.0
MIN_SHARE = 0.2
MAX_COUNTRIES = 10
CITY_SHARE = 0.5
_PLACE_SCRIPTS = {"en": "latin", "fr": "latin", "es": "latin", "ru": "ru", "ar": "ar", "zh": "zh"}
QUOTES = "\"'«»“”„\u2018\u2019「」『』"


@dataclass
class CountryMention:
    code: str
    salience: float = 0.0
    names: list[str] = field(default_factory=list)
    first: int = 0


@cache
def city_matcher(script: str) -> Matcher:
    """City names of one script (``latin``, ``ru``, ``ar``, ``zh``); the label is the country code."""
    names = load_data("places").get(script) or {}
    entries = []
    for name, code in names.items():
        folded = fold_term(str(name))
        entries.append((country_names._russian_forms(folded) if script == "ru" else folded, str(code), 1.0))
    return Matcher(entries)


def _cities(ft: FoldedText, languages: tuple[str, ...]) -> list[Match]:
    scripts = dict.fromkeys(_PLACE_SCRIPTS[x] for x in languages)
    return [m for script in scripts for m in ft.find(city_matcher(script))]


def _quoted(text: str, start: int, end: int) -> bool:
    """A name standing alone in quotes is something else's name (a highway M-1 "Беларусь", a ship, a firm)."""
    before = text[start - 1 : start] if start else ""
    return bool(before) and before in QUOTES and text[end : end + 1] in QUOTES


def countries_in_text(title: str | None, text: str | None, language: str | None) -> list[CountryMention]:
    """ISO alpha-2 countries named in ``title`` and ``text``, most salient first."""
    languages = tuple(dict.fromkeys(x for x in (language, "en") if x in LANGUAGES))
    found: dict[str, CountryMention] = {}
    cities: dict[str, CountryMention] = {}
    position = 0
    for part, weight in ((title, TITLE_WEIGHT), (text, 1.0)):
        if not part:
            continue
        ft = FoldedText(part)
        for matches, into, share in (
            (country_names.find_countries(ft, languages), found, 1.0),
            (_cities(ft, languages), cities, CITY_SHARE),
        ):
            for m in sorted(matches, key=lambda m: m.start):
                if _quoted(ft.text, m.start, m.end):
                    continue
                code = m.term.senses[0][0]
                mention = into.setdefault(code, CountryMention(code, first=position + m.start))
                lead = weight == 1.0 and m.start < LEAD_CHARS
                mention.salience += share * (LEAD_WEIGHT if lead else weight)
                name = ft.text[m.start : m.end].strip()
                if name and name not in mention.names:
                    mention.names.append(name)
        position += len(part) + 1
    for code, city in cities.items():
        if code in found:
            found[code].salience += city.salience
            found[code].names += [n for n in city.names if n not in found[code].names]
    if not found:
        found = cities
    ranked = sorted(found.values(), key=lambda c: (-c.salience, c.first))
    if not ranked:
        return []
    floor = ranked[0].salience * MIN_SHARE
    return [c for c in ranked if c.salience >= floor][:MAX_COUNTRIES]
