"""WARC (ISO 28500) read/write for recordings and replays, through warcio."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
    record = writer.create_warc_record(response.url, "response", payload=io.BytesIO(response.body),
                                       length=len(response.body),
                                       http_headers=http)
    writer.write_record(record)


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
