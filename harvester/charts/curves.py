"""Charts of the command line: the simulated recall curve of ``classify eval`` and the run history of ``runs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harvester.charts.model import Chart
from harvester.charts.render import ChartFormatError, fmt_for, render


def simulation_chart(sim: Mapping[str, Any]) -> Chart:
    """Recall against records screened, with the line reading in random order would follow on average."""
    n = int(sim["n"])
    chart = Chart(
        f"Active-learning simulation: {sim['n_relevant']} relevant in {n} records (WSS@95 {sim['wss_95']:.3f})",
        "records screened",
        "recall",
        y_range=(0, 1.02),
    )
    found = chart.add_series(f"model, retrained every {sim['step']}")
    for read, recall in sim["recall_curve"]:
        found.add(int(read), float(recall))
    random = chart.add_series("random order (expected)", reference=True)
    random.add(0, 0.0)
    random.add(n, 1.0)
    return chart


def chart_path(_ctx: Any, _param: Any, value: Path | None) -> Path | None:
    """Click callback: a ``--plot`` file must end in .svg or .png (checked before any work is done)."""
    import click

    if value is not None:
        try:
            fmt_for(value.name)
        except ChartFormatError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def write_chart(chart: Chart, out: Path) -> int:
    """Write ``chart`` as SVG or PNG (by the file's suffix); the number of bytes written."""
    data = render(chart, fmt_for(out.name))
    out.write_bytes(data)
    return len(data)


def runs_history_chart(runs: Sequence[Any]) -> Chart:
    from harvester.charts.queries import runs_chart

    return runs_chart(sorted(runs, key=lambda r: r.id), "items", "Crawl runs: records per run", "records in the run")
