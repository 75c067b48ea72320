"""SSRF guard: crawls reach only public addresses over http(s), on every request and every redirect hop.

Scrapy itself follows redirects to loopback and private addresses; partner sites and registry
entries are not trusted to point only at the public internet.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest, NotConfigured

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


class BlockedAddress(IgnoreRequest):
    """The URL resolves to an address a crawler must not reach."""


def blocked_reason(address: str) -> str | None:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag in ("is_loopback", "is_private", "is_link_local", "is_multicast", "is_reserved", "is_unspecified"):
        if getattr(ip, flag):
            return flag.removeprefix("is_").replace("_", "-")
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "carrier-grade NAT"
    return None


@lru_cache(maxsize=4096)
def resolve(host: str) -> tuple[str, ...]:
    try:
        return tuple(sorted({info[4][0] for info in socket.getaddrinfo(host, None)}))
    except (socket.gaierror, UnicodeError):
        return ()


def check_url(url: str) -> None:
    """Raise ``BlockedAddress`` for non-http(s) schemes and hosts resolving to non-public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedAddress(f"blocked: ssrf: scheme {parts.scheme!r} not allowed ({url})")
    host = parts.hostname or ""
    for address in resolve(host):
        reason = blocked_reason(address)
        if reason:
            raise BlockedAddress(f"blocked: ssrf: {host} resolves to {address} ({reason})")


class SsrfGuardMiddleware:
    """Downloader middleware; off in replay mode (nothing is fetched) and when private hosts are allowed."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SsrfGuardMiddleware:
        s = crawler.settings
        if s.get("HARVESTER_REPLAY_DIR") or s.getbool("HARVESTER_ALLOW_PRIVATE_HOSTS", False):
            raise NotConfigured
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        try:
            check_url(request.url)
        except BlockedAddress:
            if self.crawler.stats is not None:
                self.crawler.stats.inc_value("harvester/ssrf/blocked")
            raise
