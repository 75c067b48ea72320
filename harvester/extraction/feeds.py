"""Feed bodies -> one plain dict per entry: RSS and Atom of every dialect through feedparser (the reference
reader), JSON Feed here. Entity declarations are refused, never expanded."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import feedparser

from harvester.extraction.structured import StructuredBodyError

DEFAULT_FEED_FIELDS = {
    "title": "title",
    "summary": {"path": "summary", "html": True},
    "text": {"path": "content", "html": True},
    "published": "published",
    "keywords": "categories",
    "organisations": "authors",
}
# the internal subset of a DOCTYPE that declares entities (billion laughs, external entities)
_ENTITY_DECLARATION = re.compile(rb"<!DOCTYPE[^\[>]*\[[^\]]*<!ENTITY\s+%?\s*([\w.:-]+)", re.S)


_STRAY_AMPERSAND = re.compile(rb"&(?!#[0-9]+;|#[xX][0-9a-fA-F]+;|[A-Za-z][A-Za-z0-9]*;)")
_CDATA = re.compile(rb"(<!\[CDATA\[.*?\]\]>)", re.S)


def _escape_stray_ampersands(body: bytes) -> bytes:
    """``&`` that starts no entity reference (``?id=1&lang=fr``) escaped outside CDATA, as an HTML reader
    takes it: left alone, feedparser's lenient parser reads ``&lang`` as the entity 〈."""
    parts = _CDATA.split(body)
    return b"".join(part if i % 2 else _STRAY_AMPERSAND.sub(b"&amp;", part) for i, part in enumerate(parts))


def _web_link(link: Any) -> str | None:
    """An entry's link when it is a web address (feedparser falls back to an Atom ``urn:`` id)."""
    return link if isinstance(link, str) and link.startswith(("http://", "https://")) else None


def _feedparser_entry(entry: Any) -> dict[str, Any]:
    content = entry.get("content") or []
    return {
        "id": (entry.get("id") or "").strip() or None,
        "title": entry.get("title") or None,
        "link": _web_link(entry.get("link")),
        "summary": entry.get("summary") or None,
        "content": (content[0].get("value") if content else None) or None,
        "published": entry.get("published") or entry.get("updated") or entry.get("created") or None,
        "authors": [a["name"] for a in entry.get("authors") or [] if isinstance(a, dict) and a.get("name")],
        "categories": [t["term"] for t in entry.get("tags") or [] if isinstance(t, dict) and t.get("term")],
    }


def _xml_feed_entries(body: bytes, base_url: str | None) -> list[dict[str, Any]]:
    """Every RSS 0.9x / 1.0 (RDF) / 2.0 and Atom 0.3 / 1.0 dialect, read by feedparser: ``xml:base`` and
    relative links resolved (against ``base_url`` last), HTML entities and stray ``&`` read as a browser
    would. Refused: entity declarations (never expanded), a truncated document, anything not a feed."""
    declared = _ENTITY_DECLARATION.search(body[:65536])
    if declared:
        raise StructuredBodyError(f"feed declares XML entities ({declared.group(1).decode('latin-1')}); refused")
    headers = {"content-type": "application/xml"}
    if base_url:
        headers["content-location"] = base_url
    parsed = feedparser.parse(io.BytesIO(_escape_stray_ampersands(body)), response_headers=headers)
    problem = parsed.get("bozo_exception")
    if problem is not None and "no element found" in str(problem):
        raise StructuredBodyError(f"feed is cut short: {problem}")
    if not parsed.get("version") and not parsed.entries:
        raise StructuredBodyError(f"not a feed{f': {problem}' if problem is not None else ''}")
    return [_feedparser_entry(e) for e in parsed.entries]


def _json_feed_entries(data: Any) -> Iterator[dict[str, Any]]:
    items = data.get("items", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise StructuredBodyError("bad JSON Feed: 'items' is not a list")
    for item in items:
        if not isinstance(item, dict):
            continue
        authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
        authors = authors if isinstance(authors, list) else []
        tags = item.get("tags") if isinstance(item.get("tags"), list) else []
        yield {
            "id": item.get("id"),
            "title": item.get("title"),
            "link": item.get("url") or item.get("external_url"),
            "summary": item.get("summary"),
            "content": item.get("content_html") or item.get("content_text"),
            "published": item.get("date_published") or item.get("date_modified"),
            "authors": [a.get("name") for a in authors if isinstance(a, dict) and a.get("name")],
            "categories": [t for t in tags if isinstance(t, str)],
        }


# A UTF-8 byte-order mark, and the same mark decoded as Latin-1 and re-encoded (seen in real saved feeds).
BOMS = (b"\xc3\xaf\xc2\xbb\xc2\xbf", b"\xef\xbb\xbf")
_DECLARED_ENCODING = re.compile(rb"^<\?xml[^>]*\bencoding\s*=", re.I)


def _strip_start(body: bytes) -> bytes:
    stripped = body.lstrip(b" \t\r\n")
    for bom in BOMS:
        if stripped.startswith(bom):
            return stripped[len(bom) :].lstrip(b" \t\r\n")
    return stripped


def _undeclared_legacy_to_utf8(body: bytes) -> bytes:
    """XML without a declared encoding must be UTF-8; a body that is not (real feeds served in
    Latin-1 without saying so) is read as windows-1252 instead of failing or turning into mojibake."""
    if _DECLARED_ENCODING.match(body[:512]):
        return body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace").encode("utf-8")
    return body


def iter_feed(body: bytes, base_url: str | None = None) -> Iterator[dict[str, Any]]:
    """Entries of an RSS, Atom or JSON Feed document; ``base_url`` (the response URL) resolves relative links."""
    stripped = _strip_start(body)
    if stripped.startswith(b"{"):
        try:
            yield from _json_feed_entries(json.loads(stripped))
        except json.JSONDecodeError as exc:
            raise StructuredBodyError(f"bad JSON Feed: {exc}") from exc
        return
    yield from _xml_feed_entries(_undeclared_legacy_to_utf8(stripped), base_url)


def entry_key(entry: dict[str, Any]) -> str:
    """A feed entry's identity: its id (Atom ``id``, RSS ``guid``, RDF ``rdf:about``, JSON Feed ``id``),
    else its link, else a hash of its title, date and text (an entry with none of these has no other)."""
    for value in (entry.get("id"), entry.get("link")):
        if value not in (None, ""):
            return str(value).strip()
    parts = [str(entry.get(k) or "") for k in ("title", "published", "summary", "content")]
    return "sha256:" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
