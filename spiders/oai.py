"""``oai`` kind: OAI-PMH 2.0 ListRecords harvested in from/until windows, one after another.

A window counts as done only after its last resumption page was parsed; the store stage commits it,
so a crash or an expired token resumes at the first unfinished window. Deleted records mark their
candidates gone-at-source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from scrapy.http import Request, Response

from harvester import signals
from harvester.extraction.oai import parse_oai
from harvester.extraction.structured import StructuredBodyError
from harvester.items import CandidateItem
from harvester.registry import OaiOptions
from spiders.base import HarvesterSpider


def _parse_day(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=UTC)


def windows(options: OaiOptions, today: datetime | None = None) -> list[tuple[str, str]]:
    """The from/until windows from the configured start to ``until`` (default: now)."""
    start = _parse_day(options.from_date or "2000-01-01")
    end = _parse_day(options.until) if options.until else (today or datetime.now(UTC))
    fmt = "%Y-%m-%d" if options.granularity == "day" else "%Y-%m-%dT%H:%M:%SZ"
    out, cursor, step = [], start, timedelta(days=options.window_days)
    while cursor < end:
        nxt = min(cursor + step, end)
        out.append((cursor.strftime(fmt), nxt.strftime(fmt)))
        cursor = nxt
    return out


def own_link(identifier: str, links: list[str]) -> str | None:
    """The record's own landing page among its ``dc:identifier`` links: the one ending in the local
    part of the OAI identifier, else the first. (A new Dryad version lists its predecessor's handle
    first; taking that one would merge two records into one candidate.)"""
    local = identifier.rsplit(":", 1)[-1]
    if local:
        own = re.compile(r"[/=:]" + re.escape(local) + r"/?$")
        for link in links:
            if own.search(link):
                return link
    return links[0] if links else None


class OaiSpider(HarvesterSpider):
    @property
    def options(self) -> OaiOptions:
        return self.source.oai or OaiOptions()

    @property
    def base_url(self) -> str:
        return self.source.start_urls[0].split("?", 1)[0]

    def start_requests_for_source(self) -> Iterable[Request]:
        from storage.db import session_factory
        from storage.windows import completed_windows

        with session_factory()() as session:
            done = completed_windows(session, self.name)
        self.pending = [w for w in windows(self.options) if w not in done]
        if self.crawler.stats is not None:
            self.crawler.stats.set_value("harvester/oai/windows_pending", len(self.pending))
        if self.pending:
            yield self.window_request(0)

    def window_request(self, index: int) -> Request:
        window_from, window_until = self.pending[index]
        params = {"verb": "ListRecords", "metadataPrefix": self.options.metadata_prefix,
                  "from": window_from, "until": window_until}
        if self.options.set:
            params["set"] = self.options.set
        return self.record_request(f"{self.base_url}?{urlencode(params)}", conditional=False,
                                   meta={"window": index, "window_records": 0})

    def records(self, response: Response) -> Iterable[CandidateItem]:
        page = parse_oai(response.body)
        response.meta["oai_page"] = page
        if page.error_code and page.error_code != "noRecordsMatch":
            raise StructuredBodyError(f"OAI-PMH error {page.error_code}: {page.error_message}")
        for record in page.records:
            if not record["deleted"] and not record.get("title"):
                if getattr(self, "crawler", None) is not None and self.crawler.stats is not None:
                    self.crawler.stats.inc_value("harvester/oai/no_metadata")
                continue
            key = record["identifier"]
            url = own_link(key, record["links"]) or self.record_url(key)
            yield self.item(response, url, record_key=key, raw=record, lastmod=record["datestamp"],
                            gone=record["deleted"])
        response.meta["window_records"] = response.meta.get("window_records", 0) + len(page.records)

    def record_url(self, identifier: str) -> str:
        return f"{self.base_url}?" + urlencode(
            {"verb": "GetRecord", "metadataPrefix": self.options.metadata_prefix, "identifier": identifier})

    def page_finished(self, response: Response) -> Iterable[Request]:
        """After records: the next resumption page, or close the window and open the next one."""
        page = response.meta.get("oai_page")
        index = response.meta.get("window", 0)
        if page is None or (page.error_code and page.error_code != "noRecordsMatch"):
            return
        if page.token:
            url = f"{self.base_url}?{urlencode({'verb': 'ListRecords', 'resumptionToken': page.token})}"
            yield self.record_request(url, conditional=False,
                                      meta={"window": index, "window_records": response.meta["window_records"]})
            return
        window_from, window_until = self.pending[index]
        self.crawler.signals.send_catch_log(signals.window_done, spider=self, window_from=window_from,
                                            window_until=window_until, records=response.meta["window_records"])
        if index + 1 < len(self.pending):
            yield self.window_request(index + 1)
