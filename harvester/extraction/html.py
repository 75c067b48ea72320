"""HTML pages -> candidate fields: per-source selectors first, trafilatura for free text and metadata."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

import trafilatura
from bs4 import UnicodeDammit
from bs4.dammit import EncodingDetector
from parsel import Selector

from harvester.extraction.metadata import page_metadata
from harvester.extraction.normalise import clean_list, clean_text

MAX_HTML_BYTES = 8 * 1024 * 1024
LIST_SELECTOR_FIELDS = {"organisations", "countries", "regions", "keywords"}


class ExtractionError(Exception):
    """A page that yields no usable record (empty, binary, not HTML): recorded, never stored empty."""


@dataclass
class HtmlExtraction:
    values: dict[str, str | list[str]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    lang_attr: str | None = None


def _cp1252_bytes(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start:error.end]
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


def extract_html(body: bytes, url: str, selectors: dict[str, str], declared_encoding: str | None = None
                 ) -> HtmlExtraction:
    html = decode_html(body, declared_encoding)
    tree = trafilatura.load_html(html)  # parsed once for the selectors and trafilatura's text and metadata
    sel = Selector(root=tree, type="html") if tree is not None else Selector(text=html)
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
        meta = page_metadata(tree, url)
        for name, value in (("title", meta.title), ("published", meta.date), ("summary", meta.description)):
            if value and name not in out.values:
                out.values[name] = value
                out.provenance[name] = f"trafilatura:{name}"
        if meta.sitename and "organisations" not in out.values and "organisations" in selectors:
            out.values["organisations"] = [meta.sitename]
            out.provenance["organisations"] = "trafilatura:sitename"
    if "title" not in out.values:
        title = clean_text(" ".join(sel.css("title::text").getall()))
        if title:
            out.values["title"] = title
            out.provenance["title"] = "html:title"
    if not out.values.get("text") and not out.values.get("summary"):
        raise ExtractionError("no text extracted")
    return out
