"""The source registry: one validated YAML file per partner source in ``harvester/sources/``.

A bad entry fails loading with the file, the entry and the field named, so a typo breaks the
tests and ``harvester sources check``, never a nightly crawl.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from w3lib.url import safe_url_string

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


class SourceKind(StrEnum):
    SITEMAP = "sitemap"
    FEED = "feed"
    OAI = "oai"
    API = "api"
    LISTING = "listing"
    PAGE = "page"
    EXPORT = "export"
    FILE = "file"


class RegistryError(Exception):
    """A registry file that cannot be used; the message names file, line and field."""


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# crontab's five fields: name, lowest and highest number, names standing for numbers from the lowest
CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldRule(_Strict):
    """How one candidate field is read from a structured record (CSV row, JSON object, XML item).

    ``path`` is a dotted path; ``[]`` maps over a list (``Countries[].ISO3``). ``split`` cuts a
    multi-valued cell; ``html`` strips markup; ``type`` picks the normaliser. ``flags``: ``path`` lists
    yes/no columns (a partner's theme flags) and the value is the names of those set to yes.
    """

    path: str | list[str]
    join: bool = Field(default=False, description="join the values of every path instead of taking the first")
    split: str | None = None
    html: bool = False
    type: Literal["text", "list", "date", "money", "int", "countries", "url", "flags"] = "text"
    prefix_strip: str | None = Field(default=None, description="regex removed from the start of the value")


class RecordSpec(_Strict):
    """Structured-record mapping shared by the export, api, feed and oai kinds."""

    key: str | None = Field(default=None, description="path of the row key (e.g. the GEF project ID)")
    url: str | None = Field(
        default=None, description="detail URL: a path to a URL field, or a template with {Path} slots"
    )
    fields: dict[str, str | FieldRule] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not ID_PATTERN.match(name)]
        if bad:
            raise ValueError(
                f"field names must be snake_case: {bad} (core fields: {sorted(CORE_FIELDS)}; others are kept in extra)"
            )
        return value

    def rule(self, name: str) -> FieldRule | None:
        raw = self.fields.get(name)
        if raw is None:
            return None
        return FieldRule(path=raw) if isinstance(raw, str) else raw


CORE_FIELDS = frozenset(
    {
        "title",
        "summary",
        "text",
        "organisations",
        "countries",
        "regions",
        "start_date",
        "end_date",
        "published",
        "keywords",
    }
)


class ExportOptions(_Strict):
    format: Literal["csv", "xlsx", "json", "jsonl", "xml"]
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    sheet: str | None = None
    records_path: str | None = Field(default=None, description="JSON: path of the record array")
    record_tag: str | None = Field(default=None, description="XML: element name of one record")
    gzip: bool = False


class FileOptions(ExportOptions):
    """``file`` kind: a partner's dump imported by hand (``harvester import``), never fetched.

    ``fixture`` names the registry's own copy under the fixtures folder (imported when no file is
    given); ``captured`` is the capture date the file's publisher states; ``format`` and the reader
    options are those of ``export``."""

    format: Literal["csv", "xlsx", "json", "jsonl"]  # type: ignore[assignment]
    fixture: str | None = Field(default=None, description="path relative to the fixtures folder")
    captured: date | None = Field(default=None, description="capture date stated by the file's publisher")


FILE_OMITTED = "a partner file: imported by hand with `harvester import`, never crawled"


class Pagination(_Strict):
    type: Literal["none", "page", "offset", "cursor", "next_link", "link_header"] = "none"
    param: str = "page"
    size_param: str | None = None
    size: int | None = None
    start: int = 1
    next_path: str | None = Field(default=None, description="cursor/next_link: path of the next value")
    total_path: str | None = None
    max_pages: int = 1000


class ApiOptions(_Strict):
    records_path: str | None = Field(default=None, description="path of the record list; none = body is the list")
    pagination: Pagination = Pagination()
    headers: dict[str, str] = Field(default_factory=dict)


class OaiOptions(_Strict):
    metadata_prefix: str = "oai_dc"
    set: str | None = None
    from_date: str | None = Field(default=None, alias="from")
    until: str | None = None
    window_days: int = Field(default=30, ge=1)
    granularity: Literal["day", "second"] = "second"


class SitemapOptions(_Strict):
    follow: list[str] = Field(default_factory=list, description="regexes of record URLs to fetch")
    lastmod_after: str | None = None


class ListingOptions(_Strict):
    item_links: str | None = Field(
        default=None,
        description="CSS/XPath of the detail links; none: links on the source's hosts that look "
        "like record pages (a path below the listing's, or a slug) are followed",
    )
    next_page: str | None = None
    max_pages: int = 50
    revisit_days: float | None = Field(
        default=None,
        gt=0,
        description="a detail page fetched within this many days is not requested again (listings give no "
        "change date); none: every crawl re-requests every linked page with a conditional GET",
    )


class Politeness(_Strict):
    download_delay: float | None = Field(default=None, ge=0)
    concurrent_requests_per_host: int | None = Field(default=None, ge=1, le=8)
    autothrottle: bool | None = None
    crawl_delay_cap: float | None = Field(default=None, ge=0, le=300)
    obey_robots: bool = True

    def scrapy_settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ROBOTSTXT_OBEY": self.obey_robots}
        if self.download_delay is not None:
            out["DOWNLOAD_DELAY"] = self.download_delay
        if self.concurrent_requests_per_host is not None:
            out["CONCURRENT_REQUESTS_PER_DOMAIN"] = self.concurrent_requests_per_host
        if self.autothrottle is not None:
            out["AUTOTHROTTLE_ENABLED"] = self.autothrottle
        if self.crawl_delay_cap is not None:
            out["HARVESTER_CRAWL_DELAY_CAP"] = self.crawl_delay_cap
        return out


class ParserVersion(_Strict):
    """The selectors of an earlier page design (Fundus' dated parser versions): pages fetched on or before
    ``until`` are read with these, later ones with the entry's own ``selectors``."""

    until: date
    selectors: dict[str, str] = Field(default_factory=dict)


class ReplayFile(_Strict):
    """A capture in the fixtures folder that backs this source's offline replay."""

    fixture: str = Field(description="path relative to the fixtures folder")
    url: str | None = Field(default=None, description="defaults to the url in the folder's index.jsonl")
    fetched: date | None = Field(default=None, description="when it was captured (picks the parser version)")


class SourceSpec(_Strict):
    id: str
    name: str
    kind: SourceKind
    homepage: str | None = None
    start_urls: list[str] = Field(min_length=1)
    allowed_hosts: list[str] = Field(default_factory=list)
    enabled: bool = True
    verified: bool = False
    verification: str = Field(
        default="not verified: no recorded response of it has been checked",
        description="how it was verified, or why it is not",
    )
    schedule: str = "0 2 * * *"
    min_interval_hours: float | None = Field(
        default=None, gt=0, description="adaptive recrawl: shortest interval between crawls (default: the cron period)"
    )
    max_interval_hours: float | None = Field(
        default=None,
        gt=0,
        description="adaptive recrawl: longest interval, also the failure back-off cap "
        "(default: 7 days, or the cron period if longer)",
    )
    omit_from_schedule: str | None = Field(
        default=None, min_length=3, description="why this source is kept out of the schedule (manual crawls only)"
    )
    max_run_minutes: float | None = Field(
        default=None,
        gt=0,
        description="wall-clock limit of one crawl of this source (default: "
        "HARVESTER_CRAWL_MAX_MINUTES); past it the crawl process is terminated and the run marked failed",
    )
    politeness: Politeness = Politeness()
    record: RecordSpec = RecordSpec()
    selectors: dict[str, str] = Field(
        default_factory=dict,
        description="HTML detail field -> CSS/XPath; none: structured data on the page, then trafilatura",
    )
    versions: list[ParserVersion] = Field(default_factory=list, description="selectors of earlier page designs")
    export: ExportOptions | None = None
    file: FileOptions | None = None
    api: ApiOptions | None = None
    oai: OaiOptions | None = None
    sitemap: SitemapOptions | None = None
    listing: ListingOptions | None = None
    spider: str | None = Field(default=None, description="module:Class of a partner spider class")
    replay: list[ReplayFile] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _file_never_scheduled(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == SourceKind.FILE and not data.get("omit_from_schedule"):
            return {**data, "omit_from_schedule": FILE_OMITTED}
        return data

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and data.get("id"):
            return {**data, "name": data["id"]}
        return data

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("must be snake_case: lowercase letters, digits and _")
        return value

    @field_validator("start_urls")
    @classmethod
    def _http_only(cls, value: list[str]) -> list[str]:
        for url in value:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"{url!r}: only http and https URLs can be crawled")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"{value!r} is not a 5-field cron expression")
        for field, (name, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
            for part in field.lower().split(","):
                base, _, step = part.partition("/")
                bounds = [] if base == "*" else base.split("-", 1)
                numbers = [names.index(b) + low if b in names else int(b) if b.isdigit() else None for b in bounds]
                if (
                    not part
                    or (step and not step.isdigit())
                    or step == "0"
                    or None in numbers
                    or any(not low <= n <= high for n in numbers if n is not None)
                ):
                    raise ValueError(f"{value!r}: {name} {part!r} is not valid (allowed {low}-{high})")
        return value

    @model_validator(mode="after")
    def _kind_options(self) -> SourceSpec:
        needed = {SourceKind.EXPORT: self.export, SourceKind.OAI: self.oai, SourceKind.FILE: self.file}
        if self.kind in needed and needed[self.kind] is None:
            raise ValueError(f"kind {self.kind.value!r} needs a {self.kind.value!r} section")
        if (
            self.min_interval_hours is not None
            and self.max_interval_hours is not None
            and self.min_interval_hours > self.max_interval_hours
        ):
            raise ValueError("min_interval_hours must not exceed max_interval_hours")
        if self.kind == SourceKind.FILE and self.verified:
            raise ValueError("a file source is never verified: a partner's file is not a replay of its site")
        untils = [v.until for v in self.versions]
        if len(set(untils)) != len(untils):
            raise ValueError("versions: two parser versions end on the same date")
        if self.verified and not self.replay:
            raise ValueError("a verified source needs the 'replay' captures it was verified against")
        return self

    def selectors_for(self, fetched: date | None) -> dict[str, str]:
        """The selectors of the page design in use when a page was fetched (today's when unknown)."""
        if fetched is not None:
            for version in sorted(self.versions, key=lambda v: v.until):
                if fetched <= version.until:
                    return version.selectors
        return self.selectors

    @property
    def hosts(self) -> list[str]:
        """Allowed hosts; by default the start URLs' hosts as Scrapy's ``Request`` normalises them (w3lib
        >= 2.6 rewrites numeric hosts such as ``0x7f000001`` to ``127.0.0.1``, and the offsite filter
        compares against the normalised form)."""
        return self.allowed_hosts or sorted({urlsplit(safe_url_string(u)).hostname or "" for u in self.start_urls})


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line (1-based) of the deepest key of ``loc`` found in the YAML text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _format_error(path: Path, text: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(entry)"
        line = _line_of(text, err["loc"])
        parts.append(f"{where}: {err['msg']}" + (f" (line {line})" if line else ""))
    return f"{path.name}: " + "; ".join(parts).replace("\n", " ")


def _yaml_error(path: Path, exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{path.name}: cannot read: {where}{problem}"


def load_source_file(path: Path) -> SourceSpec:
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RegistryError(_yaml_error(path, exc)) from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path.name}: expected a mapping of source fields")
    data.setdefault("id", path.stem)
    if data.get("id") != path.stem:
        raise RegistryError(
            f"{path.name}: id {data.get('id')!r} must equal the file name {path.stem!r}"
            + (f" (line {line})" if (line := _line_of(text, ("id",))) else "")
        )
    try:
        return SourceSpec.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(_format_error(path, text, exc)) from exc


def load_registry(directory: Path | None = None) -> dict[str, SourceSpec]:
    """Every source, keyed by id, in id order."""
    if directory is None:
        from harvester.settings import get_settings

        directory = get_settings().registry_dir
    if not directory.is_dir():
        raise RegistryError(f"registry folder {directory} does not exist")
    specs = [load_source_file(p) for p in sorted(directory.glob("*.yaml"))]
    return {s.id: s for s in specs}


def load_registry_partly(directory: Path | None = None) -> tuple[dict[str, SourceSpec], dict[str, str]]:
    """The sources that load, and for each registry file that does not, its id (the file name) and the
    error: one broken file must not stop a running scheduler from crawling the others."""
    if directory is None:
        from harvester.settings import get_settings

        directory = get_settings().registry_dir
    if not directory.is_dir():
        raise RegistryError(f"registry folder {directory} does not exist")
    specs: dict[str, SourceSpec] = {}
    broken: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            spec = load_source_file(path)
        except RegistryError as exc:
            broken[path.stem] = str(exc)
        else:
            specs[spec.id] = spec
    return specs, broken


def get_source(source_id: str, registry: dict[str, SourceSpec] | None = None) -> SourceSpec:
    registry = registry if registry is not None else load_registry()
    try:
        return registry[source_id]
    except KeyError:
        raise RegistryError(f"unknown source {source_id!r}; known: {', '.join(registry) or '(none)'}") from None
