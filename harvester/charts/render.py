"""Charts drawn with matplotlib's object API (no pyplot, no GUI backend) into SVG or PNG bytes.

Colours are the Okabe-Ito palette (readable with every common colour-vision deficiency) and every
series also differs by marker and dash pattern, so no reading depends on colour alone.
"""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta
from itertools import cycle
from typing import Any

from harvester.charts.model import Chart, Kind, Series

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
REFERENCE_COLOUR = "#777777"
FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "chm-harvester",
    "font.size": 9,
    "axes.titlesize": 10,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


_RC_LOCK = threading.Lock()  # rc_context changes process-wide settings: one chart at a time (web threads)


class ChartFormatError(ValueError):
    """An output format other than SVG or PNG."""


def fmt_for(name: str) -> str:
    """``svg`` or ``png`` from a file name or format name."""
    fmt = name.rsplit(".", 1)[-1].lower()
    if fmt not in FORMATS:
        raise ChartFormatError(f"{name}: charts are written as .svg or .png")
    return fmt


def render(chart: Chart, fmt: str = "svg", size: tuple[float, float] = (7.0, 3.4)) -> bytes:
    """The chart as SVG or PNG bytes; a chart without data says so in its frame. The SVG holds no script
    and no external reference; its text is escaped by matplotlib."""
    import matplotlib
    from matplotlib.figure import Figure

    fmt = fmt_for(fmt)
    with _RC_LOCK, matplotlib.rc_context(RC):
        fig = Figure(figsize=size, dpi=100, layout="constrained")
        ax = fig.add_subplot()
        ax.set_title(chart.title, loc="left")
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        if chart.points == 0:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="#555555")
            ax.set_xticks([])
            ax.set_yticks([])
        elif chart.kind is Kind.BAR:
            _bars(ax, chart.series)
        else:
            _lines(ax, chart)
        if chart.y_range:
            ax.set_ylim(*chart.y_range)
        if chart.points and (len(chart.series) > 1 or chart.series[0].reference):
            ax.legend(fontsize=8, frameon=False, loc="best")
        ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata=_metadata(fmt))
    return buf.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    return {"Date": None, "Creator": "CHM Harvester"} if fmt == "svg" else {"Software": "CHM Harvester"}


def _lines(ax: Any, chart: Chart) -> None:
    styles = cycle(zip(OKABE_ITO, MARKERS, DASHES * 2, strict=True))
    for s in chart.series:
        if s.reference:
            ax.plot(s.x, s.y, color=REFERENCE_COLOUR, linestyle=(0, (4, 3)), linewidth=1, label=s.name)
            continue
        colour, marker, dash = next(styles)
        many = len(s.x) > 40
        if chart.kind is Kind.STEP:
            xs, ys = _closed(s)
            ax.step(xs, ys, where="post", color=colour, linestyle=dash, linewidth=1.6, label=s.name)
        else:
            ax.plot(
                s.x,
                s.y,
                color=colour,
                linestyle=dash,
                marker=marker,
                markersize=3 if many else 5,
                markevery=max(1, len(s.x) // 20),
                linewidth=1.6,
                label=s.name,
            )
    xs = [x for s in chart.series for x in s.x]
    if any(isinstance(x, datetime) for x in xs):
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        if len(set(xs)) == 1:  # one model version, one run: a day either side, not years
            ax.set_xlim(xs[0] - timedelta(days=1), xs[0] + timedelta(days=1))
    elif all(isinstance(x, int) for x in xs):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _closed(s: Series) -> tuple[list[Any], list[float]]:
    """A numeric step series (histogram bins by their start) drawn to the end of its last bin."""
    if len(s.x) < 2 or not all(isinstance(x, int | float) for x in s.x[-2:]):
        return s.x, s.y
    return [*s.x, s.x[-1] + (s.x[-1] - s.x[-2])], [*s.y, s.y[-1]]


def _bars(ax: Any, series: list[Series]) -> None:
    categories = list(dict.fromkeys(str(x) for s in series for x in s.x))
    width = 0.8 / max(len(series), 1)
    for i, (s, colour, hatch) in enumerate(zip(series, cycle(OKABE_ITO), cycle(HATCHES), strict=False)):
        values = dict(zip((str(x) for x in s.x), s.y, strict=True))
        xs = [c + i * width - 0.4 + width / 2 for c in range(len(categories))]
        bars = ax.bar(
            xs,
            [values.get(c, 0.0) for c in categories],
            width=width,
            color=colour,
            hatch=hatch,
            edgecolor="#333333",
            linewidth=0.5,
            label=s.name,
        )
        ax.bar_label(bars, fmt="%.2g", fontsize=8)
    ax.set_xticks(
        range(len(categories)),
        categories,
        rotation=30 if len(categories) > 4 else 0,
        ha="right" if len(categories) > 4 else "center",
    )
