"""Server-rendered pages: login, queue, candidate, audit, runs, sources, users."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from harvester.charts.queries import remaining as remaining_relevant
from harvester.extraction.provenance import field_origins
from harvester.web.auth import (
    AccountActor,
    AuthError,
    Throttled,
    account_events,
    add_user,
    end_sessions,
    list_accounts,
    login,
    logout,
    reset_password,
    set_active,
)
from harvester.web.deps import MAX_ID, AdminUser, CurrentUser, RowId, SessionDep, check_csrf, cookie_name
from harvester.web.explain import explain, split_evidence
from harvester.web.highlight import all_evidence, segments
from harvester.web.notices import notice, verified
from storage.claims import claim, holders, next_unclaimed, release
from storage.decisions import (
    Actor,
    AuditFilter,
    BulkMark,
    DecisionConflict,
    DecisionError,
    audit_query,
    decide,
    decide_all,
    decide_cluster,
    history,
    open_cluster_members,
    personal_history,
    progress,
    undo_last,
)
from storage.models import Candidate, CandidateStatus, CrawlRun, Decision, ReasonCode, Source, User
from storage.queue import (
    COUNT_CAP,
    CRITERIA,
    Cursor,
    CursorError,
    QueueFilter,
    count_candidates,
    neighbours,
    queue_page,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
FILTER_KEYS = (
    "status",
    "source",
    "lang",
    "min_score",
    "max_score",
    "criterion",
    "criterion_min",
    "support_type",
    "country",
    "published_from",
    "published_to",
    "reviewer",
    "q",
)
MAX_FILTER = 200  # characters kept of one filter value: a 60 KB search would be echoed into every link
SUPPORT_TYPES = (
    "needs_assessment",
    "capacity_building",
    "workshops",
    "information_dissemination",
    "other_implementation",
)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    from harvester.web.templating import templates

    return templates.TemplateResponse(request, name, context, status_code=status_code)


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: no open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/dashboard"


def queue_filter(params: dict[str, str]) -> QueueFilter:
    def num(name: str) -> float | None:
        try:
            return float(params[name]) if params.get(name) else None
        except ValueError:
            return None

    return QueueFilter(
        status=params.get("status") or None,
        source_id=params.get("source") or None,
        language=params.get("lang") or None,
        min_score=num("min_score"),
        max_score=num("max_score"),
        criterion=params.get("criterion") or None,
        criterion_min=num("criterion_min"),
        support_type=params.get("support_type") or None,
        country=params.get("country") or None,
        published_from=params.get("published_from") or None,
        published_to=params.get("published_to") or None,
        reviewer=params.get("reviewer") or None,
        q=params.get("q") or None,
    )


@router.get("/login", response_class=HTMLResponse, name="login_page")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", name="login")
def login_submit(
    request: Request,
    session: SessionDep,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/dashboard",
) -> Response:
    from harvester.web.security import same_origin

    if not same_origin(request):
        raise HTTPException(status_code=403, detail="cross-site login refused")
    try:
        token = login(session, name, password, request.client.host if request.client else None)
    except Throttled as exc:
        response = render(request, "login.html", status_code=429, next=safe_next(next), error=str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthError as exc:
        return render(request, "login.html", status_code=401, next=safe_next(next), error=str(exc))
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        cookie_name(request), token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.post("/logout", name="logout")
def logout_submit(
    request: Request, session: SessionDep, user: CurrentUser, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(request, user, csrf_token)
    logout(session, request.cookies.get(cookie_name(request)))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(cookie_name(request), path="/")
    return response


@router.get("/", name="home")
def home(user: CurrentUser) -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


def filter_params(values: Any, default_status: str | None = CandidateStatus.PENDING.value) -> dict[str, str]:
    """The queue filters of a query string or form, as kept in URLs; no status at all means ``default_status``
    (``status=`` empty means any status)."""
    status = str(values["status"])[:MAX_FILTER] if "status" in values else default_status
    params = {"status": status} if status is not None else {}
    return params | {k: str(values[k])[:MAX_FILTER] for k in FILTER_KEYS if k != "status" and values.get(k)}


def _cursor(raw: str | None) -> Cursor | None:
    try:
        return Cursor.decode(raw) if raw else None
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


VERBS = {"accepted": "Accepted", "rejected": "Rejected", "deferred": "Deferred", "pending": "Reopened"}
MAX_DONE = 50  # decision ids one done notice names (a cluster decision)


def done_notice(session: Any, user: Any, raw: str | None) -> dict[str, Any] | None:
    """What the curator just did (``?done=DECISION_ID``) with a one-click undo while it is still the candidate's
    latest decision; the undo form carries the candidate version shown. Only the curator's own decisions show."""
    ids = [int(p) for p in (raw or "").split(",")[:MAX_DONE] if p.isdigit() and int(p) <= MAX_ID]
    if not ids:
        return None
    decision = session.get(Decision, ids[0])
    if decision is None or decision.user_id != user.id:
        return None
    cluster = list(
        session.scalars(
            select(Decision)
            .where(  # the same decision given to its near-duplicates
                Decision.id.in_(ids[1:]),
                Decision.user_id == user.id,
                Decision.note.startswith(f"cluster decision with #{decision.candidate_id}"),
            )
            .order_by(Decision.id)
        )
    )
    row = session.get(Candidate, decision.candidate_id)
    latest = session.scalar(
        select(Decision.id)
        .where(Decision.candidate_id == decision.candidate_id, Decision.reason_code.is_distinct_from("gone_at_source"))
        .order_by(Decision.id.desc())
        .limit(1)
    )
    if decision.reason_code == "undo":
        verb = "Undid the last decision on"
    elif decision.from_status == decision.to_status and decision.note:
        verb = "Added a note to"
    else:
        verb = VERBS.get(decision.to_status, decision.to_status.capitalize())
    return {
        "decision": decision,
        "candidate": row,
        "verb": verb,
        "cluster": cluster,
        "undoable": latest == decision.id and row.status != CandidateStatus.QUARANTINED,
    }


