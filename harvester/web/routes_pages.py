"""Server-rendered pages: login, queue, candidate, audit, runs, sources, users."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from harvester.web.auth import AuthError, add_user, login, logout
from harvester.web.deps import AdminUser, CurrentUser, SessionDep, check_csrf, cookie_name
from harvester.web.highlight import all_evidence, segments
from storage.decisions import Actor, DecisionError, decide, history, undo_last
from storage.models import Candidate, CandidateStatus, CrawlRun, Decision, ReasonCode, Source, User
from storage.queue import CRITERIA, QueueFilter, search_candidates

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
SUPPORT_TYPES = ("needs_assessment", "capacity_building", "workshops", "information_dissemination",
                 "other_implementation")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    from harvester.web.app import templates

    return templates.TemplateResponse(request, name, context, status_code=status_code)


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: no open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/queue"


def queue_filter(params: dict[str, str]) -> QueueFilter:
    def num(name: str) -> float | None:
        try:
            return float(params[name]) if params.get(name) else None
        except ValueError:
            return None

    return QueueFilter(
        status=params.get("status") or None, source_id=params.get("source") or None,
        language=params.get("lang") or None, min_score=num("min_score"), max_score=num("max_score"),
        criterion=params.get("criterion") or None, criterion_min=num("criterion_min"),
        support_type=params.get("support_type") or None, country=params.get("country") or None,
        published_from=params.get("published_from") or None, published_to=params.get("published_to") or None,
        reviewer=params.get("reviewer") or None, q=params.get("q") or None)


@router.get("/login", response_class=HTMLResponse, name="login_page")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", name="login")
def login_submit(request: Request, session: SessionDep, name: Annotated[str, Form()],
                 password: Annotated[str, Form()], next: Annotated[str, Form()] = "/queue") -> Response:
    from harvester.web.security import same_origin

    if not same_origin(request):
        raise HTTPException(status_code=403, detail="cross-site login refused")
    try:
        token = login(session, name, password, request.client.host if request.client else None)
    except AuthError as exc:
        return render(request, "login.html", status_code=401, next=safe_next(next), error=str(exc))
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(cookie_name(request), token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout", name="logout")
def logout_submit(request: Request, session: SessionDep, user: CurrentUser,
                  csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, user, csrf_token)
    logout(session, request.cookies.get(cookie_name(request)))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(cookie_name(request), path="/")
    return response


@router.get("/", name="home")
def home(user: CurrentUser) -> RedirectResponse:
    return RedirectResponse("/queue", status_code=303)


@router.get("/queue", response_class=HTMLResponse, name="queue")
def queue_page(request: Request, session: SessionDep, user: CurrentUser, page: int = Query(1, ge=1)) -> HTMLResponse:
    params = {k: v for k, v in request.query_params.items() if v and k != "page"}
    if "status" not in request.query_params:
        params["status"] = CandidateStatus.PENDING.value
    filters = queue_filter(params)
    rows, total = search_candidates(session, filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    sources = session.scalars(select(Source.id).order_by(Source.id)).all()
    return render(request, "queue.html", user=user, rows=rows, total=total, page=page, page_size=PAGE_SIZE,
                  params=params, query=urlencode(params), statuses=[s.value for s in CandidateStatus],
                  sources=sources, criteria=CRITERIA, support_types=SUPPORT_TYPES)


@router.get("/candidates/{candidate_id}", response_class=HTMLResponse, name="candidate")
def candidate_page(request: Request, session: SessionDep, user: CurrentUser, candidate_id: int,
                   message: str | None = None) -> HTMLResponse:
    row = session.get(Candidate, candidate_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no such candidate")
    evidence = all_evidence(row.criteria)
    cluster = []
    if row.duplicate_cluster:
        cluster = session.scalars(select(Candidate).where(Candidate.duplicate_cluster == row.duplicate_cluster,
                                                          Candidate.id != row.id).limit(20)).all()
    neighbours = _neighbours(session, row)
    from storage.models import FetchedPage

    has_snapshot = session.scalar(select(FetchedPage.snapshot_ref).where(
        FetchedPage.source_id == row.source_id, FetchedPage.url == row.fetched_url)) is not None
    return render(request, "candidate.html", has_snapshot=has_snapshot, user=user, c=row, evidence=evidence,
                  title_segments=segments(row.title, evidence, "title"),
                  summary_segments=segments(row.summary, evidence, "summary"),
                  text_segments=segments(row.text, evidence, "text"),
                  cluster=cluster, decisions=history(session, row.id), reasons=[r.value for r in ReasonCode],
                  message=message, neighbours=neighbours)


def _neighbours(session: Any, row: Candidate) -> dict[str, int | None]:
    """Previous and next candidate in the ranked queue of the same status."""
    base = select(Candidate.id).where(Candidate.status == row.status)
    score = row.score if row.score is not None else -1.0
    nxt = session.scalar(base.where((Candidate.score < score) | ((Candidate.score == score) & (Candidate.id > row.id)))
                         .order_by(Candidate.score.desc(), Candidate.id).limit(1))
    prev = session.scalar(base.where((Candidate.score > score) | ((Candidate.score == score) & (Candidate.id < row.id)))
                          .order_by(Candidate.score.asc(), Candidate.id.desc()).limit(1))
    return {"next": nxt, "prev": prev}


SNAPSHOT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'"


@router.get("/candidates/{candidate_id}/snapshot", response_class=HTMLResponse, name="snapshot")
def snapshot_page(session: SessionDep, user: CurrentUser, candidate_id: int) -> HTMLResponse:
    """The raw page as fetched, sanitised (nh3: no script, no handlers, no external loads), for a sandboxed frame."""
    import nh3

    from harvester.extraction.html import ExtractionError, decode_html
    from harvester.settings import get_settings
    from harvester.snapshots import read_snapshot
    from storage.models import FetchedPage

    row = session.get(Candidate, candidate_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no such candidate")
    ref = session.scalar(select(FetchedPage.snapshot_ref).where(FetchedPage.source_id == row.source_id,
                                                               FetchedPage.url == row.fetched_url))
    recorded = read_snapshot(get_settings().data_dir, ref) if ref else None
    if recorded is None:
        raise HTTPException(status_code=404, detail="no raw snapshot kept for this candidate")
    try:
        html = decode_html(recorded.body)
    except ExtractionError as exc:
        raise HTTPException(status_code=404, detail=f"snapshot unreadable: {exc}") from None
    clean = nh3.clean(html, tags=nh3.ALLOWED_TAGS - {"img"}, link_rel="noopener noreferrer nofollow")
    return HTMLResponse(f"<!doctype html><meta charset=utf-8>{clean}",
                        headers={"Content-Security-Policy": SNAPSHOT_CSP, "X-Frame-Options": "SAMEORIGIN"})


@router.post("/candidates/{candidate_id}/decide", name="decide")
async def decide_submit(request: Request, session: SessionDep, user: CurrentUser, candidate_id: int) -> Response:
    form = await request.form()
    check_csrf(request, user, str(form.get("csrf_token", "")))
    action = str(form.get("action", ""))
    # Browsers send textarea line ends as CRLF: an untouched multi-line summary is no edit.
    edits = {name: str(form[name]).replace("\r\n", "\n")
             for name in ("title", "summary", "organisations", "countries", "published") if name in form}
    version = str(form.get("version", ""))
    try:
        if action == "undo":
            undo_last(session, candidate_id, Actor(user.name, user.id))
        else:
            decide(session, candidate_id, action, Actor(user.name, user.id),
                   reason=str(form.get("reason") or "") or None, note=str(form.get("note") or "") or None,
                   edits=edits if action == "accept" else {},
                   expected_version=int(version) if version.isdigit() else None)
    except DecisionError as exc:  # a conflict, nothing to undo, a reject without reason: said on the page
        session.rollback()
        return RedirectResponse(f"/candidates/{candidate_id}?{urlencode({'message': str(exc)})}", status_code=303)
    target = "" if action == "undo" else str(form.get("next") or "")  # after an undo, stay to decide again
    return RedirectResponse(safe_next(target) if target else f"/candidates/{candidate_id}", status_code=303)


@router.post("/queue/bulk", name="bulk")
async def bulk_submit(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """Apply one decision to every candidate of the current filter, each audited on its own."""
    form = await request.form()
    check_csrf(request, user, str(form.get("csrf_token", "")))
    if form.get("confirm") != "yes":
        raise HTTPException(status_code=400, detail="bulk actions must be confirmed")
    params = {k: str(v) for k, v in form.items() if k in (
        "status", "source", "lang", "min_score", "max_score", "criterion", "criterion_min", "support_type",
        "country", "published_from", "published_to", "reviewer", "q") and v}
    rows, _ = search_candidates(session, queue_filter(params), limit=1000)
    action, reason = str(form.get("action", "")), str(form.get("reason") or "") or None
    try:
        for row in rows:
            decide(session, row.id, action, Actor(user.name, user.id), reason=reason, note="bulk action")
    except DecisionError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return RedirectResponse(f"/queue?{urlencode(params)}", status_code=303)


@router.get("/audit", response_class=HTMLResponse, name="audit")
def audit_page(request: Request, session: SessionDep, user: CurrentUser, page: int = Query(1, ge=1)) -> HTMLResponse:
    rows = session.scalars(select(Decision).order_by(Decision.id.desc()).limit(100).offset((page - 1) * 100)).all()
    return render(request, "audit.html", user=user, rows=rows, page=page)


def csv_cell(value: Any) -> str:
    """Harvested text is untrusted: a cell that a spreadsheet would run as a formula is prefixed."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/audit.csv", name="audit_csv")
