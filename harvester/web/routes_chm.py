"""CHM feed in the review app: submission status per candidate, the CHM page, and admins' re-push or
withdraw requests (carried out by the next ``harvester chm push``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import object_session

from harvester.settings import get_settings
from harvester.web.deps import AdminUser, CurrentUser, RowId, SessionDep, check_csrf
from harvester.web.notices import notice
from harvester.web.templating import templates
from storage.models import Candidate, ChmSubmission
from storage.submissions import SubmissionError, all_submissions, request_action, submissions_of

router = APIRouter()


def chm_submissions(candidate: Candidate) -> list[ChmSubmission]:
    """Template helper: the candidate's CHM submissions, read through the request's own session."""
    session = object_session(candidate)
    return submissions_of(session, candidate.id) if session is not None else []


templates.env.globals["chm_submissions"] = chm_submissions


@router.get("/chm", response_class=HTMLResponse, name="chm")
def chm_page(request: Request, session: SessionDep, user: CurrentUser) -> HTMLResponse:
    rows = all_submissions(session)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    context: dict[str, Any] = {"user": user, "rows": rows, "counts": sorted(counts.items())}
    return templates.TemplateResponse(request, "chm_submissions.html", context)


@router.post("/candidates/{candidate_id}/chm/{action}", name="chm_action")
def chm_action(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    candidate_id: RowId,
    action: str,
    csrf_token: Annotated[str, Form()] = "",
    realm: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, user, csrf_token)
    try:
        request_action(session, candidate_id, realm or get_settings().chm_realm, action)
    except SubmissionError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    message = f"CHM {action} requested; the next CHM push carries it out"
    return RedirectResponse(f"/candidates/{candidate_id}?{urlencode(notice(user, message))}", status_code=303)
