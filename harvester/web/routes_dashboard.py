"""The dashboard (landing page), one source's page, the classification page, and their charts.

Charts are server-side SVG (matplotlib) served as images, so the page CSP stays strict; every chart's
numbers are the same object written as CSV, linked beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from harvester.charts import Chart, render
from harvester.charts import queries as q
from harvester.web.deps import CurrentUser, SessionDep

router = APIRouter(include_in_schema=False)
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
MEDIA = {"svg": "image/svg+xml", "png": "image/png", "csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True)
class ChartLink:
    """What a page shows for one chart: the image, its data link, and how many points it holds."""

    url: str
    title: str
    points: int
    note: str = ""


def _link(base: str, name: str, chart: Chart) -> ChartLink:
    return ChartLink(f"{base}/{name}", chart.title, chart.points, chart.note)


def _known_source(session: Session, source_id: str) -> None:
    from harvester.registry import load_registry
    from storage.models import Source

    if source_id not in load_registry() and session.get(Source, source_id) is None:
        raise HTTPException(status_code=404, detail="no such source")


def _chart(session: Session, state: tuple[object, ...], name: str, build: Callable[..., Chart], *args: str) -> Chart:
    """The chart as of this data state: built once per decision, run or model change, not on every visit."""
    return q.cached(state, (name, *args), lambda: build(session, *args))


def _chart_response(state: tuple[object, ...], chart: Chart, name: str, fmt: str) -> Response:
    if fmt == "csv":
        return Response(
            chart.to_csv(),
            media_type=MEDIA["csv"],
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "no-store"},
        )
    if fmt not in MEDIA:
        raise HTTPException(status_code=404, detail="charts are .svg, .png or .csv")
    body = q.cached(state, ("drawn", name, fmt), lambda: render(chart, fmt))
    return Response(
        body, media_type=MEDIA[fmt], headers={"Content-Security-Policy": SVG_CSP, "Cache-Control": "no-store"}
    )


def _render(request: Request, name: str, **context: object) -> HTMLResponse:
    from harvester.web.routes_pages import render as render_page

    return render_page(request, name, **context)


@router.get("/dashboard", response_class=HTMLResponse, name="dashboard")
def dashboard(request: Request, session: SessionDep, user: CurrentUser) -> HTMLResponse:
    from harvester.health.checks import alerts

    state = q.data_state(session)
    charts = [_link("/charts", name, _chart(session, state, name, build)) for name, build in q.DASHBOARD.items()]
    estimate, stopping = q.remaining(session)
    return _render(
        request,
        "dashboard.html",
        user=user,
        charts=charts,
        estimate=estimate,
        stopping=stopping,
        alerts=alerts(session),
    )


@router.get("/classification", response_class=HTMLResponse, name="classification")
def classification(request: Request, session: SessionDep, user: CurrentUser) -> HTMLResponse:
    from storage.model_store import list_models

    state = q.data_state(session)
    charts = [_link("/charts", name, _chart(session, state, name, build)) for name, build in q.CLASSIFICATION.items()]
    estimate, stopping = q.remaining(session)
    return _render(
        request,
        "classification.html",
        user=user,
        charts=charts,
        models=list_models(session),
        estimate=estimate,
        stopping=stopping,
    )


@router.get("/sources/{source_id}", response_class=HTMLResponse, name="source")
def source_page(request: Request, session: SessionDep, user: CurrentUser, source_id: str) -> HTMLResponse:
    from harvester.health.checks import alerts
    from harvester.registry import load_registry
    from storage.models import CrawlRun
    from storage.queue import count_by_source_status

    _known_source(session, source_id)
    base = f"/sources/{source_id}/charts"
    state = q.data_state(session)
    charts = [_link(base, name, _chart(session, state, name, build, source_id)) for name, build in q.SOURCE.items()]
    counts = {status: n for (sid, status), n in count_by_source_status(session).items() if sid == source_id}
    accepted, decided = q.decided_by_source(session).get(source_id, (0, 0))
    runs = session.scalars(
        select(CrawlRun).where(CrawlRun.source_id == source_id).order_by(CrawlRun.id.desc()).limit(20)
    ).all()
    next_run, next_how = q.next_scheduled_run(session, source_id)
    return _render(
        request,
        "source.html",
        user=user,
        source_id=source_id,
        spec=load_registry().get(source_id),
        charts=charts,
        counts=counts,
        accepted=accepted,
        decided=decided,
        runs=runs,
        next_run=next_run,
        next_how=next_how,
        alerts=alerts(session, source_id),
    )


def _lookup(table: dict[str, Callable[..., Chart]], name: str) -> Callable[..., Chart]:
    if name not in table:
        raise HTTPException(status_code=404, detail="no such chart")
    return table[name]


@router.get("/charts/{name}.{fmt}", name="chart")
def chart(session: SessionDep, user: CurrentUser, name: str, fmt: str) -> Response:
    build = _lookup(q.DASHBOARD | q.CLASSIFICATION, name)
    state = q.data_state(session)
    return _chart_response(state, _chart(session, state, name, build), name, fmt)


@router.get("/sources/{source_id}/charts/{name}.{fmt}", name="source_chart")
def source_chart(session: SessionDep, user: CurrentUser, source_id: str, name: str, fmt: str) -> Response:
    _known_source(session, source_id)
    build = _lookup(q.SOURCE, name)
    state = q.data_state(session)
    return _chart_response(state, _chart(session, state, name, build, source_id), f"{source_id}-{name}", fmt)
