"""The extract stage's logic: fill a candidate's normalised fields from its raw record or HTML body."""

from __future__ import annotations

import re
from datetime import date

from harvester.extraction.feeds import DEFAULT_FEED_FIELDS
from harvester.extraction.html import ExtractionError, extract_html
from harvester.extraction.oai import DEFAULT_OAI_FIELDS
from harvester.extraction.records import apply_record, apply_rule
from harvester.items import CandidateItem
from harvester.registry import FieldRule, RecordSpec, SourceKind, SourceSpec

SUMMARY_CHARS = 600
HTML_RULES = {
    "countries": FieldRule(path="", type="countries"),
    "start_date": FieldRule(path="", type="date"),
    "end_date": FieldRule(path="", type="date"),
    "published": FieldRule(path="", type="date"),
}


def lead_summary(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The first paragraph(s) of ``text`` up to ``limit`` characters, cut at a sentence end."""
    lead = ""
    for para in (p.strip() for p in text.split("\n")):
        if not para:
            continue
        if lead and len(lead) + len(para) > limit:
            break
        lead = f"{lead} {para}".strip()
    if len(lead) > limit:
        cut = lead[:limit]
        end = max(cut.rfind(". "), cut.rfind("。"), cut.rfind("\u06d4"))
        lead = cut[: end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0] + " …"
    return lead


def record_spec_for(spec: SourceSpec) -> RecordSpec:
    """The entry's field mapping; feeds and OAI-PMH fall back to the standard one for their format."""
    if spec.record.fields:
        return spec.record
    defaults = {SourceKind.FEED: DEFAULT_FEED_FIELDS, SourceKind.OAI: DEFAULT_OAI_FIELDS}.get(spec.kind)
    return RecordSpec.model_validate({**spec.record.model_dump(), "fields": defaults}) if defaults else spec.record


def extract_item(item: CandidateItem, spec: SourceSpec) -> CandidateItem:
    """Raise ``ExtractionError`` when nothing usable comes out (an empty body is a failure)."""
    if item.raw is not None:
        apply_record(item, item.raw, record_spec_for(spec))
    elif item.body is not None:
        charset = None
        if item.content_type:
            match = re.search(r"charset=([\w.-]+)", item.content_type, re.I)
            charset = match.group(1) if match else None
        fetched = date.fromisoformat(item.fetched_on) if item.fetched_on else None
        found = extract_html(item.body, item.url, spec.selectors_for(fetched), charset)
        item.page_lang = item.page_lang or found.lang_attr
        for name, value in found.values.items():
            apply_rule(item, name, HTML_RULES.get(name, FieldRule(path="")), value)
        item.provenance.update(found.provenance)
        for name, flags in found.flags.items():
            for flag in flags:
                item.flag(name, flag)
    if not (item.title or item.text or item.summary):
        raise ExtractionError("record has no title, summary or text")
    if not item.summary and item.text:
        item.summary = lead_summary(item.text)
        item.provenance.setdefault("summary", "derived:lead-of-text")
    return item
