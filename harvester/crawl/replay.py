"""Offline replay: recorded responses served through Scrapy's real downloader stack.

``ReplayDownloadHandler`` replaces the http/https handlers when ``HARVESTER_REPLAY_DIR`` is set.
A URL missing from the recording answers 404 marked ``X-Harvester-Replay: not-recorded``, which
spiders record as an error, never as the partner saying the record is gone. Conditional requests
get 304 when the recorded validators match, as a real server would, so incremental crawling runs
offline too.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.core.downloader.handlers.base import BaseDownloadHandler
from scrapy.exceptions import NotConfigured
from scrapy.http import Headers, Response
from scrapy.responsetypes import responsetypes

from harvester.recordings.warc import RecordedResponse, WarcIndex

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

_INDEXES: dict[Path, WarcIndex] = {}
NOT_RECORDED_HEADER = b"X-Harvester-Replay"
NOT_RECORDED = b"not-recorded"


def not_recorded(response: Response | None) -> bool:
    """True for the replay's answer to a URL it has no recording of (not a 404 from the partner)."""
    return response is not None and response.headers.get(NOT_RECORDED_HEADER) == NOT_RECORDED


def replay_index(directory: Path) -> WarcIndex:
    key = directory.resolve()
    if key not in _INDEXES:
        _INDEXES[key] = WarcIndex.from_dir(key)
    return _INDEXES[key]


def is_not_modified(request_headers: Headers, recorded: RecordedResponse) -> bool:
    etag = recorded.header("ETag")
    if_none_match = request_headers.get(b"If-None-Match")
    if etag and if_none_match:
        return etag.encode() in [t.strip() for t in if_none_match.split(b",")] or if_none_match.strip() == b"*"
    last_modified = recorded.header("Last-Modified")
    if_modified_since = request_headers.get(b"If-Modified-Since")
    if last_modified and if_modified_since:
        try:
            return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(if_modified_since.decode())
        except (TypeError, ValueError):
            return False
    return False


class ReplayDownloadHandler(BaseDownloadHandler):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        directory = crawler.settings.get("HARVESTER_REPLAY_DIR")
        if not directory:
            raise NotConfigured("HARVESTER_REPLAY_DIR is not set")
        self.index = replay_index(Path(directory))

    async def download_request(self, request: Request) -> Response:
        recorded = self.index.get(request.url)
        stats = self.crawler.stats
        if recorded is None:
            if stats is not None:
                stats.inc_value("harvester/replay/missing")
            return Response(
                url=request.url,
                status=404,
                body=b"",
                request=request,
                headers=Headers({NOT_RECORDED_HEADER: NOT_RECORDED}),
            )
        if stats is not None:
            stats.inc_value("harvester/replay/served")
        headers = Headers(recorded.headers)
        if is_not_modified(request.headers, recorded):
            keep = {k: v for k, v in headers.items() if k.lower() in (b"etag", b"last-modified", b"date")}
            return Response(url=request.url, status=304, headers=Headers(keep), body=b"", request=request)
        cls = responsetypes.from_args(headers=headers, url=request.url, body=recorded.body)
        return cls(url=request.url, status=recorded.status, headers=headers, body=recorded.body, request=request)
