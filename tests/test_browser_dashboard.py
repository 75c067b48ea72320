"""The charts in a real browser: the dashboard (landing page after login), a source page and the
classification page on the demo-like data, served by ``harvester serve`` to Debian's Chromium.

Checks that every chart image loads and holds data, that its CSV link answers with the same number
of points, that the strict CSP reports nothing, and saves a screenshot of each page to
``tests/artifacts/``. Reuses the browser, server and watcher fixtures of ``test_browser_review``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from harvester.charts import queries as q
from storage.db import make_engine, upgrade
from tests import test_browser_review as review
from tests.dashboard_data import build
from tests.test_browser_review import ReviewDb, Watch, login, path_of, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# the review tests' fixtures: Chromium, ``harvester serve`` over ``review_db`` (defined below), watched pages
playwright_api, browser, server, watched = review.playwright_api, review.browser, review.server, review.watched


@pytest.fixture(scope="module")
def review_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewDb]:
    """The demo-like database in the shape ``server`` serves (it holds no hostile record: id 0)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'demo.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    build(engine)
    yield ReviewDb(url, engine, 0)
    engine.dispose()


def figures(page: Any) -> list[dict[str, Any]]:
    """Every chart on the page, once its image has loaded: points, image size, CSV link."""
    page.wait_for_function("[...document.images].every(i => i.complete)")
    return page.eval_on_selector_all(
        "figure.chart",
        """figs => figs.map(f => ({
        points: Number(f.dataset.points), url: f.dataset.chart,
        width: f.querySelector('img').naturalWidth, height: f.querySelector('img').naturalHeight,
        csv: f.querySelector('a.chart-data').getAttribute('href')}))""",
    )


def check_charts(page: Any, expected: int) -> list[dict[str, Any]]:
    found = figures(page)
    assert len(found) == expected
    for chart in found:
        assert chart["points"] > 0, chart
        assert chart["width"] >= 600 and chart["height"] >= 250, chart  # the SVG was decoded and drawn
        response = page.request.get(chart["csv"])
        assert response.status == 200 and response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text())))
        assert len(rows) >= chart["points"]
    return found


def test_dashboard_source_and_classification_pages_show_their_charts(
    watched: tuple[Any, Watch], review_db: ReviewDb
) -> None:
    page, watch = watched
    login(page, "/")
    assert path_of(page.url) == "/dashboard"
    check_charts(page, len(q.DASHBOARD))
    with Session(review_db.engine) as session:
        estimate, stopping = q.remaining(session)
        accepted, decided = q.decided_by_source(session)["adaptecca_cases"]
    assert page.inner_text("p.remaining").count(estimate.describe()) == 1
    assert "method: yield curve" in page.inner_text("p.remaining")
    assert "field_empty" in page.inner_text("table.alerts")
    shot(page, "dashboard.png")

    page.goto("/sources")
    with page.expect_navigation():
        page.click("a[href='/sources/adaptecca_cases']")
    assert path_of(page.url) == "/sources/adaptecca_cases"
    check_charts(page, len(q.SOURCE))
    assert page.inner_text("dd.acceptance").startswith(f"{100 * accepted / decided:.1f}%")
    assert page.inner_text("dd.next-run") != "none"
    shot(page, "source.png")

    page.click("header.top a[href='/classification']")
    page.wait_for_url("**/classification")
    check_charts(page, len(q.CLASSIFICATION))
    assert page.locator("table.models tbody tr").count() == 1
    shot(page, "classification.png")

    page.goto("/queue")
    assert estimate.describe() in page.inner_text("p.remaining")
    assert stopping.describe() in page.inner_text("p.remaining")
    page.wait_for_timeout(200)
    assert watch.clean(), watch
