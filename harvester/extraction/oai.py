"""OAI-PMH 2.0 responses -> header + Dublin Core dicts, errors and the resumption token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from harvester.extraction.structured import StructuredBodyError, refuse_entity_declarations, safe_parser

OAI = "{http://www.openarchives.org/OAI/2.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"

DEFAULT_OAI_FIELDS = {
    "title": "title",
    "summary": "description",
    "keywords": "subject",
    "published": "date",
    "organisations": "publisher",
    "language": "language",
    "countries": "coverage",
    "record_type": "type",
}


@dataclass
class OaiPage:
    records: list[dict[str, Any]] = field(default_factory=list)
    token: str | None = None
    complete_list_size: int | None = None
    error_code: str | None = None
    error_message: str | None = None


def _record(elem: Any) -> dict[str, Any]:
    header = elem.find(f"{OAI}header")
    if header is None:
        raise StructuredBodyError("OAI record without header")
    out: dict[str, Any] = {
        "identifier": (header.findtext(f"{OAI}identifier") or "").strip(),
        "datestamp": (header.findtext(f"{OAI}datestamp") or "").strip(),
        "sets": [s.text.strip() for s in header.findall(f"{OAI}setSpec") if s.text],
        "deleted": header.get("status") == "deleted",
    }
    metadata = elem.find(f"{OAI}metadata")
    if metadata is not None:
        for child in metadata.iter():
            if not isinstance(child.tag, str) or not child.tag.startswith(DC):
                continue
            name = child.tag[len(DC) :]
            name = "dc_identifier" if name == "identifier" else name
            value = "".join(child.itertext()).strip()
            if value:
                out.setdefault(name, []).append(value)
                lang = child.get("{http://www.w3.org/XML/1998/namespace}lang")
                if lang and name == "title":
                    out.setdefault("title_lang", lang)
    out["links"] = [v for v in out.get("dc_identifier", []) if v.startswith(("http://", "https://"))]
    return out


def parse_oai(body: bytes) -> OaiPage:
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise StructuredBodyError(f"bad OAI-PMH XML: {exc}") from exc
    refuse_entity_declarations(root, "OAI-PMH response")
    if root.tag != f"{OAI}OAI-PMH":
        raise StructuredBodyError(f"not an OAI-PMH response: root {root.tag!r}")
    page = OaiPage()
    error = root.find(f"{OAI}error")
    if error is not None:
        page.error_code, page.error_message = error.get("code"), (error.text or "").strip()
        return page
    for record in root.iter(f"{OAI}record"):
        page.records.append(_record(record))
    token = root.find(f".//{OAI}resumptionToken")
    if token is not None:
        page.token = (token.text or "").strip() or None
        size = token.get("completeListSize")
        page.complete_list_size = int(size) if size and size.isdigit() else None
    return page


def parse_identify(body: bytes) -> str | None:
    """``earliestDatestamp`` of an Identify response (``YYYY-MM-DD[Thh:mm:ssZ]``), None when absent."""
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise StructuredBodyError(f"bad OAI-PMH XML: {exc}") from exc
    refuse_entity_declarations(root, "OAI-PMH response")
    value = (root.findtext(f".//{OAI}Identify/{OAI}earliestDatestamp") or "").strip()
    return value or None
