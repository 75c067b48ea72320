"""Feeding the CBD Clearing-House: accepted candidates -> CHM documents, exported or pushed through the
KM API (``harvester chm export|push``); ``sync`` is the scheduler's "CHM sync after crawls" job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from harvester.settings import Settings


def sync(engine: Engine | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Export every accepted candidate into ``<data_dir>/chm/export``; when CHM credentials are set,
    push to the configured (development by default) realm too. Returns a summary for the job log."""
    from harvester.chm.export import export
    from harvester.chm.push import push
    from harvester.settings import get_settings
    from storage.db import get_engine

    settings = settings or get_settings()
    engine = engine or get_engine()
    out: dict[str, Any] = {"export": export(engine, settings.data_dir / "chm" / "export", settings.chm_realm).as_dict()}
    if settings.chm_email and settings.chm_password is not None:
        out["push"] = push(engine, settings).as_dict()
    return out
