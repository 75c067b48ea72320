"""Per-URL HTTP state (ETag, Last-Modified, content hash) for conditional re-crawls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import FetchedPage
from storage.runs import now
from storage.upsert import dialect_of, statement_cache


@dataclass(frozen=True)
class PageState:
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    record_count: int


def load_page_states(session: Session, source_id: str) -> dict[str, PageState]:
    rows = session.execute(
        select(
            FetchedPage.url,
            FetchedPage.etag,
            FetchedPage.last_modified,
            FetchedPage.content_hash,
            FetchedPage.record_count,
        ).where(FetchedPage.source_id == source_id, FetchedPage.http_status == 200)
    )
    return {r.url: PageState(r.etag, r.last_modified, r.content_hash, r.record_count) for r in rows}


def record_page(
    session: Session,
    *,
    source_id: str,
    url: str,
    canonical_url: str,
    http_status: int | None,
    run_id: int | None,
    etag: str | None = None,
    last_modified: str | None = None,
    content_hash: str | None = None,
    record_count: int | None = None,
    error: str | None = None,
    snapshot_ref: str | None = None,
    sitemap_lastmod: str | None = None,
) -> None:
    """Upsert the page row. A 304 keeps the stored validators and hash; an error keeps them too."""
    values = {
        "source_id": source_id,
        "url": url,
        "canonical_url": canonical_url,
        "http_status": http_status,
        "last_run_id": run_id,
        "last_seen": now(),
        "error": error,
    }
    if http_status == 200:
        values |= {"etag": etag, "last_modified": last_modified, "content_hash": content_hash}
        if snapshot_ref:
            values["snapshot_ref"] = snapshot_ref
        if sitemap_lastmod:
            values["sitemap_lastmod"] = sitemap_lastmod
    if http_status == 304:
        values["http_status"] = 200
    if record_count is not None:
        values["record_count"] = record_count
    session.execute(_upsert_page(dialect_of(session), tuple(values)), {**values, "first_seen": now()})


@statement_cache
def _upsert_page(insert: Any, columns: tuple[str, ...]) -> Any:
    """Insert a page row, or update ``columns`` of the existing one."""
    stmt = insert(FetchedPage.__table__)
    return stmt.on_conflict_do_update(
        index_elements=["source_id", "url"],
        set_={k: stmt.excluded[k] for k in columns if k not in ("source_id", "url")},
    )


def load_recently_fetched(session: Session, source_id: str, days: float) -> frozenset[str]:
    """URLs of the source fetched successfully (200 or 304) in the last ``days`` days."""
    since = now() - timedelta(days=days)
    return frozenset(
        session.scalars(
            select(FetchedPage.url).where(
                FetchedPage.source_id == source_id, FetchedPage.http_status == 200, FetchedPage.last_seen >= since
            )
        )
    )


def load_sitemap_lastmods(session: Session, source_id: str) -> dict[str, str]:
    rows = session.execute(
        select(FetchedPage.url, FetchedPage.sitemap_lastmod).where(
            FetchedPage.source_id == source_id, FetchedPage.sitemap_lastmod.is_not(None), FetchedPage.http_status == 200
        )
    )
    return {r[0]: r[1] for r in rows}
