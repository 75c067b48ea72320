"""Local validation of a CHM document against the schema field tables, reported in the KM API's own
error vocabulary (``Error.Mandatory``, ``Error.UnspecifiedLocale`` ...), so a curator sees the same
codes before a push as the server would send back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harvester.chm.reference import UN_LANGUAGES, FieldSpec, country_ids, known_ids, schema_table

IDENTIFIER = re.compile(r"^[A-Za-z0-9\-_]{11,128}$")
REFERENCE = re.compile(r"^[A-Za-z0-9\-_]{11,128}(@\d+)?$")
YEAR_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+Z?)?$")
TERM_DOMAINS = {
    "cbdSubjects": "cbdSubjects",
    "thematicAreas": "cbdSubjects",
    "gbfTargets": "gbfTargets",
    "aichiTargets": "aichiTargets",
    "countryRegions": "countryRegions",
    "resourceTypes": "resourceTypes",
}
ANY_OF = {"resource": ("authors", "organizations")}


@dataclass(frozen=True)
class ChmError:
    code: str
    property: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "property": self.property, "detail": self.detail}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _words(text: str) -> int:
    return len(re.sub(r"<[^>]+>", " ", text).split())


class _Checker:
    def __init__(self, schema: str, languages: list[str]) -> None:
        self.schema, self.languages, self.errors = schema, languages, []  # type: list[ChmError]

    def err(self, code: str, prop: str, detail: str = "") -> None:
        self.errors.append(ChmError(code, prop, detail))

    def lstring(self, prop: str, value: Any, max_words: int | None) -> None:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.err("Error.InvalidType", prop, "expected an object of language -> text")
            return
        for key, text in value.items():
            if key not in self.languages:
                self.err("Error.UnspecifiedLocale", f"{prop}.{key}", f"{key!r} is not in header.languages")
            if max_words is not None and _words(text) > max_words:
                self.err("Error.InvalidValue", f"{prop}.{key}", f"{_words(text)} words; at most {max_words}")

    def term(self, prop: str, value: Any, domain: str | None) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("identifier"), str):
            self.err("Error.InvalidType", prop, 'expected {"identifier": "<term id>"}')
        elif domain and value["identifier"] not in known_ids(domain):
            self.err("Error.UnexpectedTerm", prop, f"{value['identifier']!r} is not a known {domain} term")

    def reference(self, prop: str, value: Any) -> None:
        if not isinstance(value, dict) or not REFERENCE.match(str(value.get("identifier", ""))):
            self.err("Error.InvalidValue", prop, "expected a reference to a CHM record id (ID or ID@revision)")

    def link(self, prop: str, value: Any) -> None:
        url = value.get("url") if isinstance(value, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "/api/")):
            self.err("Error.InvalidValue", prop, "expected a link with an http(s) url")

    def listed(self, prop: str, value: Any, each: Any) -> None:
        if not isinstance(value, list):
            self.err("Error.InvalidType", prop, "expected a list")
            return
        for i, item in enumerate(value):
            each(f"{prop}[{i}]", item)

    def field(self, spec: FieldSpec, value: Any) -> None:
        prop, kind = spec.name, spec.type
        domain = TERM_DOMAINS.get(prop)
        if prop == "country":
            domain = None
            if isinstance(value, dict) and value.get("identifier") not in country_ids():
                self.err("Error.UnexpectedTerm", prop, f"{value.get('identifier')!r} is not a known country")
        checks: dict[str, Any] = {
            "lstring": lambda: self.lstring(prop, value, spec.max_words),
            "lstring[]": lambda: self.listed(prop, value, lambda p, v: self.lstring(p, v, None)),
            "Term": lambda: self.term(prop, value, domain),
            "Term[]": lambda: self.listed(prop, value, lambda p, v: self.term(p, v, domain)),
            "Reference[]": lambda: self.listed(prop, value, self.reference),
            "Link[]": lambda: self.listed(prop, value, self.link),
            "string[]": lambda: self.listed(prop, value, self.string),
            "string": lambda: self.string(prop, value),
            "int": lambda: self.typed(prop, value, int, "an integer"),
            "bool": lambda: self.typed(prop, value, bool, "true or false"),
            "DateTime": lambda: self.pattern(prop, value, DATE, "a date YYYY-MM-DD"),
            "yearMonth": lambda: self.pattern(prop, value, YEAR_MONTH, "a month YYYY-MM"),
        }
        check = checks.get(kind)
        if check is not None:
            check()
        elif not isinstance(value, dict):
            self.err("Error.InvalidType", prop, f"expected a {kind} object")

    def string(self, prop: str, value: Any) -> None:
        if not isinstance(value, str):
            self.err("Error.InvalidType", prop, "expected a string")

    def typed(self, prop: str, value: Any, kind: type, what: str) -> None:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.err("Error.InvalidType", prop, f"expected {what}")

    def pattern(self, prop: str, value: Any, pattern: re.Pattern[str], what: str) -> None:
        if not isinstance(value, str) or not pattern.match(value):
            self.err("Error.InvalidValue", prop, f"expected {what}, got {value!r}")


def _header(doc: dict[str, Any], schema: str, checker: _Checker) -> None:
    header = doc.get("header")
    if not isinstance(header, dict):
        checker.err("Error.Mandatory", "header")
        return
    if not IDENTIFIER.match(str(header.get("identifier", ""))):
        checker.err("Error.InvalidValue", "header.identifier", "must match ^[A-Za-z0-9-_]{11,128}$")
    if header.get("schema") != schema:
        checker.err("Error.InvalidValue", "header.schema", f"must be {schema!r}")
    languages = header.get("languages")
    if not isinstance(languages, list) or not languages:
        checker.err("Error.Mandatory", "header.languages")
        return
    for lang in languages:
        if lang not in UN_LANGUAGES:
            checker.err(
                "Error.InvalidValue", "header.languages", f"{lang!r} is not a UN language ({', '.join(UN_LANGUAGES)})"
            )


def validate(doc: dict[str, Any]) -> list[ChmError]:
    """Every problem of ``doc`` against its schema's field table; an empty list means valid."""
    schema = str((doc.get("header") or {}).get("schema") or "resource")
    table = schema_table(schema)
    header = doc.get("header") if isinstance(doc.get("header"), dict) else {}
    languages = [lang for lang in header.get("languages") or [] if isinstance(lang, str)]
    checker = _Checker(schema, languages)
    _header(doc, schema, checker)
    any_of = ANY_OF.get(schema, ())
    for name, spec in table.fields.items():
        if name == "header":
            continue
        value = doc.get(name)
        if _empty(value):
            if spec.mandatory and name not in any_of:
                checker.err("Error.Mandatory", name)
            continue
        checker.field(spec, value)
    if any_of and all(_empty(doc.get(name)) for name in any_of):
        checker.err("Error.MandatoryAnyOf", ",".join(any_of))
    for name in doc:
        if name not in table.fields and name != "notes":
            checker.err("Error.InvalidProperty", name, f"not a field of {schema}")
    return checker.errors
