"""Normalisers for partner values: countries, dates, amounts and text."""

from __future__ import annotations

import gettext
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Literal

import pycountry
from bs4 import BeautifulSoup, Comment, Declaration, Doctype, ProcessingInstruction
from dateparser.date import DateDataParser

Precision = Literal["day", "month", "year"]


@dataclass(frozen=True)
class ParsedDate:
    """A calendar date at the precision the source gave: ``iso`` is YYYY-MM-DD, YYYY-MM or YYYY."""

    iso: str
    precision: Precision


# --- countries ---------------------------------------------------------------

TRANSLATION_LOCALES = ("fr", "es", "ru", "ar", "zh_CN", "zh_TW", "zh_HK")

COUNTRY_ALIASES: dict[str, str] = {
    "Brunei": "BN",
    "Burma": "MM",
    "Cape Verde": "CV",
    "Congo DR": "CD",
    "Congo, Dem. Rep.": "CD",
    "Congo, Rep.": "CG",
    "Congo-Brazzaville": "CG",
    "Congo-Kinshasa": "CD",
    "DPR Korea": "KP",
    "DPRK": "KP",
    "DR Congo": "CD",
    "DRC": "CD",
    "East Timor": "TL",
    "FYR Macedonia": "MK",
    "Great Britain": "GB",
    "Ivory Coast": "CI",
    "Korea DPR": "KP",
    "Korea, Dem. People's Rep.": "KP",
    "Korea, Rep.": "KR",
    "Kosovo": "XK",
    "Lao PDR": "LA",
    "Macedonia": "MK",
    "Occupied Palestinian Territory": "PS",
    "Palestinian Authority": "PS",
    "Palestinian Territories": "PS",
    "Russia": "RU",
    "Swaziland": "SZ",
    "The former Yugoslav Republic of Macedonia": "MK",
    "Turkey": "TR",
    "UAE": "AE",
    "UK": "GB",
    "Vatican": "VA",
    "Vatican City": "VA",
    "West Bank and Gaza": "PS",
    "تركيا": "TR",
}
"""Partner spellings pycountry and its translations lack (matched after normalisation)."""

CODE_ALIASES: dict[str, str] = {"XK": "XK", "XKX": "XK", "UK": "GB"}
"""Codes outside ISO 3166-1 that partners use (Kosovo's user-assigned code, "UK")."""

_DROPPED_TOKENS = frozenset({"the", "and"})
_TOKEN_SYNONYMS = {"st": "saint", "ste": "sainte"}
_CODE = re.compile(r"[A-Za-z]{2,3}")


def _country_key(text: str) -> str:
    """Case-, accent- and punctuation-insensitive key: "St. Kitts & Nevis" -> "saint kitts nevis"."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text if not unicodedata.combining(ch))
    tokens = (_TOKEN_SYNONYMS.get(token, token) for token in text.split())
    return " ".join(token for token in tokens if token not in _DROPPED_TOKENS)


def _variants(name: str) -> list[str]:
    """Other forms of a "Korea, Republic of" style name: reordered and short."""
    head, comma, tail = name.partition(",")
    reordered = [f"{tail.strip()} {head.strip()}"] if comma else []
    short = re.split(r"[,(]", name, maxsplit=1)[0].strip()
    return reordered + ([short] if short != name else [])


def _names(country: object, translate: gettext.NullTranslations | None = None) -> list[str]:
    names = [getattr(country, field, None) for field in ("name", "official_name", "common_name")]
    return [translate.gettext(n) if translate else n for n in names if n]


def _name_tier(translate: gettext.NullTranslations | None, variants: bool) -> list[tuple[str, str]]:
    return [
        (form, country.alpha_2)
        for country in pycountry.countries
        for name in _names(country, translate)
        for form in (_variants(name) if variants else [name])
    ]


@lru_cache(maxsize=1)
def _country_index() -> tuple[dict[str, str], dict[str, str]]:
    """(code -> alpha-2, name key -> alpha-2). Aliases beat English names, which beat their
    variants, which beat translations; a key two countries claim within one tier is left out."""
    codes = dict(CODE_ALIASES)
    for country in pycountry.countries:
        codes[country.alpha_2] = codes[country.alpha_3] = country.alpha_2
    translations = [
        gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[locale]) for locale in TRANSLATION_LOCALES
    ]
    tiers = [
        list(COUNTRY_ALIASES.items()),
        _name_tier(None, variants=False),
        _name_tier(None, variants=True),
        [pair for t in translations for pair in _name_tier(t, variants=False)],
        [pair for t in translations for pair in _name_tier(t, variants=True)],
    ]
    index: dict[str, str] = {}
    for tier in tiers:
        claims: dict[str, set[str]] = {}
        for name, code in tier:
            key = _country_key(name)
            if key and key not in index:
                claims.setdefault(key, set()).add(code)
        index.update({key: found.pop() for key, found in claims.items() if len(found) == 1})
    return codes, index


@lru_cache(maxsize=1)
def _english_name_words() -> dict[str, list[list[str]]]:
    return {c.alpha_2: [_country_key(name).split() for name in _names(c)] for c in pycountry.countries}


def _starts_name(query: list[str], names: list[list[str]]) -> bool:
    """Whether a name begins with all of ``query`` and ``query`` is at least half of its words."""
    return any(words[: len(query)] == query and 2 * len(query) >= len(words) for words in names)


def _fuzzy_country(key: str) -> str | None:
    """pycountry's fuzzy search, trusted only when it finds a single country and that country's
    English name starts with the whole query, which covers at least half of its words ("Timor")."""
    query = key.split()
    if len(key) < 5 or not any(_starts_name(query, names) for names in _english_name_words().values()):
        return None
    try:
        candidates = pycountry.countries.search_fuzzy(key)
    except LookupError:
        return None
    if len(candidates) == 1 and _starts_name(query, _english_name_words()[candidates[0].alpha_2]):
        return str(candidates[0].alpha_2)
    return None


@lru_cache(maxsize=8192)
def country_code(value: str) -> str | None:
    """ISO 3166-1 alpha-2 code for a country code or name (English, fr, es, ru, ar, zh); None otherwise."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    codes, index = _country_index()
    if _CODE.fullmatch(text) and text.upper() in codes:
        return codes[text.upper()]
    key = _country_key(text)
    if not key:
        return None
    return index.get(key) or _fuzzy_country(key)


