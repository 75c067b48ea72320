"""Charts for operators and curators: every number drawn is the database's number, the pages show
each chart beside its CSV, and the command line writes valid SVG/PNG files.

The demo-like database (``tests.dashboard_data``) is built once for the module from recorded captures."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from harvester.charts import Chart, Kind, render
from harvester.charts import queries as q
from harvester.charts.curves import simulation_chart
from harvester.cli import cli
from harvester.settings import get_settings
from harvester.web.app import create_app
from storage.db import dispose_engines, make_engine, transaction, upgrade
from storage.decisions import Actor, decide, undo_last
from storage.models import Candidate, ClassifierModel, CrawlRun
from tests.dashboard_data import CURATOR, PASSWORD, DemoData, build

SVG_NS = "{http://www.w3.org/2000/svg}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, DemoData, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('charts') / 'demo.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    data = build(engine)
    yield engine, data, url
    engine.dispose()


@pytest.fixture(scope="module")
def client(demo: tuple[Engine, DemoData, str]) -> Iterator[TestClient]:
    with TestClient(create_app(demo[0]), follow_redirects=False) as c:
        assert c.post("/login", data={"name": CURATOR, "password": PASSWORD}).status_code == 303
        yield c


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def svg_root(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == f"{SVG_NS}svg"
    return root


def series(chart: Chart, name: str) -> list[tuple[object, float]]:
    (found,) = [s for s in chart.series if s.name == name]
    return list(zip(found.x, found.y, strict=True))


# ---- rendering ---------------------------------------------------------------------------------------


def test_a_chart_renders_as_svg_and_png_and_its_csv_holds_every_point() -> None:
    chart = Chart("Recall", "screened", "found")
    line = chart.add_series("model")
    for x, y in [(0, 0), (10, 4), (20, 7.5)]:
        line.add(x, y)
    base = chart.add_series("random", reference=True)
    base.add(0, 0)
    base.add(20, 7.5)
    root = svg_root(render(chart, "svg"))
    assert root.findall(f".//{SVG_NS}script") == []
    assert {t.text for t in root.iter(f"{SVG_NS}text")} >= {"Recall", "screened", "found", "model", "random"}
    assert render(chart, "png").startswith(PNG_MAGIC)
    assert chart.points == 3  # the baseline is not data
    assert chart.to_csv().splitlines() == [
        "series,screened,found",
        "model,0,0",
        "model,10,4",
        "model,20,7.5",
        "random,0,0",
        "random,20,7.5",
    ]


def test_an_empty_chart_says_so_instead_of_drawing_nothing() -> None:
    root = svg_root(render(Chart("Nothing", "x", "y", Kind.BAR)))
    assert "no data yet" in {t.text for t in root.iter(f"{SVG_NS}text")}


def test_series_differ_by_colour_marker_and_dash() -> None:
    from harvester.charts.render import DASHES, MARKERS, OKABE_ITO

    assert len(set(OKABE_ITO)) == len(MARKERS) == 8 and len(set(DASHES)) == 4
    chart = Chart("Two", "x", "y")
    for name in ("a", "b"):
        s = chart.add_series(name)
        s.add(0, 1)
        s.add(1, 2)
    svg = render(chart).decode()
    assert OKABE_ITO[0].lower() in svg.lower() and OKABE_ITO[1].lower() in svg.lower()
    assert "stroke-dasharray" in svg  # the second series is dashed, not only another colour


# ---- numbers against the database --------------------------------------------------------------------


def test_acceptance_rate_is_accepted_over_decided_per_source(
    demo: tuple[Engine, DemoData, str], client: TestClient
) -> None:
    engine, data, _ = demo
    with Session(engine) as session:
        chart = q.acceptance_rate(session)
        sources = dict(session.execute(select(Candidate.id, Candidate.source_id)).all())
    by_source: dict[str, list[int]] = {}
    for cid, label in data.decided:  # the screening as it was done, counted here in Python
        by_source.setdefault(sources[cid], []).append(label)
    assert len(by_source) == 2
    assert series(chart, "accepted / decided") == [
        (s, pytest.approx(sum(v) / len(v))) for s, v in sorted(by_source.items())
    ]
    page = client.get("/sources/adaptecca_cases").text
    labels = by_source["adaptecca_cases"]
    assert f'data-accepted="{sum(labels)}" data-decided="{len(labels)}"' in page
    assert f"{100 * sum(labels) / len(labels):.1f}% ({sum(labels)} accepted of {len(labels)} decided)" in page


def test_queue_history_ends_at_the_current_queue(demo: tuple[Engine, DemoData, str]) -> None:
    engine, data, _ = demo
    with Session(engine) as session:
        chart = q.queue_history(session)
        now = dict(session.execute(select(Candidate.status, func.count()).group_by(Candidate.status)).all())
    assert {s.name: s.y[-1] for s in chart.series} == now
    accepted = series(chart, "accepted")
    assert accepted[0][1] == 0 and accepted[-1][1] == sum(label for _, label in data.decided)
    assert all(b[1] >= a[1] for a, b in pairwise(accepted))


def test_run_charts_are_the_run_stats(demo: tuple[Engine, DemoData, str]) -> None:
    engine, data, _ = demo
    with Session(engine) as session:
        runs = {r.id: r for r in session.scalars(select(CrawlRun))}
        per_run = q.candidates_per_run(session)
        counts = q.source_run_counts(session, "adaptecca_cases")
        fill = q.source_field_fill(session, "adaptecca_cases")
        share = q.not_modified(session)
    ids = data.run_ids["adaptecca_cases"]
    n = len(data.items["adaptecca_cases"])
    assert [y for _, y in series(per_run, "adaptecca_cases")] == [n, n, n]
    # first run: all new; second: 5 revised titles; third: every summary gone (and the 5 titles back)
    assert series(counts, "new") == [(ids[0], n), (ids[1], 0), (ids[2], 0)]
    assert series(counts, "updated") == [(ids[0], 0), (ids[1], 5), (ids[2], n)]
    assert series(counts, "not_modified") == [(ids[0], 0), (ids[1], n - 5), (ids[2], 0)]
    assert (
        series(counts, "errors")
        == [(i, runs[i].stats["errors"]) for i in ids]
        == [(ids[0], 0), (ids[1], 0), (ids[2], 3)]
    )
    summary = series(fill, "summary")
    assert summary == [(i, runs[i].stats["field_fill"]["summary"]) for i in ids]
    assert summary[0][1] > 0.9 and summary[-1][1] == 0.0  # the drift shows as a drop
    assert [y for _, y in series(share, "adaptecca_cases")] == pytest.approx([0.0, (n - 5) / n, 0.0])


def test_score_distribution_shares_per_status(demo: tuple[Engine, DemoData, str]) -> None:
    engine, _, _ = demo
    with Session(engine) as session:
        chart = q.score_distribution(session)
        scores = {
            status: session.scalars(select(Candidate.score).where(Candidate.status == status)).all()
            for status in ("pending", "accepted", "rejected")
        }
    for status, values in scores.items():
        (s,) = [s for s in chart.series if s.name == f"{status} ({len(values)})"]
        assert sum(s.y) == pytest.approx(1.0)
        top = Counter(min(19, int(v * 20)) for v in values)
        assert [round(y * len(values)) for y in s.y] == [top.get(i, 0) for i in range(20)]


def test_recall_curve_and_model_versions_are_the_decisions_and_stored_figures(
    demo: tuple[Engine, DemoData, str],
) -> None:
    engine, data, _ = demo
    with Session(engine) as session:
        curve = q.recall_curve(session)
        models = q.model_versions(session)
        row = session.scalars(select(ClassifierModel)).one()
    found = series(curve, "curators, in the order decided")
    labels = [label for _, label in data.decided]
    assert found[0] == (0, 0) and found[-1] == (len(labels), sum(labels))
    assert found[40] == (40, sum(labels[:40]))
    assert series(curve, "random order (expected)") == [(0, 0), (len(labels), sum(labels))]
    assert series(models, "model ROC AUC")[0][1] == pytest.approx(row.metrics["model"]["roc_auc"])
    assert series(models, "rules ROC AUC")[0][1] == pytest.approx(row.metrics["rules"]["roc_auc"])


def test_decision_sequence_drops_what_was_undone(db_engine: Engine) -> None:
    with transaction(db_engine) as session:
        from storage.runs import ensure_source

        ensure_source(session, "s", "s", "api", True, True, "h")
        for i in range(3):
            session.add(
                Candidate(
                    source_id="s",
                    identity_key=f"key:{i}",
                    url=f"https://example.org/{i}",
                    fetched_url="x",
                    record_hash="h",
                    status="pending",
                    score=0.5,
                )
            )
    with transaction(db_engine) as session:
        ids = session.scalars(select(Candidate.id).order_by(Candidate.id)).all()
        decide(session, ids[0], "accept", Actor("ada"))
        decide(session, ids[1], "reject", Actor("ada"), reason="inactive")
        decide(session, ids[2], "accept", Actor("ada"))
        undo_last(session, ids[1], Actor("ada"))
        assert q.decision_sequence(session) == [1, 1]
        history = q.queue_history(session)
        assert {s.name: s.y[-1] for s in history.series} == {"pending": 1, "accepted": 2}


# ---- pages and chart endpoints -----------------------------------------------------------------------

FIGURE = re.compile(r'<figure class="chart" data-points="(\d+)" data-chart="([^"]+)">')


@pytest.mark.parametrize("path", ["/dashboard", "/sources/gcf_projects", "/classification"])
def test_every_chart_on_a_page_has_data_an_svg_and_its_csv(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    figures = FIGURE.findall(page.text)
    assert len(figures) >= 2
    for points, url in figures:
        assert int(points) > 0, url
        image = client.get(f"{url}.svg")
        assert image.headers["content-type"] == "image/svg+xml"
        svg_root(image.content)
        assert "no data yet" not in image.text
        rows = csv_rows(client.get(f"{url}.csv").text)
        assert len(rows) >= int(points)
        assert f'href="{url}.csv"' in page.text and f'src="{url}.svg"' in page.text


def test_dashboard_shows_open_alerts_and_the_remaining_estimate(
    client: TestClient, demo: tuple[Engine, DemoData, str]
) -> None:
    engine, _, _ = demo
    with Session(engine) as session:
        estimate, stopping = q.remaining(session)
    page = client.get("/dashboard").text
    assert "field_empty" in page and "field summary empty on source adaptecca_cases" in page
    assert estimate.expected is not None
    for text in (estimate.describe(), "method: yield curve", stopping.describe()):
        assert text in page
    queue = client.get("/queue").text
    assert 'class="remaining"' in queue and estimate.describe() in queue


def test_after_login_the_dashboard_is_the_landing_page(demo: tuple[Engine, DemoData, str]) -> None:
    with TestClient(create_app(demo[0]), follow_redirects=False) as c:
        assert c.get("/").headers["location"] == "/login?next=/"
        login = c.post("/login", data={"name": CURATOR, "password": PASSWORD})
        assert login.headers["location"] == "/dashboard"
        assert c.get("/").headers["location"] == "/dashboard"
        assert c.get("/sources").text.count('<a href="/sources/gcf_projects">gcf_projects</a>') == 1


def test_charts_need_login_and_unknown_ones_are_404(client: TestClient, demo: tuple[Engine, DemoData, str]) -> None:
    with TestClient(create_app(demo[0]), follow_redirects=False) as anonymous:
        assert anonymous.get("/charts/acceptance-rate.svg").status_code == 303
    assert client.get("/charts/nope.svg").status_code == 404
    assert client.get("/charts/acceptance-rate.gif").status_code == 404
    assert client.get("/sources/nope").status_code == 404
    assert client.get("/sources/nope/charts/run-counts.svg").status_code == 404
    assert client.get("/charts/acceptance-rate.png").content.startswith(PNG_MAGIC)


# ---- command line ------------------------------------------------------------------------------------


@pytest.fixture
def demo_env(demo: tuple[Engine, DemoData, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HARVESTER_DATABASE_URL", demo[2])
    get_settings.cache_clear()
    dispose_engines()
    yield
    get_settings.cache_clear()
    dispose_engines()


def test_runs_plot_writes_the_run_history(demo_env: None, demo: tuple[Engine, DemoData, str], tmp_path: Path) -> None:
    out = tmp_path / "runs.svg"
    result = CliRunner().invoke(cli, ["runs", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    root = svg_root(out.read_bytes())
    texts = {t.text for t in root.iter(f"{SVG_NS}text")}
    assert {"gcf_projects", "adaptecca_cases", "Crawl runs: records per run"} <= texts
    png = tmp_path / "runs.png"
    assert CliRunner().invoke(cli, ["runs", "--source", "gcf_projects", "--plot", str(png)]).exit_code == 0
    assert png.read_bytes().startswith(PNG_MAGIC)
    bad = CliRunner().invoke(cli, ["runs", "--plot", str(tmp_path / "runs.pdf")])
    assert bad.exit_code == 2 and "charts are written as .svg or .png" in bad.output
    assert not (tmp_path / "runs.pdf").exists()


def test_classify_eval_plot_writes_the_recall_curve(tmp_path: Path) -> None:
    from tests.test_classify_eval import TINY, write_jsonl

    path = write_jsonl(
        tmp_path / "tiny.jsonl",
        [{"id": i, "title": t, "text": x, "label": y, "lang": lang} for i, t, x, y, lang in TINY],
    )
    out = tmp_path / "recall.svg"
    result = CliRunner().invoke(
        cli, ["classify", "eval", str(path), "--simulate", "--step", "2", "--json", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    sim = json.loads(result.stdout)["simulation"]
    chart = simulation_chart(sim)
    assert [[x, y] for x, y in series(chart, "model, retrained every 2")] == sim["recall_curve"]
    assert series(chart, "random order (expected)") == [(0, 0.0), (10, 1.0)]
    texts = {t.text for t in svg_root(out.read_bytes()).iter(f"{SVG_NS}text")}
    assert {"records screened", "recall", "random order (expected)"} <= texts
    no_sim = CliRunner().invoke(cli, ["classify", "eval", str(path), "--plot", str(out)])
    assert no_sim.exit_code == 2 and "add --simulate" in no_sim.output
