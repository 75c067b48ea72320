"""RSS 2.0, Atom and JSON Feed bodies -> one plain dict per entry (entity resolution off)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from lxml import etree

from harvester.extraction.structured import StructuredBodyError, refuse_entity_declarations, safe_parser

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"

DEFAULT_FEED_FIELDS = {
    "title": "title", "summary": {"path": "summary", "html": True}, "text": {"path": "content", "html": True},
    "published": "published", "keywords": "categories", "organisations": "authors",
}


def _text(elem: Any, path: str) -> str | None:
    found = elem.find(path)
    if found is None:
        return None
    return "".join(found.itertext()).strip() or None


def _rss_entry(item: Any) -> dict[str, Any]:
    return {
        "id": _text(item, "guid") or _text(item, "link"),
        "title": _text(item, "title"),
        "link": _text(item, "link"),
        "summary": _text(item, "description"),
        "content": _text(item, f"{CONTENT}encoded"),
        "published": _text(item, "pubDate") or _text(item, f"{DC}date"),
        "authors": [a for a in (_text(item, "author"), _text(item, f"{DC}creator")) if a],
        "categories": [t for t in ("".join(c.itertext()).strip() for c in item.findall("category")) if t],
    }


def _atom_entry(entry: Any) -> dict[str, Any]:
    links = entry.findall(f"{ATOM}link")
    alternate = next((li.get("href") for li in links if li.get("rel", "alternate") == "alternate"), None)
    return {
        "id": _text(entry, f"{ATOM}id"),
        "title": _text(entry, f"{ATOM}title"),
        "link": alternate or (links[0].get("href") if links else None),
        "summary": _text(entry, f"{ATOM}summary"),
        "content": _text(entry, f"{ATOM}content"),
        "published": _text(entry, f"{ATOM}published") or _text(entry, f"{ATOM}updated"),
        "authors": [n for n in (_text(a, f"{ATOM}name") for a in entry.findall(f"{ATOM}author")) if n],
        "categories": [c.get("term") for c in entry.findall(f"{ATOM}category") if c.get("term")],
    }


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
            "id": item.get("id"), "title": item.get("title"), "link": item.get("url") or item.get("external_url"),
            "summary": item.get("summary"), "content": item.get("content_html") or item.get("content_text"),
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
            return stripped[len(bom):].lstrip(b" \t\r\n")
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


def iter_feed(body: bytes) -> Iterator[dict[str, Any]]:
    """Entries of an RSS 2.0, Atom 1.0 or JSON Feed document."""
    stripped = _strip_start(body)
    if stripped.startswith(b"{"):
        try:
            yield from _json_feed_entries(json.loads(stripped))
        except json.JSONDecodeError as exc:
            raise StructuredBodyError(f"bad JSON Feed: {exc}") from exc
        return
    try:
        root = etree.fromstring(_undeclared_legacy_to_utf8(stripped), parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise StructuredBodyError(f"bad feed XML: {exc}") from exc
    refuse_entity_declarations(root, "feed")
    if root.tag == f"{ATOM}feed":
        yield from (_atom_entry(e) for e in root.iter(f"{ATOM}entry"))
    elif root.tag in ("rss", "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF"):
        yield from (_rss_entry(i) for i in root.iter("item", "{http://purl.org/rss/1.0/}item"))
    else:
        raise StructuredBodyError(f"not a feed: root element {root.tag!r}")
