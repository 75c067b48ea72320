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
from twisted.python.failure import Failure

from harvester.crawl import signals
from harvester.extraction.oai import parse_identify, parse_oai
from harvester.extraction.structured import StructuredBodyError
from harvester.items import CandidateItem
from harvester.registry import OaiOptions
from spiders.base import HarvesterSpider


def _parse_day(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=UTC)


def windows(options: OaiOptions, today: datetime | None = None, start: str | None = None) -> list[tuple[str, str]]:
    """The from/until windows from ``start`` (default: the configured ``from``, else the repository's
    ``earliestDatestamp`` the spider read from Identify, else 2000-01-01) to ``until`` (default: now)."""
    begin = _parse_day(start or options.from_date or "2000-01-01")
    end = _parse_day(options.until) if options.until else (today or datetime.now(UTC))
    fmt = "%Y-%m-%d" if options.granularity == "day" else "%Y-%m-%dT%H:%M:%SZ"
    out, cursor, step = [], begin, timedelta(days=options.window_days)
    while cursor < end:
        nxt = min(cursor + step, end)
        out.append((cursor.strftime(fmt), nxt.strftime(fmt)))
        cursor = nxt
    return out


def plan_windows(
    options: OaiOptions, done: set[tuple[str, str]], earliest: str | None = None, today: datetime | None = None
) -> list[tuple[str, str]]:
    """The windows still to harvest: unfinished ones of the configured range up to the last finished
    window, then new ones from where the last finished window ended (incremental: a window that ended
    "now" is not re-read, only what came after it)."""
    if not done:
        return windows(options, today, start=earliest)
    resume = max(until for _, until in done)
    origin = options.from_date or earliest or min(start for start, _ in done)  # the grid the done windows were cut on
    gaps = [w for w in windows(options, today, start=origin) if w not in done and w[1] <= resume]
    return gaps + windows(options, today, start=resume)


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
            self.done = completed_windows(session, self.name)
        if self.options.from_date or self.done:
            yield from self.start_windows(None)
        else:  # from the repository's first record, whenever that was
            yield self.nav_request(
                f"{self.base_url}?verb=Identify", callback=self.parse_identify, errback=self.identify_failed
            )

    def parse_identify(self, response: Response) -> Iterable[Request]:
        """Identify's ``earliestDatestamp`` starts the first harvest; without one, the default start."""
        earliest = None
        try:
            earliest = parse_identify(response.body)
        except StructuredBodyError as exc:
            self.logger.warning("Identify unreadable at %s: %s", response.url, exc)
        if earliest is None:
            self._failed(
                response.url,
                response.status,
                "Identify gave no earliestDatestamp: harvesting from "
                "2000-01-01, records stamped earlier are not requested",
                gone=False,
            )
        elif self.crawler.stats is not None:
            self.crawler.stats.set_value("harvester/oai/earliest_datestamp", earliest)
        yield from self.start_windows(earliest)

    def identify_failed(self, failure: Failure) -> Iterable[Request]:
        """Identify failed (recorded as an error): harvest from the default start rather than not at all."""
        self.on_error(failure)
        yield from self.start_windows(None)

    def start_windows(self, earliest: str | None) -> Iterable[Request]:
        self.pending = plan_windows(self.options, self.done, earliest)
        if self.crawler.stats is not None:
            self.crawler.stats.set_value("harvester/oai/windows_pending", len(self.pending))
        if self.pending:
            yield self.window_request(0)

    def window_request(self, index: int) -> Request:
        window_from, window_until = self.pending[index]
        params = {
            "verb": "ListRecords",
            "metadataPrefix": self.options.metadata_prefix,
            "from": window_from,
            "until": window_until,
        }
        if self.options.set:
            params["set"] = self.options.set
        return self.record_request(
            f"{self.base_url}?{urlencode(params)}", conditional=False, meta={"window": index, "window_records": 0}
        )

    def records(self, response: Response) -> Iterable[CandidateItem]:
        page = parse_oai(response.body)
        response.meta["oai_page"] = page
        if page.error_code and page.error_code != "noRecordsMatch":
            raise StructuredBodyError(f"OAI-PMH error {page.error_code}: {page.error_message}")
        for record in page.records:
            if not record["deleted"] and not record.get("title"):
                self.skipped("OAI record without dc:title")
                continue
            key = record["identifier"]
            url = own_link(key, record["links"]) or self.record_url(key)
            yield self.item(
                response, url, record_key=key, raw=record, lastmod=record["datestamp"], gone=record["deleted"]
            )
        response.meta["window_records"] = response.meta.get("window_records", 0) + len(page.records)

    def record_url(self, identifier: str) -> str:
        return f"{self.base_url}?" + urlencode(
            {"verb": "GetRecord", "metadataPrefix": self.options.metadata_prefix, "identifier": identifier}
        )

    def page_finished(self, response: Response) -> Iterable[Request]:
        """After records: the next resumption page, or close the window and open the next one."""
        page = response.meta.get("oai_page")
        index = response.meta.get("window", 0)
        if page is None or (page.error_code and page.error_code != "noRecordsMatch"):
            return
        if page.token:
            url = f"{self.base_url}?{urlencode({'verb': 'ListRecords', 'resumptionToken': page.token})}"
            yield self.record_request(
                url, conditional=False, meta={"window": index, "window_records": response.meta["window_records"]}
            )
            return
        window_from, window_until = self.pending[index]
        self.crawler.signals.send_catch_log(
            signals.window_done,
            spider=self,
            window_from=window_from,
            window_until=window_until,
            records=response.meta["window_records"],
        )
        if index + 1 < len(self.pending):
            yield self.window_request(index + 1)
