"""WOCAT QCAT API v2: list pages lead to questionnaire details, whose nested question tree is
flattened to ``{question key: value(s)}`` so the registry can map it like any JSON record."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from scrapy.http import Request, Response

from harvester.extraction.records import record_identity
from harvester.items import CandidateItem
from spiders.api import ApiSpider

DETAIL = re.compile(r"/api/v2/questionnaires/(?P<code>[a-z]+_\d+)/?$")


def flatten_questionnaire(node: Any, out: dict[str, Any] | None = None, group: str = "") -> dict[str, Any]:
    """Leaf questions by key; a key seen again under another group is kept as ``group/key`` too."""
    out = {} if out is None else out
    if not isinstance(node, dict):
        return out
    for key, child in (node.get("children") or {}).items() if isinstance(node.get("children"), dict) else []:
        if isinstance(child, dict) and isinstance(child.get("value"), list):
            values = [v["value"] for v in child["value"] if isinstance(v, dict) and v.get("value") not in (None, "")]
            if not values:
                continue
            value = values[0] if len(values) == 1 else values
            out.setdefault(key, value)
            out[f"{group}/{key}"] = value
        else:
            flatten_questionnaire(child, out, key)
    return out


def questionnaire_record(data: dict[str, Any], code: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for section in data.values():
        flatten_questionnaire(section, record)
    if code:
        record["code"] = code
    return record


class WocatQcatSpider(ApiSpider):
    def records(self, response: Response) -> Iterable[CandidateItem]:
        data = json.loads(response.body)
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            return
        match = DETAIL.search(response.url)
        record = questionnaire_record(data, match.group("code") if match else None)
        key, url = record_identity(record, self.source.record, response.url)
        yield self.item(response, url, record_key=key, raw=record)

    def follow(self, response: Response) -> Iterable[Request]:
        data = json.loads(response.body)
        if not (isinstance(data, dict) and isinstance(data.get("results"), list)):
            return
        for result in data["results"]:
            code = result.get("code") if isinstance(result, dict) else None
            if code:
                yield self.record_request(response.urljoin(f"/en/api/v2/questionnaires/{code}/"))
        yield from super().follow(response)
