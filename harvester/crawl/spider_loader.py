"""Scrapy spider loader backed by the source registry: one spider per source id.

``scrapy list`` and ``scrapy crawl SOURCE`` work on registry ids; each spider class is the kind's
generic spider (or the partner class the entry names) with the entry attached.
"""

from __future__ import annotations

import importlib
from typing import Any

from scrapy import Spider
from scrapy.settings import BaseSettings

from harvester.registry import RegistryError, SourceKind, SourceSpec, get_source, load_registry

KIND_SPIDERS = {
    SourceKind.EXPORT: "spiders.export:ExportSpider",
    SourceKind.API: "spiders.api:ApiSpider",
    SourceKind.FEED: "spiders.feed:FeedSpider",
    SourceKind.OAI: "spiders.oai:OaiSpider",
    SourceKind.SITEMAP: "spiders.sitemap:SitemapSpider",
    SourceKind.LISTING: "spiders.listing:ListingSpider",
    SourceKind.PAGE: "spiders.listing:PageSpider",
}


def import_object(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def spider_class_for(spec: SourceSpec) -> type[Spider]:
    if spec.kind == SourceKind.FILE:
        raise RegistryError(f"source {spec.id!r} is a file source: it has no spider (harvester import {spec.id})")
    base = import_object(spec.spider or KIND_SPIDERS[spec.kind])
    return type(
        base.__name__,
        (base,),
        {
            "name": spec.id,
            "source": spec,
            "custom_settings": spec.politeness.scrapy_settings(),
            "allowed_domains": spec.hosts,
        },
    )


class RegistrySpiderLoader:
    def __init__(self, settings: BaseSettings) -> None:
        self.registry = load_registry()

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RegistrySpiderLoader:
        return cls(settings)

    def load(self, spider_name: str) -> type[Spider]:
        try:
            return spider_class_for(get_source(spider_name, self.registry))
        except Exception as exc:
            raise KeyError(str(exc)) from exc

    def list(self) -> list[str]:
        return list(self.registry)

    def find_by_request(self, request: Any) -> list[str]:
        return [s.id for s in self.registry.values() if any(h in request.url for h in s.hosts)]
