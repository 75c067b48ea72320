"""Record links on a listing page when the source names no link selector: links on the source's hosts
that look like record pages (below the listing's path, or ending in a slug, an id or ``.html``), not
files, feeds or navigation pages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from scrapy.http import Response

STATIC_SUFFIXES = (
    ".css",
    ".js",
    ".json",
    ".xml",
    ".rss",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".svg",
    ".webp",
    ".ico",
    ".pdf",
    ".zip",
    ".gz",
    ".doc",
    ".docx",
    ".xls",
    ".xlsx",
    ".mp3",
    ".mp4",
)
NAVIGATION_WORDS = re.compile(
    r"/(tag|tags|category|categories|author|authors|search|login|register|"
    r"account|contact|about|privacy|terms|page|feed|rss)(/|$)",
    re.IGNORECASE,
)
MAX_DISCOVERED = 200


def looks_like_record(url: str, listing_url: str, hosts: list[str]) -> bool:
    """A link that probably leads to a record page: on the source's hosts, not a file, feed or navigation
    page, and below the listing's path or ending in a slug or an id."""
    parts, listing = urlsplit(url), urlsplit(listing_url)
    if parts.scheme not in ("http", "https") or parts.hostname not in hosts:
        return False
    path = parts.path.rstrip("/")
    if not path or path == listing.path.rstrip("/") or path.lower().endswith(STATIC_SUFFIXES):
        return False
    if NAVIGATION_WORDS.search(path):
        return False
    last = path.rsplit("/", 1)[-1]
    below = path.startswith(listing.path.rsplit("/", 1)[0] + "/") and path.count("/") > listing.path.count("/")
    return below or "-" in last or any(c.isdigit() for c in last) or last.endswith((".html", ".htm"))


PAGING_TEXT = re.compile(
    r"^\W*(\d+|next|prev(ious)?|older|newer|suivant|précédent|siguiente|anterior|далее|"
    r"назад|следующая|التالي|السابق|下一页|上一页|下页|上页|more|plus|más)?\W*$",
    re.IGNORECASE,
)
PAGING_QUERY = re.compile(r"(^|&)(page|p|pg|offset|start|paged)=\d+", re.IGNORECASE)
_OUTSIDE_CONTENT = "ancestor::nav or ancestor::header or ancestor::footer or ancestor::aside"


def discover_links(response: Response, hosts: list[str]) -> list[str]:
    """Record-like links of a listing page, main content first, in page order, without duplicates; links in
    navigation, header, footer and sidebars and paging links ("2", "next", ``rel=next``, ``?page=3``) are
    not records."""
    scope = response.xpath("//main|//article|//*[@role='main']") or response.xpath("//body")
    found: dict[str, None] = {}
    for anchor in scope.xpath(f".//a[@href][not({_OUTSIDE_CONTENT})][not(@rel='next' or @rel='prev')]"):
        text = " ".join(anchor.xpath(".//text()").getall()).strip()
        url = response.urljoin(anchor.attrib["href"].strip()).split("#", 1)[0]
        if url in found or PAGING_TEXT.match(text) or PAGING_QUERY.search(urlsplit(url).query):
            continue
        if looks_like_record(url, response.url, hosts):
            found[url] = None
    return list(found)[:MAX_DISCOVERED]
