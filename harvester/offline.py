"""Run a source's real spider and stages on saved responses, without a crawler or database
(``harvester extract``, ``harvester sources test``)."""

from __future__ import annotations

from pathlib import Path

from scrapy import Request
from scrapy.http import Headers
from scrapy.responsetypes import responsetypes

from harvester.items import CandidateItem
from harvester.registry import SourceSpec
from harvester.spider_loader import spider_class_for
from harvester.stages import process_offline
from harvester.warc import RecordedResponse, iter_responses


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


def candidates_from_response(spec: SourceSpec, recorded: RecordedResponse, seed: int = 0,
                             keep_failures: bool = False) -> list[CandidateItem]:
    """The candidates the source's spider and stages make of one response."""
    spider = spider_class_for(spec)()
    headers = Headers(recorded.headers)
    request = Request(recorded.url, meta={"window": 0, "window_records": 0})
    cls = responsetypes.from_args(headers=headers, url=recorded.url, body=recorded.body)
    response = cls(url=recorded.url, status=recorded.status, headers=headers, body=recorded.body, request=request)
    out = []
    for item in spider.records(response):
        try:
            out.append(process_offline(item, spec, seed))
        except Exception:
            if not keep_failures:
                continue
            raise
    return out