def country_codes(values: Iterable[str] | str, split: str | None = None) -> tuple[list[str], list[str]]:
    """(sorted unique alpha-2 codes, leftover non-country values in first-seen order).

    With ``split``, each value is split on it and adjacent pieces are re-joined when only the
    joined form is a country ("Korea, Republic of").
    """
    codes: set[str] = set()
    leftovers: list[str] = []
    seen: set[str] = set()
    for value in [values] if isinstance(values, str) else values:
        pieces = split_values(value, split) if split else [value.strip()]
        for piece in _join_pieces([p for p in pieces if p], split):
            code = country_code(piece)
            if code:
                codes.add(code)
            elif piece.casefold() not in seen:
                seen.add(piece.casefold())
                leftovers.append(piece)
    return sorted(codes), leftovers


def _join_pieces(pieces: list[str], sep: str | None, longest: int = 3) -> list[str]:
    if not sep:
        return pieces
    out: list[str] = []
    i = 0
    while i < len(pieces):
        for size in range(min(longest, len(pieces) - i), 1, -1):
            group = pieces[i : i + size]
            joined = f"{sep} ".join(group)
            if not all(country_code(p) for p in group) and country_code(joined):
                out.append(joined)
                i += size
                break
        else:
            out.append(pieces[i])
            i += 1
    return out


# --- dates -------------------------------------------------------------------

DATE_LANGUAGES = ("en", "fr", "es", "ru", "ar", "zh")
DATE_SETTINGS = {
    "PREFER_DAY_OF_MONTH": "first",
    "RETURN_AS_TIMEZONE_AWARE": False,
    "DATE_ORDER": "DMY",
    "REQUIRE_PARTS": ["year"],
    "PARSERS": ["custom-formats", "absolute-time"],
}
"""dateparser settings; relative expressions ("yesterday") and timestamps are not dates here."""

MIN_YEAR, MAX_YEAR = 1900, 2100
_ISO_LIKE = re.compile(
    r"(\d{4})-(\d{2})(?:-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)?",
    re.IGNORECASE,
)
_YMD = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})")
_YEAR = re.compile(r"\d{4}")
_QUARTER = re.compile(r"Q[1-4]\s*[-/]?\s*(\d{4})|(\d{4})\s*[-/]?\s*Q[1-4]", re.IGNORECASE)
_PERIODS: dict[str, Precision] = {"year": "year", "month": "month"}


@lru_cache(maxsize=16)
def _date_parser(languages: tuple[str, ...]) -> DateDataParser:
    return DateDataParser(languages=list(languages), settings=DATE_SETTINGS)


def _parsed(year: int, month: int | None = None, day: int | None = None) -> ParsedDate | None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        date(year, month or 1, day or 1)
    except ValueError:
        return None
    if month is None:
        return ParsedDate(f"{year:04d}", "year")
    if day is None:
        return ParsedDate(f"{year:04d}-{month:02d}", "month")
    return ParsedDate(f"{year:04d}-{month:02d}-{day:02d}", "day")