def with_params(target: str, **params: Any) -> str:
    """``target`` (a same-site path) with ``params`` added to its query string."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return f"{parts.path}?{urlencode(query + [(k, str(v)) for k, v in params.items()])}"


def _render_queue(
    request: Request,
    session: Any,
    user: Any,
    params: dict[str, str],
    *,
    after: str | None = None,
    before: str | None = None,
    message: str | None = None,
    bulk: dict[str, Any] | None = None,
    status_code: int = 200,
    done: dict[str, Any] | None = None,
) -> HTMLResponse:
    filters = queue_filter(params)
    page = queue_page(session, filters, PAGE_SIZE, after=_cursor(after), before=_cursor(before))
    total = count_candidates(session, filters)
    sources = session.scalars(select(Source.id).order_by(Source.id)).all()
    query = urlencode(params)
    held = holders(session, [row.id for row in page.rows], except_user=user.id)
    return render(
        request,
        "queue.html",
        status_code=status_code,
        user=user,
        rows=page.rows,
        total=total,
        held=held,
        progress=progress(session, user.id),
        remaining=remaining_relevant(session),
        count_cap=COUNT_CAP,
        first_page=after is None and before is None,
        next_cursor=page.next.encode() if page.next else None,
        prev_cursor=page.prev.encode() if page.prev else None,
        params=params,
        query=query,
        statuses=[s.value for s in CandidateStatus],
        sources=sources,
        criteria=CRITERIA,
        support_types=SUPPORT_TYPES,
        reasons=[r.value for r in ReasonCode],
        message=message,
        bulk=bulk,
        done=done,
    )


@router.get("/queue", response_class=HTMLResponse, name="queue")
def queue_view(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    after: str | None = None,
    before: str | None = None,
    message: str | None = None,
    sig: str | None = None,
    done: str | None = None,
) -> HTMLResponse:
    """The ranked queue, one keyset page at a time (``after``/``before`` are cursors of the rows at the edges)."""
    params = filter_params(request.query_params)
    return _render_queue(
        request,
        session,
        user,
        params,
        after=after,
        before=before,
        message=verified(user, message, sig),
        done=done_notice(session, user, done),
    )


@router.get("/queue/next", name="queue_next")
def queue_next(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    from_: Annotated[int | None, Query(alias="from", ge=1, le=MAX_ID)] = None,
    done: str | None = None,
) -> RedirectResponse:
    """The next candidate of the filter (after candidate ``from``, else from the top) that no other curator has
    open; back to the queue when there is none. Decisions continue here, so two curators part ways."""
    params = filter_params(request.query_params)
    filters = queue_filter(params)
    after = None
    # After a decision the candidate has left a status filter and the ranking may have moved (the zero-shot
    # score learns from each decision): the next one is then the top of the filter, not the old neighbour.
    if (
        from_ is not None
        and (row := session.get(Candidate, from_)) is not None
        and filters.status in (None, row.status)
    ):
        after = Cursor.of(row)
    found = next_unclaimed(session, filters, user.id, after)
    extra = {"done": done} if done and done.replace(",", "").isdigit() else {}
    if found is None:
        extra |= notice(user, "No candidate of this filter is left that nobody else has open.")
        return RedirectResponse(f"/queue?{urlencode({**params, **extra})}", status_code=303)
    return RedirectResponse(f"/candidates/{found}?{urlencode({**params, **extra})}", status_code=303)


HISTORY_PAGE = 100


@router.get("/history", response_class=HTMLResponse, name="history")
def history_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    before: int | None = Query(None, ge=1, le=MAX_ID),
    done: str | None = None,
) -> HTMLResponse:
    """The curator's own decisions, newest first, each with an undo while it is still the candidate's latest."""
    rows = personal_history(session, user.id, before=before, limit=HISTORY_PAGE + 1)
    older = rows[HISTORY_PAGE - 1].decision.id if len(rows) > HISTORY_PAGE else None
    return render(
        request,
        "history.html",
        user=user,
        rows=rows[:HISTORY_PAGE],
        older=older,
        query="",
        progress=progress(session, user.id),
        remaining=remaining_relevant(session),
        message=None,
        done=done_notice(session, user, done),
    )


@router.get("/candidates/{candidate_id}", response_class=HTMLResponse, name="candidate")
def candidate_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    candidate_id: RowId,
    message: str | None = None,
    sig: str | None = None,
    done: str | None = None,
) -> HTMLResponse:
    """One candidate; previous/next (k/j) walk the queue filter it was opened from (default: its own status)."""
    from harvester.classify.zero_shot import score_basis

    row = session.get(Candidate, candidate_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no such candidate")
    evidence = all_evidence(row.criteria)
    cluster = []
    if row.duplicate_cluster:
        cluster = session.scalars(
            select(Candidate)
            .where(Candidate.duplicate_cluster == row.duplicate_cluster, Candidate.id != row.id)
            .order_by(Candidate.id)
            .limit(6)
        ).all()
    params = filter_params(request.query_params, default_status=row.status)
    prev_id, next_id = neighbours(session, queue_filter(params), row)
    holder = claim(session, row.id, user.id)
    from storage.models import FetchedPage

    has_snapshot = (
        session.scalar(
            select(FetchedPage.snapshot_ref).where(
                FetchedPage.source_id == row.source_id, FetchedPage.url == row.fetched_url
            )
        )
        is not None
    )
    return render(
        request,
        "candidate.html",
        has_snapshot=has_snapshot,
        user=user,
        c=row,
        evidence=evidence,
        origins=field_origins(row.provenance, row.curator_edits),
        split=split_evidence(row.criteria or {}),
        how=explain(row.criteria or {}, row.score, row.classifier_version),
        holder=holder,
        open_members=open_cluster_members(session, row),
        progress=progress(session, user.id),
        remaining=remaining_relevant(session),
        title_segments=segments(row.title, evidence, "title"),
        summary_segments=segments(row.summary, evidence, "summary"),
        text_segments=segments(row.text, evidence, "text"),
        cluster=cluster,
        decisions=history(session, row.id),
        reasons=[r.value for r in ReasonCode],
        message=verified(user, message, sig),
        done=done_notice(session, user, done),
        neighbours={"prev": prev_id, "next": next_id},
        query=urlencode(params),
        score_basis=score_basis(row.classifier_version),
    )


SNAPSHOT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'"


@router.get("/candidates/{candidate_id}/snapshot", response_class=HTMLResponse, name="snapshot")
def snapshot_page(session: SessionDep, user: CurrentUser, candidate_id: RowId) -> HTMLResponse:
    """The raw page as fetched, sanitised (nh3: no script, no handlers, no external loads), for a sandboxed frame."""
    import nh3

    from harvester.extraction.html import ExtractionError, decode_html
    from harvester.recordings.snapshots import read_snapshot
    from harvester.settings import get_settings
    from storage.models import FetchedPage

    row = session.get(Candidate, candidate_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no such candidate")
    ref = session.scalar(
        select(FetchedPage.snapshot_ref).where(
            FetchedPage.source_id == row.source_id, FetchedPage.url == row.fetched_url
        )
    )
    recorded = read_snapshot(get_settings().data_dir, ref) if ref else None
    if recorded is None:
        raise HTTPException(status_code=404, detail="no raw snapshot kept for this candidate")
    try:
        html = decode_html(recorded.body)
    except ExtractionError as exc:
        raise HTTPException(status_code=404, detail=f"snapshot unreadable: {exc}") from None
    clean = nh3.clean(html, tags=nh3.ALLOWED_TAGS - {"img"}, link_rel="noopener noreferrer nofollow")
    return HTMLResponse(
        f"<!doctype html><meta charset=utf-8>{clean}",
        headers={"Content-Security-Policy": SNAPSHOT_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


@router.post("/candidates/{candidate_id}/decide", name="decide")
async def decide_submit(request: Request, session: SessionDep, user: CurrentUser, candidate_id: RowId) -> Response:
    """One decision (or an undo) from the candidate page or the notice after a decision. Both carry the candidate
    version the page showed: a stale one is refused as a conflict. Afterwards the next page shows what was done
    (``?done=DECISION_ID``) with a one-click undo."""
    form = await request.form()
    check_csrf(request, user, str(form.get("csrf_token", "")))
    action = str(form.get("action", ""))
    # Browsers send textarea line ends as CRLF: an untouched multi-line summary is no edit.
    edits = {
        name: str(form[name]).replace("\r\n", "\n")
        for name in ("title", "summary", "organisations", "countries", "published", "start_date", "end_date")
        if name in form
    }
    version = str(form.get("version", ""))
    expected = int(version) if version.isdigit() and int(version) <= MAX_ID else None
    filters = urlencode(filter_params(dict(parse_qsl(str(form.get("filters", "")), keep_blank_values=True)), None))
    try:
        if action == "undo":
            decision = undo_last(session, candidate_id, Actor(user.name, user.id), expected_version=expected)
        else:
            decision = decide(
                session,
                candidate_id,
                action,
                Actor(user.name, user.id),
                reason=str(form.get("reason") or "") or None,
                note=str(form.get("note") or "") or None,
                edits=edits if action == "accept" else {},
                expected_version=expected,
            )
    except DecisionError as exc:  # a conflict, nothing to undo, a reject without reason: said on the page
        session.rollback()
        text = str(exc)
        if isinstance(exc, DecisionConflict):
            text += "; nothing was changed"
        return RedirectResponse(
            with_params(f"/candidates/{candidate_id}?{filters}", **notice(user, text)), status_code=303
        )
    release(session, candidate_id)
    done = [decision.id]
    row = session.get(Candidate, candidate_id)
    if action in ("accept", "reject", "defer") and form.get("cluster") == "yes" and row is not None:
        members = open_cluster_members(session, row)
        busy = set(holders(session, [m.id for m in members], except_user=user.id))  # others have them open
        done += [
            d.id
            for d in decide_cluster(
                session,
                row,
                action,
                Actor(user.name, user.id),
                reason=decision.reason_code,
                note=decision.note,
                skip=busy,
            )
        ]
    target = "" if action == "undo" else str(form.get("next") or "")  # after an undo, stay to decide again
    target = safe_next(target) if target else f"/candidates/{candidate_id}?{filters}"
    return RedirectResponse(with_params(target, done=",".join(map(str, done))), status_code=303)


@router.post("/queue/bulk", name="bulk")
async def bulk_submit(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """Apply one decision to every candidate of the current filter, each audited on its own.

    First post: a confirmation naming the exact count. Confirmed post: the whole result, in batches; candidates
    decided by someone else since the confirmation are left alone and reported.
    """
    form = await request.form()
    check_csrf(request, user, str(form.get("csrf_token", "")))
    params = filter_params(form, default_status=None)
    action, reason = str(form.get("action", "")), str(form.get("reason") or "") or None
    if action not in ("accept", "reject", "defer", "reopen"):
        raise HTTPException(status_code=400, detail=f"unknown bulk action {action!r}")
    if action == "reject" and reason not in {r.value for r in ReasonCode}:
        return _render_queue(
            request,
            session,
            user,
            params,
            status_code=400,
            message="A bulk reject needs a reason: pick one and apply again.",
        )
    if form.get("confirm") != "yes":
        mark = BulkMark.now(session)
        bulk = {
            "action": action,
            "reason": reason or "",
            "count": count_candidates(session, queue_filter(params), cap=None),
            "last_candidate": mark.last_candidate,
            "last_decision": mark.last_decision,
        }
        return _render_queue(request, session, user, params, bulk=bulk)
    try:
        mark = BulkMark(int(str(form.get("last_candidate"))), int(str(form.get("last_decision"))))
        expected = int(str(form.get("count")))
    except ValueError:
        raise HTTPException(status_code=400, detail="bulk confirmation incomplete: start again") from None
    try:
        result = decide_all(
            session, queue_filter(params), action, Actor(user.name, user.id), mark, reason=reason, note="bulk action"
        )
    except DecisionError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    message = f"{action}: {result.decided:,} {plural(result.decided, 'candidate')} decided"
    if result.conflicts:
        shown = ", ".join(map(str, result.conflicts[:20])) + (" ..." if len(result.conflicts) > 20 else "")
        message += f"; {len(result.conflicts):,} left alone, decided since you confirmed ({shown})"
    gone = expected - result.decided - len(result.conflicts)
    if gone > 0:
        message += f"; {gone:,} no longer matched the filter"
    return RedirectResponse(f"/queue?{urlencode({**params, **notice(user, message)})}", status_code=303)


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


AUDIT_KEYS = ("actor", "candidate", "status", "reason", "since", "until")
AUDIT_PAGE = 100


def audit_filter(params: Any) -> AuditFilter:
    """The audit filters of a query string; a malformed candidate id or date is a 400, not an empty page."""
    candidate = params.get("candidate")
    if candidate and (not candidate.isdigit() or int(candidate) > MAX_ID):
        raise HTTPException(status_code=400, detail=f"candidate must be a number, not {candidate!r}")
    try:
        since, until = (date.fromisoformat(params[k]) if params.get(k) else None for k in ("since", "until"))
    except ValueError:
        raise HTTPException(status_code=400, detail="dates are YYYY-MM-DD") from None
    return AuditFilter(
        actor=params.get("actor") or None,
        candidate_id=int(candidate) if candidate else None,
        to_status=params.get("status") or None,
        reason=params.get("reason") or None,
        since=since,
        until=until,
    )


@router.get("/audit", response_class=HTMLResponse, name="audit")
def audit_page(
    request: Request, session: SessionDep, user: CurrentUser, before: int | None = Query(None, ge=1, le=MAX_ID)
) -> HTMLResponse:
    """The decision trail, newest first, filtered; "older" continues below the last decision shown."""
    params = {k: request.query_params[k] for k in AUDIT_KEYS if request.query_params.get(k)}
    query = audit_query(audit_filter(params))
    if before is not None:
        query = query.where(Decision.id < before)
    rows = session.scalars(query.limit(AUDIT_PAGE + 1)).all()
    older = rows[AUDIT_PAGE - 1].id if len(rows) > AUDIT_PAGE else None
    return render(
        request,
        "audit.html",
        user=user,
        rows=rows[:AUDIT_PAGE],
        params=params,
        query=urlencode(params),
        older=older,
        statuses=[s.value for s in CandidateStatus],
        reasons=[r.value for r in ReasonCode] + ["undo", "gone_at_source"],
    )


def csv_cell(value: Any) -> str:
    """Harvested text is untrusted: a cell that a spreadsheet would run as a formula is prefixed."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/audit.csv", name="audit_csv")
