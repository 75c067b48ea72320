"""Streaming readers for structured bodies: CSV, XLSX, JSON, JSON Lines and XML records.

Each yields one plain dict per record without building the whole table in memory. XML is parsed
with entity resolution and network access off (no XXE, no entity bombs).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any

from lxml import etree

from harvester.extraction.records import resolve
from harvester.registry import ExportOptions

csv.field_size_limit(16 * 1024 * 1024)
MAX_DECOMPRESSED = 256 * 1024 * 1024


class StructuredBodyError(ValueError):
    """A body that cannot be read in its declared format."""


def maybe_gunzip(body: bytes, force: bool = False) -> bytes:
    if not (force or body[:2] == b"\x1f\x8b"):
        return body
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as gz:
            while chunk := gz.read(1 << 20):
                out.write(chunk)
                if out.tell() > MAX_DECOMPRESSED:
                    raise StructuredBodyError(f"gzip body expands beyond {MAX_DECOMPRESSED} bytes")
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut stream an EOFError
        raise StructuredBodyError(f"bad gzip body: {exc}") from exc
    return out.getvalue()


def iter_csv(body: bytes, delimiter: str = ",", encoding: str = "utf-8-sig") -> Iterator[dict[str, Any]]:
    try:
        text = io.TextIOWrapper(io.BytesIO(body), encoding=encoding, newline="")
        reader = csv.DictReader(text, delimiter=delimiter)
        if not reader.fieldnames:
            raise StructuredBodyError("CSV has no header row")
        for row in reader:
            yield {k.strip(): v for k, v in row.items() if k is not None}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise StructuredBodyError(f"bad CSV: {exc}") from exc


def iter_xlsx(body: bytes, sheet: str | None = None) -> Iterator[dict[str, Any]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    except Exception as exc:
        raise StructuredBodyError(f"bad XLSX: {exc}") from exc
    try:
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if not header:
            raise StructuredBodyError("XLSX sheet has no header row")
        names = [str(h).strip() if h is not None else f"column{i}" for i, h in enumerate(header)]
        for row in rows:
            if row and any(v not in (None, "") for v in row):
                yield dict(zip(names, row, strict=False))
    finally:
        wb.close()


def iter_json(body: bytes, records_path: str | None = None) -> Iterator[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StructuredBodyError(f"bad JSON: {exc}") from exc
    records = resolve(data, records_path) if records_path else data
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise StructuredBodyError(f"no record list at {records_path or 'the top level'}")
    yield from (r for r in records if isinstance(r, dict))


def iter_jsonl(body: bytes) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(io.BytesIO(body), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StructuredBodyError(f"bad JSON on line {number}: {exc}") from exc
        if isinstance(record, dict):
            yield record


def safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=False)


def refuse_entity_declarations(root: Any, what: str) -> None:
    """A feed or OAI-PMH response never needs its own entities; one that declares any (billion
    laughs, external entities) is refused instead of stored with ``&name;`` left in its text."""
    dtd = root.getroottree().docinfo.internalDTD
    names = [entity.name for entity in dtd.iterentities()] if dtd is not None else []
    if names:
        raise StructuredBodyError(f"{what} declares XML entities ({', '.join(names[:5])}); refused")


def _refuse_external_entities(elem: Any) -> None:
    """An external entity (``<!ENTITY x SYSTEM "file:///...">``) is never resolved; a body that
    declares one is refused rather than read with the reference silently dropped."""
    dtd = elem.getroottree().docinfo.internalDTD
    for entity in dtd.iterentities() if dtd is not None else ():
        if entity.system_url:
            raise StructuredBodyError(f"XML declares an external entity {entity.name!r} ({entity.system_url}): refused")


def iter_xml_records(body: bytes, record_tag: str) -> Iterator[dict[str, Any]]:
    """One dict per ``record_tag`` element: child tag -> text (CDATA included), repeated tags -> list."""
    checked = False
    try:
        for _, elem in etree.iterparse(
            io.BytesIO(body), events=("end",), tag=record_tag, resolve_entities=False, no_network=True, huge_tree=False
        ):
            if not checked:
                _refuse_external_entities(elem)
                checked = True
            record: dict[str, Any] = {}
            for child in elem:
                if not isinstance(child.tag, str):
                    continue
                name = etree.QName(child).localname
                value = (child.text or "").strip()
                if name in record:
                    existing = record[name]
                    record[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
                else:
                    record[name] = value
            yield record
            elem.clear()
    except etree.XMLSyntaxError as exc:
        raise StructuredBodyError(f"bad XML: {exc}") from exc


def iter_export(body: bytes, options: ExportOptions) -> Iterator[dict[str, Any]]:
    body = maybe_gunzip(body, force=options.gzip)
    if options.format == "csv":
        return iter_csv(body, options.delimiter, options.encoding)
    if options.format == "xlsx":
        return iter_xlsx(body, options.sheet)
    if options.format == "json":
        return iter_json(body, options.records_path)
    if options.format == "jsonl":
        return iter_jsonl(body)
    if not options.record_tag:
        raise StructuredBodyError("XML exports need a record_tag")
    return iter_xml_records(body, options.record_tag)
