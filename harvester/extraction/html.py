# ruff: noqa: RUF001, RUF002  (CJK, Arabic and typographic punctuation is intended here)
"""HTML pages -> candidate fields: per-source selectors first, trafilatura for free text and metadata."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

import trafilatura
from bs4 import UnicodeDammit
from bs4.dammit import EncodingDetector
from lxml.html import HtmlElement
from parsel import Selector

from harvester.extraction.embedded import embedded_data
from harvester.extraction.metadata import page_metadata
from harvester.extraction.normalise import clean_list, clean_text, parse_date
from harvester.extraction.titles import fold, reconcile_title

MAX_HTML_BYTES = 8 * 1024 * 1024
LIST_SELECTOR_FIELDS = {"organisations", "countries", "regions", "keywords"}


class ExtractionError(Exception):
    """A page that yields no usable record (empty, binary, not HTML): recorded, never stored empty."""


@dataclass
class HtmlExtraction:
    values: dict[str, str | list[str]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)
    lang_attr: str | None = None

    def put(self, name: str, value: str | list[str] | None, where: str) -> bool:
        """Set ``name`` unless a stronger source (a selector, an earlier call) already did."""
        if not value or name in self.values:
            return False
        self.values[name] = value
        self.provenance[name] = where
        return True

    def flag(self, name: str, flag: str) -> None:
        self.flags.setdefault(name, []).append(flag)


def _cp1252_bytes(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


codecs.register_error("harvester_cp1252", _cp1252_bytes)


def _mostly_utf8(body: bytes) -> str | None:
    """UTF-8 with stray cp1252 bytes (a common CMS fault) decoded byte by byte, when the stray bytes are few."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    strict = body.decode("utf-8", errors="ignore")
    if len(body) - len(strict.encode("utf-8")) > max(16, len(body) // 200):
        return None
    return body.decode("utf-8", errors="harvester_cp1252")


def decode_html(body: bytes, declared: str | None = None) -> str:
    """Decode by BOM, declared charset and content sniffing, so cp1252 labelled UTF-8 survives."""
    if not body.strip():
        raise ExtractionError("empty body")
    if b"\x00" in body[:2048] and not body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractionError("binary body served as HTML")
    if len(body) > MAX_HTML_BYTES:
        raise ExtractionError(f"page too large ({len(body)} bytes > {MAX_HTML_BYTES})")
    label = (declared or EncodingDetector.find_declared_encoding(body[:8192], is_html=True) or "").lower()
    if label.replace("_", "-") in ("utf-8", "utf8"):
        text = _mostly_utf8(body)
        if text is not None:
            return text
    dammit = UnicodeDammit(body, [declared] if declared else [], is_html=True)
    if dammit.unicode_markup is None:
        raise ExtractionError("undecodable body")
    return dammit.unicode_markup


def select(sel: Selector, query: str) -> list[str]:
    """CSS by default; ``xpath:`` prefix for XPath."""
    if query.startswith("xpath:"):
        return [v for v in sel.xpath(query[6:]).getall() if v]
    return [v for v in sel.css(query).getall() if v]


_DATELINE = re.compile(
    r"(\d{1,2})\s+([^\d\s,،.]+(?:/[^\d\s,،.]+)?)\.?,?\s+(\d{4})"
    r"|(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
)
LEAD_CHARS = 300
MAX_PREAMBLE_LINES = 4
MAX_KEYWORDS = 30
MAX_BYLINE_CHARS = 80
BYLINE = re.compile(
    r"^(?:(?:by|par|por|von|автор|текст|фото|photo|foto|crédit|credit|source|fuente|sources?)\b"
    r"|(?:بقلم|كتب|تصوير|المصدر)\s|(?:记者|作者|来源|编辑|责任编辑|摄影)\s*[:：]?)",
    re.IGNORECASE,
)


def _dateline(text: str) -> str | None:
    """A full date written near the start of the text ("28 آب/اغسطس 2013", "2020年1月2日"), as ISO."""
    for match in _DATELINE.finditer(text[:LEAD_CHARS]):
        if match.group(4):
            parsed = parse_date(f"{match.group(4)}-{int(match.group(5)):02d}-{int(match.group(6)):02d}")
            if parsed:
                return parsed.iso
            continue
        for month in match.group(2).split("/"):
            parsed = parse_date(f"{match.group(1)} {month} {match.group(3)}")
            if parsed and parsed.precision == "day":
                return parsed.iso
    return None


def _preamble_line(line: str) -> bool:
    """A date, dateline or byline/label line ("来源：半月谈网", "حوار: ...") rather than a sentence."""
    if not line:
        return True
    if len(line) < 80 and (parse_date(line) or (_dateline(line) and len(_DATELINE.sub("", line).split()) <= 6)):
        return True
    if len(line) <= MAX_BYLINE_CHARS and BYLINE.match(line):
        return True
    if len(line) > 40 or re.search(r"[.!?。！？؟…][\"”’»)）]*$", line):
        return False
    cjk = sum(1 for c in line if "\u3400" <= c <= "\u9fff")
    return (cjk <= 12 and not re.search("[，。！？]", line)) if cjk else len(line.split()) <= 4


def _strip_lead(text: str, title: str | None) -> str:
    """The text without leading lines that repeat the headline or are a date or byline (trafilatura keeps
    them), so the text starts where the record does."""
    lines = [line.strip() for line in text.split("\n")]
    key = fold(title) if title else None
    while len(lines) > 1 and key and fold(lines[0]) == key:
        lines.pop(0)
    lead = 0
    while lead < min(MAX_PREAMBLE_LINES, len(lines) - 1) and _preamble_line(lines[lead]):
        lead += 1
    if lead and not _preamble_line(lines[lead]):
        lines = lines[lead:]
    return "\n".join(lines).strip()


def _fill_from_page(out: HtmlExtraction, sel: Selector, tree: HtmlElement, url: str, selectors: dict[str, str]) -> None:
    """Fields the selectors left empty: the page's own structured data first, then trafilatura."""
    data = embedded_data(sel, url)
    meta = page_metadata(tree, url)
    if "title" not in out.values:
        h1s = [t for t in (clean_text(" ".join(h.xpath(".//text()").getall())) for h in sel.xpath("//h1")) if t]
        headline = reconcile_title(
            [(f.value, f.where) for f in data.titles],
            h1s,
            sel.xpath("//title/text()").get() or meta.title,
            [f.value for f in data.site_names] + ([meta.sitename] if meta.sitename else []),
            url,
        )
        if headline and out.put("title", headline.title, headline.where) and headline.cleaned:
            out.flag("title", "title-cleaned")
    for found in data.dates:
        parsed = parse_date(found.value)
        if parsed and out.put("published", parsed.iso, found.where) and parsed.precision != "day":
            out.flag("published", f"date-{parsed.precision}-only")
    text = out.values.get("text")
    if isinstance(text, str) and out.provenance.get("text") == "trafilatura":
        out.values["text"] = _strip_lead(text, str(out.values.get("title") or ""))
    if "published" not in out.values and meta.date:
        dateline = _dateline(text) if isinstance(text, str) else None
        if meta.date.endswith("-01-01") and dateline and dateline[:4] == meta.date[:4]:
            out.put("published", dateline, "text:dateline")
        elif meta.date.endswith("-01-01") and not dateline:
            out.put("published", meta.date[:4], "htmldate")  # htmldate pads a year-only find with 01-01
            out.flag("published", "date-guessed-from-partial")
        else:
            out.put("published", meta.date, "htmldate")
    if "published" not in out.values and isinstance(text, str) and (dateline := _dateline(text)):
        out.put("published", dateline, "text:dateline")
    description = data.first("descriptions")
    if description:
        out.put("summary", description.value, description.where)
    out.put("summary", meta.description, "trafilatura:summary")
    out.put(
        "organisations",
        clean_list(f.value for f in data.organisations),
        "+".join(dict.fromkeys(f.where for f in data.organisations)),
    )
    if data.keywords:
        out.put("keywords", clean_list(f.value for f in data.keywords)[:MAX_KEYWORDS], data.keywords[0].where)
    if meta.sitename and "organisations" in selectors:
        out.put("organisations", [meta.sitename], "trafilatura:sitename")
    if out.lang_attr is None and data.languages:
        out.lang_attr = data.languages[0].value


def extract_html(
    body: bytes, url: str, selectors: dict[str, str], declared_encoding: str | None = None
) -> HtmlExtraction:
    html = decode_html(body, declared_encoding)
    tree = trafilatura.load_html(html)  # parsed once for the selectors and trafilatura's text and metadata
    sel = Selector(root=tree, type="html") if tree is not None else Selector(text=html, type="html")
    out = HtmlExtraction(lang_attr=(sel.xpath("/html/@lang").get() or sel.xpath("//html/@xml:lang").get()))
    for name, query in selectors.items():
        found = select(sel, query)
        if name in LIST_SELECTOR_FIELDS:
            value: str | list[str] | None = clean_list(found) or None
        else:
            value = clean_text(" ".join(found)) if found else None
        if value:
            out.values[name] = value
            out.provenance[name] = f"selector:{query}"
    if "text" not in out.values and tree is not None:
        text = trafilatura.extract(tree, url=url, include_comments=False, include_tables=True, favor_recall=True)
        if text and text.strip():
            out.values["text"] = text.strip()
            out.provenance["text"] = "trafilatura"
    if tree is not None:
        _fill_from_page(out, sel, tree, url, selectors)
    if not out.values.get("text") and not out.values.get("summary"):
        raise ExtractionError("no text extracted")
    return out