def audit_csv(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The decisions of the audit page's filters, oldest first."""
    query = audit_query(audit_filter(request.query_params)).order_by(None).order_by(Decision.id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "id",
            "candidate_id",
            "actor",
            "at",
            "from_status",
            "to_status",
            "reason_code",
            "note",
            "field_diff",
            "model_version",
            "score_shown",
        ]
    )
    for d in session.scalars(query.execution_options(yield_per=1000)):
        writer.writerow(
            [
                csv_cell(v)
                for v in (
                    d.id,
                    d.candidate_id,
                    d.actor,
                    d.at.isoformat(),
                    d.from_status,
                    d.to_status,
                    d.reason_code,
                    d.note,
                    json.dumps(d.field_diff, ensure_ascii=False),
                    d.model_version,
                    d.score_shown,
                )
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="decisions.csv"'},
    )


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
    from harvester.web.routes_ops import alerts_by_source

    return render(
        request,
        "sources.html",
        user=user,
        specs=list(load_registry().values()),
        counts=counts,
        last_runs=last_runs,
        alerts=alerts_by_source(session),
    )


@router.get("/admin/users", response_class=HTMLResponse, name="users")
def users_page(
    request: Request, session: SessionDep, user: AdminUser, message: str | None = None, sig: str | None = None
) -> HTMLResponse:
    """Accounts with their open sessions, the forms to add and change them, and the account audit."""
    return render(
        request,
        "users.html",
        user=user,
        accounts=list_accounts(session),
        events=account_events(session),
        message=verified(user, message, sig),
    )


@router.post("/admin/users", name="users_add")
def users_add(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    name: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, user, csrf_token)
    try:
        add_user(session, name.strip()[:100], role, password, AccountActor(user.name, user.id))
        message = f"user {name.strip()[:100]} added"
    except AuthError as exc:
        message = str(exc)
    return RedirectResponse(f"/admin/users?{urlencode(notice(user, message))}", status_code=303)


@router.post("/admin/users/{user_id}", name="users_change")
def users_change(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    user_id: RowId,
    action: Annotated[Literal["deactivate", "activate", "end_sessions", "reset_password"], Form()],
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Deactivate or reactivate an account, end its sessions or reset its password; each change is audited."""
    check_csrf(request, user, csrf_token)
    by = AccountActor(user.name, user.id)
    try:
        if action == "deactivate":
            message = f"{set_active(session, user_id, False, by).name} deactivated: cannot log in, every session ended"
        elif action == "activate":
            message = f"{set_active(session, user_id, True, by).name} reactivated"
        elif action == "end_sessions":
            ended = end_sessions(session, user_id, by)
            message = f"{session.get(User, user_id).name} logged out everywhere ({ended} sessions ended)"  # type: ignore[union-attr]
        else:
            message = f"{reset_password(session, user_id, password, by).name} has a new password; every session ended"
    except AuthError as exc:
        session.rollback()
        message = str(exc)
    return RedirectResponse(f"/admin/users?{urlencode(notice(user, message))}", status_code=303)
