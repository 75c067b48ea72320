"""Blind second review: curators judge sampled decisions of others without seeing them; admins ask for a
sample and read agreement (Cohen's kappa) per curator and the disagreements. See ``storage.second_review``."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from harvester.web.deps import AdminUser, CurrentUser, RowId, SessionDep, check_csrf
from harvester.web.notices import notice, verified
from harvester.web.routes_pages import render
from storage.models import Candidate
from storage.second_review import (
    SecondReviewError,
    agreement,
    disagreements,
    next_for,
    record,
    request_sample,
)

router = APIRouter(include_in_schema=False)


@router.get("/second-review", response_class=HTMLResponse, name="second_review")
def second_review_page(
    request: Request, session: SessionDep, user: CurrentUser, message: str | None = None, sig: str | None = None
) -> HTMLResponse:
    """The next sampled decision of someone else, shown blind: the record, never the first decision or status."""
    review = next_for(session, user.id)
    row = session.get(Candidate, review.candidate_id) if review is not None else None
    return render(request, "second_review.html", user=user, review=review, c=row, message=verified(user, message, sig))


@router.post("/second-review/{review_id}", name="second_review_record")
def second_review_record(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    review_id: RowId,
    judgement: Annotated[Literal["accepted", "rejected"], Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, user, csrf_token)
    try:
        record(session, review_id, user.id, judgement)
        message = "Second review recorded; here is the next one."
    except SecondReviewError as exc:
        session.rollback()
        message = str(exc)
    return RedirectResponse(f"/second-review?{urlencode(notice(user, message))}", status_code=303)


@router.get("/admin/second-review", response_class=HTMLResponse, name="second_review_admin")
def second_review_admin(
    request: Request, session: SessionDep, user: AdminUser, message: str | None = None, sig: str | None = None
) -> HTMLResponse:
    return render(
        request,
        "second_review_admin.html",
        user=user,
        rows=agreement(session),
        disagreements=disagreements(session),
        message=verified(user, message, sig),
    )


@router.post("/admin/second-review", name="second_review_request")
def second_review_request(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    percent: Annotated[float, Form(gt=0, le=100)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Open blind second reviews for ``percent`` % of the current accept/reject decisions not yet sampled."""
    check_csrf(request, user, csrf_token)
    opened = request_sample(session, percent / 100, user.name)
    message = f"{opened} decision(s) sampled for a blind second review"
    return RedirectResponse(f"/admin/second-review?{urlencode(notice(user, message))}", status_code=303)
