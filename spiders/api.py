"""``api`` kind: JSON records with page, offset, cursor, next-link or Link-header pagination,
or a whole catalogue in one answer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scrapy.http import Request, Response

from harvester.extraction.records import record_identity, resolve
from harvester.extraction.structured import iter_json
from harvester.items import CandidateItem
from harvester.registry import ApiOptions
from spiders.base import HarvesterSpider

LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?', re.I)


def with_param(url: str, name: str, value: Any) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, str(value)))
    return urlunsplit(parts._replace(query=urlencode(query)))


class ApiSpider(HarvesterSpider):
    @property
    def options(self) -> ApiOptions:
        return self.source.api or ApiOptions()

    @property
    def lists_every_record(self) -> bool:
        """A whole catalogue in one answer (no pagination) lists every record."""
        return self.options.pagination.type == "none"

    def record_request(
        self,
        url: str,
        callback: object = None,
        conditional: bool = True,
        meta: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Request:
        paged = self.options.pagination.type != "none"
        headers = {**self.options.headers, **kwargs.pop("headers", {})}
        return super().record_request(
            url,
            callback,
            conditional=conditional and not paged,
            meta=meta,
            skip_unchanged=True,
            headers=headers,
            **kwargs,
        )

    def start_requests_for_source(self) -> Iterable[Request]:
        page = self.options.pagination
        for url in self.source.start_urls:
            if page.type in ("page", "offset"):
                url = with_param(url, page.param, page.start)
                if page.size_param and page.size:
                    url = with_param(url, page.size_param, page.size)
            yield self.record_request(url, meta={"page_index": 0})

    def records(self, response: Response) -> Iterable[CandidateItem]:
        for record in iter_json(response.body, self.options.records_path):
            key, url = record_identity(record, self.source.record, response.url)
            yield self.item(response, url, record_key=key, raw=record)

    def follow(self, response: Response) -> Iterable[Request]:
        page = self.options.pagination
        index = response.meta.get("page_index", 0) + 1
        if page.type == "none" or index >= page.max_pages:
            return
        try:
            data = json.loads(response.body)
        except ValueError:
            return
        records = resolve(data, self.options.records_path) if self.options.records_path else data
        count = len(records) if isinstance(records, list) else 0
        next_url = self.next_url(response, data, count, index)
        if next_url and next_url != response.url:
            yield self.record_request(response.urljoin(next_url), meta={"page_index": index})

    def next_url(self, response: Response, data: Any, count: int, index: int) -> str | None:
        page = self.options.pagination
        if page.type == "page":
            return with_param(response.url, page.param, page.start + index) if count else None
        if page.type == "offset":
            # Advance by the records actually received: servers cap the page size (GBIF: 1000).
            current = dict(parse_qsl(urlsplit(response.url).query)).get(page.param)
            offset = (int(current) if current and current.isdigit() else page.start) + count
            total = resolve(data, page.total_path) if page.total_path else None
            if not count or (isinstance(total, int) and offset - page.start >= total):
                return None
            if total is None and page.size and count < page.size:
                return None  # no total to go by: a short page is the last one (NSF awards)
            return with_param(response.url, page.param, offset)
        if page.type == "cursor":
            cursor = resolve(data, page.next_path or "")
            return with_param(response.url, page.param, cursor) if cursor and count else None
        if page.type == "next_link":
            link = resolve(data, page.next_path or "next")
            return str(link) if link else None
        header = response.headers.get(b"Link")
        match = LINK_NEXT.search(header.decode("latin-1")) if header else None
        return match.group(1) if match else None
