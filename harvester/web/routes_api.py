"""JSON API under /api/v1 (OpenAPI at /api/v1/openapi.json). Same session login and CSRF as the pages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from harvester.web.deps import MAX_ID, CurrentUser, RowId, SessionDep, check_csrf
from harvester.web.routes_pages import filter_params, queue_filter
from storage.claims import release
from storage.decisions import Actor, DecisionConflict, DecisionError, decide, history, undo_last
from storage.models import Candidate, CrawlRun
from storage.queue import COUNT_CAP, Cursor, CursorError, candidate_json, count_candidates, queue_page

router = APIRouter(prefix="/api/v1", tags=["review"])


Text = Annotated[str, Field(max_length=100_000)]


class EditsIn(BaseModel):
    """Field edits kept with an accept: text fields take a string (or null), the lists a list of strings or one
    separated string. Anything else (``countries: 5``, ``title: {}``) is a 422, never a 500."""

    model_config = ConfigDict(extra="forbid", strict=True)
    title: Text | None = None
    summary: Text | None = None
    organisations: list[Text] | Text | None = None
    countries: list[Annotated[str, Field(max_length=100)]] | Annotated[str, Field(max_length=5000)] | None = None
    published: Annotated[str, Field(max_length=40)] | None = None
    start_date: Annotated[str, Field(max_length=20)] | None = None
    end_date: Annotated[str, Field(max_length=20)] | None = None


class DecisionIn(BaseModel):
    """A curator decision. Unknown fields are refused (no mass assignment of status, reviewer...)."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["accept", "reject", "defer", "reopen", "note", "undo"]
    reason: str | None = Field(default=None, max_length=50)
    note: str | None = Field(default=None, max_length=5000)
    edits: EditsIn = Field(default_factory=EditsIn)
    version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="candidate version_id the curator saw; "
        "a decision or undo against a newer version is a 409 conflict",
    )


@router.get("/candidates")
def list_candidates(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    limit: int = Query(50, ge=1, le=500),
    after: str | None = Query(None, description="next_cursor of the previous page"),
    before: str | None = Query(None, description="prev_cursor of the following page"),
) -> dict[str, Any]:
    """The ranked queue (score, highest first, unscored last), one keyset page at a time, filtered by the
    queue page's query parameters (status [none: all], source, lang, min_score, max_score, criterion,
    criterion_min, support_type, country, published_from, published_to, reviewer, q). ``count`` is exact up
    to ``count_cap``; beyond it ``count_capped`` is true."""
    filters = queue_filter(filter_params(request.query_params, default_status=None))
    try:
        page = queue_page(
            session,
            filters,
            limit,
            after=Cursor.decode(after) if after else None,
            before=Cursor.decode(before) if before else None,
        )
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    count = count_candidates(session, filters)
    return {
        "count": min(count, COUNT_CAP),
        "count_capped": count > COUNT_CAP,
        "count_cap": COUNT_CAP,
        "limit": limit,
        "next_cursor": page.next.encode() if page.next else None,
        "prev_cursor": page.prev.encode() if page.prev else None,
        "items": [candidate_json(c) for c in page.rows],
    }


@router.get("/candidates/{candidate_id}")
def get_candidate(session: SessionDep, user: CurrentUser, candidate_id: RowId) -> dict[str, Any]:
    row = session.get(Candidate, candidate_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no such candidate")
    return {
        **candidate_json(row, with_text=True),
        "version": row.version_id,
        "decisions": [
            {
                "id": d.id,
                "actor": d.actor,
                "at": d.at,
                "from": d.from_status,
                "to": d.to_status,
                "reason": d.reason_code,
                "note": d.note,
                "field_diff": d.field_diff,
            }
            for d in history(session, row.id)
        ],
    }


@router.post("/candidates/{candidate_id}/decisions", status_code=201)
def post_decision(
    request: Request, session: SessionDep, user: CurrentUser, candidate_id: RowId, body: DecisionIn
) -> dict[str, Any]:
    check_csrf(request, user, None)
    actor = Actor(user.name, user.id)
    try:
        if body.action == "undo":
            decision = undo_last(session, candidate_id, actor, expected_version=body.version)
        else:
            decision = decide(
                session,
                candidate_id,
                body.action,
                actor,
                reason=body.reason,
                note=body.note,
                edits=body.edits.model_dump(exclude_unset=True),
                expected_version=body.version,
            )
    except DecisionConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except DecisionError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    release(session, candidate_id)
    row = session.get(Candidate, candidate_id)
    return {"decision": decision.id, "status": decision.to_status, "version": row.version_id if row else None}


@router.get("/runs")
def list_runs(session: SessionDep, user: CurrentUser, limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
    rows = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc()).limit(limit))
    return [
        {
            "id": r.id,
            "source": r.source_id,
            "status": r.status,
            "trigger": r.trigger,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "stats": r.stats,
        }
        for r in rows
    ]


@router.get("/me")
def me(user: CurrentUser) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "csrf_token": user.csrf_token}
