"""``harvester sources new``: propose a registry entry for a site nobody has configured yet.

It reads the start page and a few pages it links to (fetched politely, or replayed from saved bodies
and WARC files), decides whether the start page is a listing or itself a record page, runs the
selector-free extraction on the record pages and writes a ``listing`` or ``page`` entry with, as
comments, every field found and where on how many pages, for the operator to review. The entry is
``verified: false`` until someone has checked it.
"""

from __future__ import annotations

import re
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from scrapy.http import Headers, HtmlResponse

from harvester.crawl.offline import candidates_from_response
from harvester.extraction.embedded import embedded_data
from harvester.extraction.html import ExtractionError, decode_html
from harvester.extraction.links import discover_links
from harvester.items import CandidateItem
from harvester.recordings.fixtures import fixtures_dir
from harvester.recordings.warc import RecordedResponse
from harvester.registry import ID_PATTERN, SourceSpec

SAMPLE_PAGES = 3
MIN_LISTING_LINKS = 5
FETCH_TIMEOUT = 30
MAX_FETCH_BYTES = 8 * 1024 * 1024
REPORTED_FIELDS = ("title", "published", "summary", "organisations", "keywords", "countries", "language", "text")


class SourceProposalError(ValueError):
    """The start page cannot be read or yields no record."""


@dataclass
class Proposal:
    spec: SourceSpec
    pages: list[CandidateItem]
    found: dict[str, Counter[str]] = field(default_factory=dict)  # field -> where -> pages
    links: list[str] = field(default_factory=list)

    def yaml(self) -> str:
        """The entry as YAML, led by comments on what was found where."""
        when = datetime.now(UTC).date().isoformat()
        lines = [
            f"# Proposed by `harvester sources new` on {when} from {len(self.pages)} sampled page(s); "
            "review before use.",
            "# Fields found on the sampled pages, and where:",
        ]
        for name in REPORTED_FIELDS:
            where = self.found.get(name)
            if where:
                counts = ", ".join(f"{w} ({n}/{len(self.pages)})" for w, n in where.most_common())
                lines.append(f"#   {name}: {counts}")
            else:
                lines.append(f"#   {name}: not found")
        if self.links:
            lines.append(f"# Record links found on the start page: {len(self.links)}, e.g.")
            lines += [f"#   {link}" for link in self.links[:SAMPLE_PAGES]]
        data = self.spec.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        data.setdefault("verified", False)
        return "\n".join(lines) + "\n" + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=110)


def fetch(url: str, user_agent: str) -> RecordedResponse:
    """One live GET with the project's User-Agent, refused for private and loopback hosts."""
    from harvester.crawl.ssrf import check_url

    if urlsplit(url).scheme not in ("http", "https"):
        raise SourceProposalError(f"{url}: only http and https URLs can be fetched")
    check_url(url)
    request = urllib.request.Request(url, headers={"User-Agent": user_agent, "Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as reply:
            body = reply.read(MAX_FETCH_BYTES + 1)
            headers = list(reply.headers.items())
            status, final = reply.status, reply.url
    except OSError as exc:
        raise SourceProposalError(f"{url}: cannot fetch: {exc}") from None
    if len(body) > MAX_FETCH_BYTES:
        raise SourceProposalError(f"{url}: page larger than {MAX_FETCH_BYTES} bytes")
    return RecordedResponse(final, status, headers, body)


def suggest_id(url: str) -> str:
    host = (urlsplit(url).hostname or "site").removeprefix("www.")
    ident = re.sub(r"[^a-z0-9]+", "_", host.lower()).strip("_")
    ident = ident if ident[:1].isalpha() else f"s_{ident}"
    return ident[:62] if ID_PATTERN.match(ident[:62]) else "new_source"


def _as_html(recorded: RecordedResponse) -> HtmlResponse:
    try:
        decode_html(recorded.body)
    except ExtractionError as exc:
        raise SourceProposalError(f"{recorded.url}: {exc}") from None
    return HtmlResponse(url=recorded.url, body=recorded.body, headers=Headers(recorded.headers))


def is_record_page(response: HtmlResponse, links: list[str]) -> bool:
    """A page that states it is an article (or similar) or has too few record links to be a listing."""
    data = embedded_data(response.selector, response.url)
    stated = any(f.where.startswith(("jsonld:", "microdata:", "rdfa:")) for f in data.titles + data.dates)
    return stated or len(links) < MIN_LISTING_LINKS


def propose(
    url: str,
    start: RecordedResponse,
    pages: dict[str, RecordedResponse],
    source_id: str | None = None,
    name: str | None = None,
    replay: list[tuple[str, str]] | None = None,
    fetch_page: Callable[[str], RecordedResponse] | None = None,
) -> Proposal:
    """The entry for ``url`` from its ``start`` response and ``pages`` (URL -> response) of linked pages;
    ``fetch_page`` (a callable URL -> response) fetches sampled links not in ``pages``."""
    response = _as_html(start)
    host = urlsplit(url).hostname or ""
    links = discover_links(response, [host])
    record = is_record_page(response, links)
    ident = source_id or suggest_id(url)
    base = {
        "id": ident,
        "name": name or (urlsplit(url).hostname or ident),
        "homepage": f"https://{host}/",
        "start_urls": [url],
        "verified": False,
        "verification": "proposed by `harvester sources new`; fields and links not yet reviewed",
    }
    if replay:
        base["replay"] = [{"fixture": f, "url": u} for f, u in replay]
    if record:
        spec = SourceSpec.model_validate({**base, "kind": "page"})
        samples = [start]
    else:
        spec = SourceSpec.model_validate({**base, "kind": "listing", "listing": {"max_pages": 1}})
        samples = []
        for link in links:
            if len(samples) == SAMPLE_PAGES:
                break
            if link in pages:
                samples.append(pages[link])
            elif fetch_page is not None:
                samples.append(fetch_page(link))
        if not samples:
            raise SourceProposalError(
                f"{url}: a listing with {len(links)} record links, but none of them "
                "could be read (give saved detail pages or allow fetching)"
            )
    items: list[CandidateItem] = []
    for sample in samples:
        items += candidates_from_response(spec, sample).items
    if not items:
        raise SourceProposalError(f"{url}: no record could be extracted from the sampled pages")
    found: dict[str, Counter[str]] = {}
    for item in items:
        for name_ in REPORTED_FIELDS:
            value = item.language if name_ == "language" else getattr(item, name_)
            if value:
                where = item.provenance.get(name_, "?")
                found.setdefault(name_, Counter())[where] += 1
    return Proposal(spec, items, found, [] if record else links)


def replay_ref(path: Path) -> str | None:
    """``path`` relative to the fixtures folder, when it lies there (then the entry can replay it)."""
    try:
        return str(path.resolve().relative_to(fixtures_dir().resolve()))
    except (ValueError, OSError):
        return None
