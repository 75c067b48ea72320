# ruff: noqa: RUF001  (CJK, Arabic and typographic punctuation is intended here)
"""Metadata a page states about itself: schema.org JSON-LD and microdata, OpenGraph, Dublin Core and
Highwire ``citation_*`` meta tags.

These are the publisher's own statements, so they outrank anything guessed from the layout. Each value
keeps where it was read (``jsonld:headline``, ``meta:og:title``), which becomes the field's provenance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from parsel import Selector

ARTICLE_TYPES = re.compile(
    r"(Article|BlogPosting|Report|Thesis|Chapter|Book|CreativeWork|Dataset|Project|Event|WebPage|"
    r"ScholarlyArticle|Review|Posting|Message)$",
    re.IGNORECASE,
)
_ORG_TYPES = re.compile(
    r"(Organization|NGO|GovernmentOrganization|Corporation|NewsMediaOrganization|"
    r"ResearchOrganization|EducationalOrganization|FundingAgency)$",
    re.IGNORECASE,
)

# meta name/property -> field, in priority order within each field
META_TITLE = ("og:title", "twitter:title", "citation_title", "dc.title", "dcterms.title")
META_DATE = (
    "article:published_time",
    "citation_publication_date",
    "citation_date",
    "citation_online_date",
    "dc.date.issued",
    "dcterms.issued",
    "dc.date",
    "dcterms.date",
    "datepublished",
    "pubdate",
    "publishdate",
    "publication_date",
    "og:release_date",
    "date",
)
META_DESCRIPTION = (
    "og:description",
    "description",
    "dc.description",
    "dcterms.abstract",
    "dcterms.description",
    "twitter:description",
)
META_SITE = ("og:site_name", "application-name", "al:android:app_name", "twitter:site")
META_ORGS = ("citation_publisher", "dc.publisher", "dcterms.publisher", "citation_author_institution")
META_KEYWORDS = ("keywords", "news_keywords", "citation_keywords", "dc.subject", "article:tag")


@dataclass(frozen=True)
class Found:
    """One value and where on the page it was read."""

    value: str
    where: str


@dataclass
class EmbeddedData:
    titles: list[Found] = field(default_factory=list)
    dates: list[Found] = field(default_factory=list)
    descriptions: list[Found] = field(default_factory=list)
    site_names: list[Found] = field(default_factory=list)
    organisations: list[Found] = field(default_factory=list)
    keywords: list[Found] = field(default_factory=list)
    languages: list[Found] = field(default_factory=list)

    def first(self, name: str) -> Found | None:
        values: list[Found] = getattr(self, name)
        return values[0] if values else None


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value")
    if isinstance(value, list):
        value = next((v for v in (_text(x) for x in value) if v), None)
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text or None


def _types(node: dict[str, Any]) -> list[str]:
    raw = node.get("@type") or []
    return [str(t).rsplit("/", 1)[-1] for t in (raw if isinstance(raw, list) else [raw])]


def _nodes(data: Any) -> Iterator[dict[str, Any]]:
    """Every object of a JSON-LD document, top-level ``@graph`` members included."""
    if isinstance(data, list):
        for entry in data:
            yield from _nodes(entry)
    elif isinstance(data, dict):
        yield data
        for key in ("@graph", "mainEntity"):
            if key in data:
                yield from _nodes(data[key])


def _json_ld(sel: Selector) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for raw in sel.xpath("//script[@type='application/ld+json']/text()").getall():
        try:
            data = json.loads(raw.strip().rstrip(";"), strict=False)
        except ValueError:
            continue  # a broken block on a partner page is skipped, the other sources still count
        nodes.extend(_nodes(data))
    return nodes


def _page_key(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{(parts.hostname or '').removeprefix('www.')}{parts.path.rstrip('/')}"


def _refers_elsewhere(node: dict[str, Any], page: str) -> bool:
    """A node about another page (a related article listed on this one)."""
    entity = node.get("mainEntityOfPage")
    target = node.get("url") or (entity.get("@id") if isinstance(entity, dict) else entity)
    return bool(page) and isinstance(target, str) and target.startswith("http") and _page_key(target) != page


def _main_nodes(nodes: list[dict[str, Any]], url: str | None = None) -> list[dict[str, Any]]:
    """The nodes describing the page's record (articles about this URL first), not its breadcrumbs, images,
    menus or related articles."""
    page = _page_key(url) if url else ""
    articles = [
        n
        for n in nodes
        if any(ARTICLE_TYPES.search(t) for t in _types(n))
        and not any(t in ("WebSite", "SiteNavigationElement", "BreadcrumbList") for t in _types(n))
    ]
    untyped = [n for n in nodes if not _types(n) and ("headline" in n or "datePublished" in n)]
    return (
        sorted(
            articles,
            key=lambda n: (_refers_elsewhere(n, page), not any("Article" in t or "Chapter" in t for t in _types(n))),
        )
        + untyped
    )


def _from_json_ld(sel: Selector, out: EmbeddedData, url: str | None) -> None:
    nodes = _json_ld(sel)
    for node in _main_nodes(nodes, url):
        for key in ("headline", "name", "alternativeHeadline"):
            if value := _text(node.get(key)):
                out.titles.append(Found(value, f"jsonld:{key}"))
                break
        for key in ("datePublished", "dateCreated", "uploadDate", "startDate"):
            if value := _text(node.get(key)):
                out.dates.append(Found(value, f"jsonld:{key}"))
        if value := _text(node.get("description")):
            out.descriptions.append(Found(value, "jsonld:description"))
        if value := _text(node.get("inLanguage")):
            out.languages.append(Found(value, "jsonld:inLanguage"))
        for key in ("sourceOrganization", "funder", "sponsor", "publisher", "provider"):
            for org in node.get(key) if isinstance(node.get(key), list) else [node.get(key)]:
                if (name := _text(org)) and (
                    not isinstance(org, dict) or not _types(org) or any(_ORG_TYPES.search(t) for t in _types(org))
                ):
                    out.organisations.append(Found(name, f"jsonld:{key}"))
        keywords = node.get("keywords")
        for word in keywords if isinstance(keywords, list) else str(keywords or "").split(","):
            if value := _text(word):
                out.keywords.append(Found(value, "jsonld:keywords"))
    for node in nodes:
        if any(t == "WebSite" for t in _types(node)) and (value := _text(node.get("name"))):
            out.site_names.append(Found(value, "jsonld:WebSite.name"))
        if any(_ORG_TYPES.search(t) for t in _types(node)) and (value := _text(node.get("name"))):
            out.site_names.append(Found(value, "jsonld:Organization.name"))


def _from_microdata(sel: Selector, out: EmbeddedData) -> None:
    for prop in ("headline", "name headline"):
        for node in sel.xpath(f"//*[@itemprop='{prop}']")[:1]:
            if value := _text(node.attrib.get("content") or " ".join(node.xpath(".//text()").getall())):
                out.titles.append(Found(value, "microdata:headline"))
    for node in sel.xpath("//*[@itemprop='datePublished' or @itemprop='dateCreated']")[:2]:
        value = node.attrib.get("content") or node.attrib.get("datetime") or " ".join(node.xpath(".//text()").getall())
        if value := _text(value):
            out.dates.append(Found(value, f"microdata:{node.attrib['itemprop']}"))


RDFA_DATE = ("dc:date", "dc:created", "dcterms:issued", "dcterms:created", "dcterms:date", "schema:datepublished")


def _from_rdfa(sel: Selector, out: EmbeddedData) -> None:
    """RDFa on ordinary elements (Drupal: ``<span property="dc:date" content="...">``)."""
    for node in sel.xpath("//*[@property and @content and not(self::meta)]"):
        key = node.attrib["property"].lower()
        if key in RDFA_DATE and (value := _text(node.attrib["content"])):
            out.dates.append(Found(value, f"rdfa:{key}"))
        elif key in ("dc:title", "dcterms:title", "schema:headline") and (value := _text(node.attrib["content"])):
            out.titles.append(Found(value, f"rdfa:{key}"))


def _from_meta(sel: Selector, out: EmbeddedData) -> None:
    meta: dict[str, list[str]] = {}
    for node in sel.xpath("//meta[@content]"):
        key = (node.attrib.get("property") or node.attrib.get("name") or node.attrib.get("itemprop") or "").lower()
        if key and (value := _text(node.attrib["content"])):
            meta.setdefault(key.strip(), []).append(value)
    for keys, target in (
        (META_TITLE, out.titles),
        (META_DATE, out.dates),
        (META_DESCRIPTION, out.descriptions),
        (META_SITE, out.site_names),
        (META_ORGS, out.organisations),
    ):
        for key in keys:
            target.extend(Found(v, f"meta:{key}") for v in meta.get(key, ())[:1])
    for key in META_KEYWORDS:
        for value in meta.get(key, ()):
            out.keywords.extend(Found(w.strip(), f"meta:{key}") for w in re.split(r"[,;，、]", value) if w.strip())
    for key in ("dc.language", "dcterms.language", "og:locale", "content-language"):
        out.languages.extend(Found(v, f"meta:{key}") for v in meta.get(key, ())[:1])


def embedded_data(sel: Selector, url: str | None = None) -> EmbeddedData:
    """What the page at ``url`` says about itself, strongest source first within each field."""
    out = EmbeddedData()
    _from_json_ld(sel, out, url)
    _from_microdata(sel, out)
    _from_rdfa(sel, out)
    _from_meta(sel, out)
    return out