def parse_date(value: str | int | None, languages: list[str] | None = None) -> ParsedDate | None:
    """A date with its precision, from ISO 8601, numeric (day first) or written forms in
    ``languages`` (default: the six UN languages). Quarters ("Q1 2019") give the year; the
    date is kept as written, not shifted by its time zone. None for anything invalid, relative
    or outside 1900..2100; never raises."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _parsed(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text:
        return None
    if _YEAR.fullmatch(text):
        return _parsed(int(text))
    if match := _ISO_LIKE.fullmatch(text):
        year, month, day = match.groups()
        return _parsed(int(year), int(month), int(day) if day else None)
    if match := _YMD.fullmatch(text):
        return _parsed(*(int(g) for g in match.groups()))
    if match := _QUARTER.fullmatch(text):
        return _parsed(int(match.group(1) or match.group(2)))
    try:
        data = _date_parser(tuple(languages or DATE_LANGUAGES)).get_date_data(text)
    except Exception:
        return None
    if data.date_obj is None:
        return None
    found = data.date_obj
    precision = _PERIODS.get(data.period or "", "day")
    if precision == "year":
        return _parsed(found.year)
    if precision == "month":
        return _parsed(found.year, found.month)
    return _parsed(found.year, found.month, found.day)


OPEN_ENDS = frozenset({"ongoing", "present", "now", "current", "today", "date", "open"})
_YEAR_RANGE = re.compile(r"(\d{4})\s*(?:(?:[-/\u2012-\u2015]|\bto\b|\buntil\b|\btill\b)\s*(.*?))?", re.IGNORECASE)


def parse_year_range(value: str) -> tuple[ParsedDate | None, ParsedDate | None]:
    """(start, end) years from "2019-2023", "2019 to 2023" or an en-dash range; an open end
    ("ongoing", "present"), an end before the start or a single year gives end None."""
    text = unicodedata.normalize("NFKC", value or "").strip()
    match = _YEAR_RANGE.fullmatch(text)
    if not match:
        return parse_date(text), None
    start, end = match.group(1), (match.group(2) or "").strip().rstrip(".")
    if not end or end.casefold() in OPEN_ENDS:
        return _parsed(int(start)), None
    if _YEAR.fullmatch(end):
        return _parsed(int(start)), _parsed(int(end)) if int(end) >= int(start) else None
    return parse_date(text), None


# --- amounts -----------------------------------------------------------------

MULTIPLIERS = {
    "k": 1e3,
    "thousand": 1e3,
    "thousands": 1e3,
    "m": 1e6,
    "mn": 1e6,
    "mio": 1e6,
    "million": 1e6,
    "millions": 1e6,
    "millon": 1e6,
    "millones": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "billions": 1e9,
    "mln": 1e6,
    "bln": 1e9,
}
_WORD = re.compile(r"\b[A-Za-z]{2,3}\b")
_AMOUNT = re.compile(r"(-?\d[\d.,'\s]*)\s*([a-z]*)\.?", re.IGNORECASE)
_GROUPED = re.compile(r"\d{1,3}(?:([,.' ])\d{3})(?:\1\d{3})*")


def _number(digits: str) -> float | None:
    digits = re.sub(r"\s+", " ", digits.strip())
    negative = digits.startswith("-")
    digits = digits.lstrip("-")
    if _GROUPED.fullmatch(digits) and not re.fullmatch(r"\d{1,3}\.\d{3}", digits):
        digits = re.sub(r"[,.' ]", "", digits)
    elif "," in digits and "." in digits:
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        digits = digits.replace(thousands, "").replace("'", "").replace(" ", "").replace(decimal, ".")
    else:
        digits = digits.replace(" ", "").replace("'", "").replace(",", ".")
    try:
        number = float(digits)
    except ValueError:
        return None
    return -number if negative else number


def _drop_currency_code(match: re.Match[str]) -> str:
    word = match.group(0).upper()
    is_currency = word == "US" or (len(word) == 3 and pycountry.currencies.get(alpha_3=word) is not None)
    return " " if is_currency else match.group(0)


def parse_amount(value: str | int | float | None) -> float | None:
    """A money amount as a float ("1,233,000", "USD 2.5 million", 6240000); None when not one number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    text = unicodedata.normalize("NFKC", str(value))
    text = _WORD.sub(_drop_currency_code, text)
    text = "".join(" " if unicodedata.category(ch) == "Sc" else ch for ch in text).strip()
    match = _AMOUNT.fullmatch(text)
    if not match:
        return None
    word = match.group(2).casefold()
    if word and word not in MULTIPLIERS:
        return None
    number = _number(match.group(1))
    if number is None:
        return None
    return number * MULTIPLIERS.get(word, 1.0)


# --- text --------------------------------------------------------------------

BLOCK_TAGS = (
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "ul",
)
_DROPPED_TAGS = ("script", "style", "noscript", "template")
_NON_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_TAG = re.compile(r"<(?:/?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?|!--.*?--)>", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")


def _html_to_text(markup: str) -> str:
    soup = BeautifulSoup(markup, "lxml")
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    for node in soup.find_all(string=lambda s: isinstance(s, _NON_TEXT)):
        node.extract()
    for node in soup.find_all(string=True):
        if node.find_parent("pre") is None:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return soup.get_text()


def clean_text(value: str | None) -> str | None:
    """Tidy text: NFC, HTML to text, control characters dropped, spaces collapsed, lines
    stripped, at most one blank line in a row; None when nothing is left."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value)).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if _TAG.search(text):
        text = _CONTROL.sub("", _html_to_text(text))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text or None


def clean_list(values: Iterable[str | None]) -> list[str]:
    """clean_text each value, drop empties and case-insensitive repeats (first spelling wins)."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        text = clean_text(value)
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    return out


def split_values(value: str | None, sep: str) -> list[str]:
    """Pieces of ``value`` split on ``sep``, stripped, empty ones dropped."""
    if not value:
        return []
    return [piece.strip() for piece in value.split(sep) if piece.strip()]
