"""Operations pages for admins: runs held in over-harvest quarantine, and acknowledging or resolving
source-health alerts (shown on the sources page). Every form posts the session's CSRF token."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from harvester.health.quarantine import Admin, QuarantineError, discard_run, quarantine_runs, release_run
from harvester.web.deps import AdminUser, RowId, SessionDep, check_csrf
from harvester.web.notices import notice, verified
from harvester.web.routes_pages import render
from storage.models import Alert, Candidate, CandidateStatus
from storage.runs import now

router = APIRouter(include_in_schema=False)
SAMPLE_TITLES = 5


def alerts_by_source(session: Session) -> dict[str, list[Alert]]:
    """Open alerts per source id, oldest first (the sources page)."""
    grouped: dict[str, list[Alert]] = defaultdict(list)
    for alert in session.scalars(
        select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.source_id, Alert.created_at, Alert.id)
    ):
        grouped[alert.source_id].append(alert)
    return dict(grouped)


@router.get("/admin/quarantine", response_class=HTMLResponse, name="quarantine")
def quarantine_page(
    request: Request, session: SessionDep, user: AdminUser, message: str | None = None, sig: str | None = None
) -> HTMLResponse:
    runs = quarantine_runs(session, include_decided=True)
    samples = {}
    for run in runs:
        if run["state"] == "held":
            samples[run["run"]] = session.scalars(
                select(Candidate.title)
                .where(Candidate.first_run_id == run["run"], Candidate.status == CandidateStatus.QUARANTINED)
                .order_by(Candidate.score.desc().nulls_last(), Candidate.id)
                .limit(SAMPLE_TITLES)
            ).all()
    return render(
        request,
        "quarantine.html",
        user=user,
        held=[r for r in runs if r["state"] == "held"],
        decided=[r for r in runs if r["state"] != "held"][:50],
        samples=samples,
        message=verified(user, message, sig),
    )


@router.post("/admin/quarantine/{run_id}", name="quarantine_decide")
def quarantine_decide(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    run_id: RowId,
    action: Annotated[Literal["release", "discard"], Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, user, csrf_token)
    try:
        if action == "release":
            count = release_run(session, run_id, Admin(user.name, user.id))
            message = f"run {run_id} released: {count} candidate(s) entered the queue as scored"
        else:
            count = discard_run(session, run_id, Admin(user.name, user.id))
            message = f"run {run_id} discarded: {count} candidate(s) kept as filtered, out of the queue"
    except QuarantineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return RedirectResponse(f"/admin/quarantine?{urlencode(notice(user, message))}", status_code=303)


@router.post("/admin/alerts/{alert_id}", name="alert_decide")
def alert_decide(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    alert_id: RowId,
    action: Annotated[Literal["acknowledge", "resolve"], Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Acknowledge (seen, still open) or resolve by hand (a later check that still sees it opens a new one)."""
    check_csrf(request, user, csrf_token)
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise HTTPException(status_code=404, detail=f"no alert {alert_id}")
    if alert.resolved_at is None:
        if action == "acknowledge" and alert.acknowledged_at is None:
            alert.acknowledged_at, alert.acknowledged_by = now(), user.name
        elif action == "resolve":
            alert.resolved_at, alert.resolved_by = now(), user.name
    return RedirectResponse(f"/sources#source-{alert.source_id}", status_code=303)