def audit_csv(session: SessionDep, user: CurrentUser) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "candidate_id", "actor", "at", "from_status", "to_status", "reason_code", "note",
                     "field_diff", "model_version", "score_shown"])
    for d in session.scalars(select(Decision).order_by(Decision.id)):
        writer.writerow([csv_cell(v) for v in (d.id, d.candidate_id, d.actor, d.at.isoformat(), d.from_status,
                                                d.to_status, d.reason_code, d.note,
                                                json.dumps(d.field_diff, ensure_ascii=False), d.model_version,
                                                d.score_shown)])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="decisions.csv"'})


@router.get("/runs", response_class=HTMLResponse, name="runs")
def runs_page(request: Request, session: SessionDep, user: CurrentUser) -> HTMLResponse:
    rows = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc()).limit(200)).all()
    return render(request, "runs.html", user=user, rows=rows)


@router.get("/sources", response_class=HTMLResponse, name="sources")
def sources_page(request: Request, session: SessionDep, user: CurrentUser) -> HTMLResponse:
    from harvester.registry import load_registry
    from storage.queue import count_by_source_status

    counts = count_by_source_status(session)
    last_runs = {r.source_id: r for r in session.scalars(select(CrawlRun).order_by(CrawlRun.id))}
    return render(request, "sources.html", user=user, specs=list(load_registry().values()), counts=counts,
                  last_runs=last_runs)


@router.get("/admin/users", response_class=HTMLResponse, name="users")
def users_page(request: Request, session: SessionDep, user: AdminUser, message: str | None = None) -> HTMLResponse:
    return render(request, "users.html", user=user, users=session.scalars(select(User).order_by(User.name)).all(),
                  message=message)


@router.post("/admin/users", name="users_add")
def users_add(request: Request, session: SessionDep, user: AdminUser, name: Annotated[str, Form()],
              role: Annotated[str, Form()], password: Annotated[str, Form()],
              csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, user, csrf_token)
    try:
        add_user(session, name.strip(), role, password)
        message = f"user {name.strip()} added"
    except AuthError as exc:
        message = str(exc)
    return RedirectResponse(f"/admin/users?{urlencode({'message': message})}", status_code=303)
