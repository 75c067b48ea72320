"""Structured records (CSV rows, JSON objects, XML items) -> candidate fields, driven by the registry."""

from __future__ import annotations

import re
from typing import Any

from harvester.extraction.normalise import (
    clean_list,
    clean_text,
    country_codes,
    parse_amount,
    parse_date,
    split_values,
)
from harvester.items import CandidateItem
from harvester.registry import FieldRule, RecordSpec

LIST_FIELDS = {"organisations", "countries", "regions", "keywords"}
CORE_FIELDS = {"title", "summary", "text", "start_date", "end_date", "published"} | LIST_FIELDS
_SLOT = re.compile(r"\{([^{}]+)\}")


def resolve(record: Any, path: str) -> Any:
    """Value at a dotted path; ``a[].b`` maps over a list. Keys containing dots or spaces
    (``dc.title``, ``Focal Areas``) are matched whole before the path is split."""
    if record is None or not path:
        return record
    if isinstance(record, dict) and path in record:
        return record[path]
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        items = resolve(record, head[:-2])
        if not isinstance(items, list):
            return None
        values = [resolve(item, rest) if rest else item for item in items]
        flat: list[Any] = []
        for value in values:
            flat.extend(value if isinstance(value, list) else [value])
        return [v for v in flat if v not in (None, "")]
    if isinstance(record, dict):
        return resolve(record.get(head), rest) if rest else record.get(head)
    return None


def first_value(record: Any, paths: str | list[str]) -> Any:
    for path in [paths] if isinstance(paths, str) else paths:
        value = resolve(record, path)
        if value not in (None, "", []):
            return value
    return None


def render_url(record: Any, template: str) -> str | None:
    """A URL template with ``{Path}`` slots, or a plain path naming the URL field."""
    if "{" not in template:
        value = first_value(record, template)
        return str(value).strip() if value else None
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = first_value(record, match.group(1))
        if value in (None, ""):
            missing = True
            return ""
        return str(value).strip()

    url = _SLOT.sub(fill, template)
    return None if missing else url


def _as_strings(value: Any, rule: FieldRule) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out: list[str] = []
    for v in values:
        if v is None:
            continue
        text = str(v)
        out.extend(split_values(text, rule.split) if rule.split else [text])
    return out


def apply_rule(item: CandidateItem, name: str, rule: FieldRule, value: Any) -> None:
    """Normalise ``value`` by the rule's type and put it on the item (core field or ``extra``)."""
    strings = _as_strings(value, rule)
    if rule.prefix_strip:
        strings = [re.sub(rule.prefix_strip, "", s, count=1) for s in strings]
    if rule.type == "countries" or name == "countries":
        raw = [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]
        codes, leftovers = country_codes(raw, split=rule.split) if rule.split else country_codes(strings)
        item.countries = sorted(set(item.countries) | set(codes))
        if leftovers:
            item.regions = clean_list([*item.regions, *leftovers])
        return
    if rule.type == "date" or name in ("start_date", "end_date", "published"):
        parsed = parse_date(strings[0]) if strings else None
        if parsed is None:
            return
        if name in CORE_FIELDS:
            setattr(item, name, parsed.iso)
        else:
            item.extra[name] = parsed.iso
        item.extra[f"{name}_precision"] = parsed.precision
        return
    if rule.type in ("money", "int"):
        amount = parse_amount(strings[0]) if strings else None
        if amount is not None:
            item.extra[name] = int(amount) if rule.type == "int" else amount
        return
    if name in LIST_FIELDS or rule.type == "list":
        cleaned = clean_list(strings)
        if name in LIST_FIELDS:
            setattr(item, name, clean_list([*getattr(item, name), *cleaned]))
        elif cleaned:
            item.extra[name] = cleaned
        return
    separator = "\n\n" if name in ("title", "summary", "text") else "; "
    text = clean_text(separator.join(strings)) if strings else None
    if text is None:
        return
    if name in CORE_FIELDS:
        setattr(item, name, text)
    else:
        item.extra[name] = text


def apply_record(item: CandidateItem, record: Any, spec: RecordSpec) -> CandidateItem:
    """Fill ``item`` from one structured record according to the registry mapping."""
    for name in spec.fields:
        rule = spec.rule(name)
        assert rule is not None
        if rule.type == "flags":
            value = flag_names(record, [rule.path] if isinstance(rule.path, str) else rule.path)
            if value:
                apply_rule(item, name, FieldRule(path=rule.path, type="list"), value)
                item.provenance[name] = f"record:{'|'.join(value)}"
            continue
        if rule.join and isinstance(rule.path, list):
            value = []
            for part in (resolve(record, p) for p in rule.path):
                value.extend(v for v in (part if isinstance(part, list) else [part]) if v not in (None, ""))
        else:
            value = first_value(record, rule.path)
        if value in (None, "", []):
            continue
        apply_rule(item, name, rule, value)
        item.provenance[name] = f"record:{rule.path if isinstance(rule.path, str) else '|'.join(rule.path)}"
    return item


YES = frozenset({"yes", "y", "true", "1", "x"})


def flag_names(record: Any, paths: list[str]) -> list[str]:
    """The paths (column names) whose value says yes."""
    return [p for p in paths if str(resolve(record, p) or "").strip().lower() in YES]


def record_identity(record: Any, spec: RecordSpec, default_url: str) -> tuple[str | None, str]:
    """The record's key and its detail URL (template, URL field, or the response URL + key)."""
    key_value = first_value(record, spec.key) if spec.key else None
    key = str(key_value).strip() if key_value not in (None, "") else None
    url = render_url(record, spec.url) if spec.url else None
    if not url:
        url = f"{default_url}#{key}" if key else default_url
    return key, url
