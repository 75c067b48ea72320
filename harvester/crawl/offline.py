"""Run a source's real spider and stages on saved responses, without a crawler or database
(``harvester extract``, ``harvester sources test``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scrapy import Request
from scrapy.http import Headers
from scrapy.responsetypes import responsetypes

from harvester.crawl.spider_loader import spider_class_for
from harvester.extraction.html import ExtractionError
from harvester.extraction.structured import StructuredBodyError
from harvester.items import CandidateItem
from harvester.recordings.warc import RecordedResponse, iter_responses
from harvester.registry import SourceSpec
from harvester.stages import process_offline


class SavedResponseError(ValueError):
    """A saved file that cannot be processed (empty, unreadable, not a response of this source)."""


def read_saved(path: Path, url: str | None) -> list[RecordedResponse]:
    """A bare body (needs ``url``) or every response in a WARC file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SavedResponseError(f"{path}: cannot read: {exc.strerror}") from None
    if not data.strip():
        raise SavedResponseError(f"{path}: file is empty")
    if path.name.endswith((".warc", ".warc.gz")):
        with path.open("rb") as fh:
            try:
                return list(iter_responses(fh))
            except Exception as exc:
                raise SavedResponseError(f"{path}: not a readable WARC file: {exc}") from None
    return [RecordedResponse(url or path.resolve().as_uri(), 200, [], data)]


@dataclass
class OfflineResult:
    items: list[CandidateItem] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def candidates_from_response(spec: SourceSpec, recorded: RecordedResponse, seed: int = 0) -> OfflineResult:
    """The candidates the source's spider and stages make of one response, and the records that failed."""
    spider = spider_class_for(spec)()
    headers = Headers(recorded.headers)
    request = Request(recorded.url, meta={"window": 0, "window_records": 0})
    cls = responsetypes.from_args(headers=headers, url=recorded.url, body=recorded.body)
    response = cls(url=recorded.url, status=recorded.status, headers=headers, body=recorded.body, request=request)
    out = OfflineResult()
    try:
        for item in spider.records(response):
            try:
                out.items.append(process_offline(item, spec, seed))
            except (ExtractionError, StructuredBodyError) as exc:
                out.failures.append((item.url, str(exc)))
    except (StructuredBodyError, ValueError) as exc:
        raise SavedResponseError(f"{recorded.url}: {exc}") from None
    return out
