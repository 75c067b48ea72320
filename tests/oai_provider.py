"""A real third-party OAI-PMH data provider on 127.0.0.1: pyoai's ``oaipmh.server`` (PyPI ``pyoai``)
serving the records a test writes to a JSON file, re-read on every request so a test can change,
add or delete records between (or during) harvests.

Records: ``{"identifier": OAI identifier, "datestamp": "YYYY-MM-DDThh:mm:ssZ", "deleted": bool, "dc": {element:
[values]}}``. Run as ``python -m tests.oai_provider RECORDS.json FAULTS.json PORT_FILE``; it writes its port to
PORT_FILE once listening. FAULTS.json (re-read per request) injects faults mid-chain:
``{"fail_tokens": true}`` answers every resumptionToken request with HTTP 500 (a broken chain).
Resumption pages hold ``batch`` (default 10) records; pyoai re-runs the query for each page, so a
record changed mid-chain moves through the list as it would on a real repository.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from oaipmh import common, error, metadata, server

# pyoai 2.5.0 decodes resumption tokens with ``cgi.parse_qs``, removed in Python 3.8: give its module the
# same function from its new home (``urllib.parse``) so the provider's own resumption code runs unchanged.
if not hasattr(server.cgi, "parse_qs"):
    server.cgi.parse_qs = parse_qs  # type: ignore[attr-defined]

EARLIEST = datetime(1990, 1, 1)


def _stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


class Repository:
    """pyoai's ``IOAI`` interface over the JSON records: identifier, datestamp, deleted, dc fields."""

    def __init__(self, records_path: Path, base_url: str) -> None:
        self.records_path, self.base_url = records_path, base_url

    def _records(self) -> list[dict[str, Any]]:
        return sorted(json.loads(self.records_path.read_text("utf-8")), key=lambda r: (r["datestamp"], r["identifier"]))

    def _entry(self, record: dict[str, Any]) -> tuple[Any, Any, None]:
        deleted = record.get("deleted", False)
        header = common.Header(None, record["identifier"], _stamp(record["datestamp"]), [], deleted)
        if record.get("deleted"):
            return header, None, None
        return header, common.Metadata(None, record.get("dc", {})), None

    def identify(self) -> Any:
        return common.Identify(
            repositoryName="test repository",
            baseURL=self.base_url,
            protocolVersion="2.0",
            adminEmails=["oai@example.org"],
            earliestDatestamp=EARLIEST,
            deletedRecord="persistent",
            granularity="YYYY-MM-DDThh:mm:ssZ",
            compression=["identity"],
            toolkit_description=False,
        )

    def listMetadataFormats(self, identifier: str | None = None) -> list[tuple[str, str, str]]:
        return [
            ("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd", "http://www.openarchives.org/OAI/2.0/oai_dc/")
        ]

    def listSets(self) -> list[Any]:
        raise error.NoSetHierarchyError("no sets")

    def _select(self, from_: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        out = [
            r
            for r in self._records()
            if (from_ is None or _stamp(r["datestamp"]) >= from_) and (until is None or _stamp(r["datestamp"]) <= until)
        ]
        if not out:
            raise error.NoRecordsMatchError("no records match")
        return out

    def listRecords(
        self, metadataPrefix: str, set: str | None = None, from_: datetime | None = None, until: datetime | None = None
    ) -> list[Any]:
        return [self._entry(r) for r in self._select(from_, until)]

    def listIdentifiers(
        self, metadataPrefix: str, set: str | None = None, from_: datetime | None = None, until: datetime | None = None
    ) -> list[Any]:
        return [self._entry(r)[0] for r in self._select(from_, until)]

    def getRecord(self, metadataPrefix: str, identifier: str) -> Any:
        for record in self._records():
            if record["identifier"] == identifier:
                return self._entry(record)
        raise error.IdDoesNotExistError(identifier)


def serve(records_path: Path, faults_path: Path, port_file: Path, batch: int = 10) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    base_url = f"http://127.0.0.1:{httpd.server_address[1]}/oai"
    registry = metadata.MetadataRegistry()
    registry.registerWriter("oai_dc", server.oai_dc_writer)
    provider = server.Server(Repository(records_path, base_url), registry, resumption_batch_size=batch)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            faults = json.loads(faults_path.read_text("utf-8")) if faults_path.exists() else {}
            if parts.path == "/robots.txt" or parts.path != "/oai":
                status, body, kind = 404, b"not found", "text/plain"
            elif "resumptionToken" in query and faults.get("fail_tokens"):
                status, body, kind = 500, b"injected fault", "text/plain"
            else:
                status, body, kind = 200, provider.handleRequest(query), "text/xml; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            with (records_path.parent / "requests.log").open("a", encoding="utf-8") as log:
                log.write(self.path + "\n")

    httpd.RequestHandlerClass = Handler
    port_file.write_text(str(httpd.server_address[1]), "utf-8")
    httpd.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
