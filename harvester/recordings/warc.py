"""WARC (ISO 28500) read/write for recordings and replays, through warcio."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from harvester.dedupe import canonical_url

HOP_BY_HOP = {"content-encoding", "transfer-encoding", "content-length", "connection"}


@dataclass(frozen=True)
class RecordedResponse:
    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def write_response(writer: WARCWriter, response: RecordedResponse) -> None:
    """Write one response record; the body is stored decoded, so transfer headers are dropped."""
    headers = [(k, v) for k, v in response.headers if k.lower() not in HOP_BY_HOP]
    headers.append(("Content-Length", str(len(response.body))))
    http = StatusAndHeaders(f"{response.status} {_reason(response.status)}", headers, protocol="HTTP/1.1")
    record = writer.create_warc_record(
        response.url, "response", payload=io.BytesIO(response.body), length=len(response.body), http_headers=http
    )
    writer.write_record(record)


SERVER_NOT_MODIFIED = "http://netpreserve.org/warc/1.0/revisit/server-not-modified"


class ExchangeWriter:
    """Writes a crawl as web archivers do: per exchange a request record and a response record
    (``WARC-Concurrent-To``), the bytes as the server sent them (``Content-Encoding`` kept; only the
    transfer framing, already undone, is dropped), redirects as the 3xx responses they were, and a
    ``revisit`` record instead of a second copy of a payload already written for the same URL or for
    a 304 answer (profile server-not-modified)."""

    def __init__(self, writer: WARCWriter) -> None:
        self.writer = writer
        self.written: dict[tuple[str, str], tuple[str, str]] = {}  # (url, payload digest) -> (uri, WARC-Date)

    def write(
        self,
        method: str,
        url: str,
        request_headers: list[tuple[str, str]],
        status: int,
        response_headers: list[tuple[str, str]],
        body: bytes,
    ) -> str:
        """Write one exchange; returns the type of the response-side record ('response' or 'revisit')."""
        headers = [(k, v) for k, v in response_headers if k.lower() not in ("transfer-encoding", "content-length")]
        headers.append(("Content-Length", str(len(body))))
        http = StatusAndHeaders(f"{status} {_reason(status)}", headers, protocol="HTTP/1.1")
        digest = "sha1:" + base64.b32encode(hashlib.sha1(body, usedforsecurity=False).digest()).decode("ascii")
        earlier = self.written.get((url, digest))
        if status == 304:
            record = self.writer.create_warc_record(
                url, "revisit", http_headers=http, warc_headers_dict={"WARC-Profile": SERVER_NOT_MODIFIED}
            )
        elif earlier is not None and body:
            record = self.writer.create_revisit_record(url, digest, earlier[0], earlier[1], http_headers=http)
        else:
            record = self.writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), length=len(body), http_headers=http
            )
            self.written[(url, digest)] = (url, record.rec_headers.get_header("WARC-Date"))
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = self.writer.create_warc_record(
            url,
            "request",
            http_headers=StatusAndHeaders(f"{method} {target} HTTP/1.1", request_headers, is_http_request=True),
            warc_headers_dict={"WARC-Concurrent-To": record.rec_headers.get_header("WARC-Record-ID")},
        )
        self.writer.write_record(record)
        self.writer.write_record(request)
        return record.rec_type


def write_warc(path: Path, responses: Iterable[RecordedResponse]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    count = 0
    with tmp.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for response in responses:
            write_response(writer, response)
            count += 1
    tmp.replace(path)
    return count


def iter_responses(stream: BinaryIO) -> Iterator[RecordedResponse]:
    """The response records of a WARC, bodies decoded. warcio's ``content_stream`` undoes the recorded
    transfer and content encodings (a WARC from wget or warcio's ``capture_http`` keeps the gzip bytes the
    server sent), so the headers that described them are dropped: replayed as they were, they made
    Scrapy gunzip a body that was no longer gzip (``BadGzipFile``)."""
    for record in ArchiveIterator(stream):
        if record.rec_type != "response" or record.http_headers is None:
            continue
        url = record.rec_headers.get_header("WARC-Target-URI")
        status = int(record.http_headers.get_statuscode() or 0)
        body = record.content_stream().read()
        headers = [(k, v) for k, v in record.http_headers.headers if k.lower() not in HOP_BY_HOP]
        yield RecordedResponse(url, status, [*headers, ("Content-Length", str(len(body)))], body)


class WarcIndex:
    """Lookup of recorded responses by canonical URL over every ``*.warc``/``*.warc.gz`` in a folder.

    Later files win, so a fresh recording overrides an older one.
    """

    def __init__(self, paths: list[Path]) -> None:
        self._by_url: dict[str, RecordedResponse] = {}
        for path in paths:
            with path.open("rb") as fh:
                for response in iter_responses(fh):
                    self._by_url[canonical_url(response.url)] = response

    @classmethod
    def from_dir(cls, directory: Path) -> WarcIndex:
        if not directory.is_dir():
            raise FileNotFoundError(f"replay folder {directory} does not exist")
        paths = sorted([*directory.glob("*.warc.gz"), *directory.glob("*.warc")], key=lambda p: p.stat().st_mtime)
        return cls(paths)

    def get(self, url: str) -> RecordedResponse | None:
        return self._by_url.get(canonical_url(url))

    def __len__(self) -> int:
        return len(self._by_url)

    def urls(self) -> list[str]:
        return [r.url for r in self._by_url.values()]


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
