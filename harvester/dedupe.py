"""Canonical URLs and content hashes: the keys that make re-crawls idempotent."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACKING_PARAMS = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid|_ga|sessionid|phpsessid|jsessionid)$", re.I)
DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str, keep_fragment: bool = False) -> str:
    """Lower-case scheme and host, drop default port, fragment and tracking parameters, sort the query.

    Path case and query values are kept: partner IDs are often case-sensitive. ``keep_fragment`` is
    for records that have no page of their own and are addressed as ``<file URL>#<row key>``.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port
    netloc = host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING_PARAMS.match(k))
    return urlunsplit((scheme, netloc, path, urlencode(query), parts.fragment if keep_fragment else ""))


def candidate_key(record_key: str | None, url: str) -> str:
    """The key a candidate is stored under: the record's identity at the partner.

    ``key:<record key>`` when the partner names its records (OAI identifier, feed entry id or guid,
    API id, export row key: what ``record_identity`` or the spider put in ``record_key``), else
    ``url:<canonical URL>``. Two records that share a landing page stay two candidates; a record
    whose URL changes stays one. Migration 0012 derived the same keys for rows stored before it.
    """
    key = (record_key or "").strip()
    return f"key:{key}" if key else f"url:{canonical_url(url)}"


def normalise_for_hash(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip()


def text_hash(text: str | None) -> str | None:
    """Hash of the normalised text: equal for the same content however it was spaced or cased."""
    if not text or not text.strip():
        return None
    return hashlib.sha256(normalise_for_hash(text).encode("utf-8")).hexdigest()


def record_hash(fields: dict[str, Any]) -> str:
    """Stable hash of a record's harvested fields (key order and list order of sets ignored)."""
    blob = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
