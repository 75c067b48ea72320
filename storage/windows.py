"""Finished OAI-PMH harvest windows, committed one by one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import HarvestWindow
from storage.upsert import insert_for


def completed_windows(session: Session, source_id: str) -> set[tuple[str, str]]:
    rows = session.execute(
        select(HarvestWindow.window_from, HarvestWindow.window_until).where(HarvestWindow.source_id == source_id)
    )
    return {(r[0], r[1]) for r in rows}


def complete_window(
    session: Session, source_id: str, window_from: str, window_until: str, records: int, run_id: int | None
) -> None:
    stmt = insert_for(session, HarvestWindow).values(
        source_id=source_id, window_from=window_from, window_until=window_until, records=records, run_id=run_id
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["source_id", "window_from", "window_until"]))
