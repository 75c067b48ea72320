"""What a chart shows, independent of how it is drawn: named series of (x, y) points.

The same object is rendered as SVG/PNG (``harvester.charts.render``) and written as CSV, so the
numbers behind every picture are one click away and always the ones drawn.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

X = float | int | str | datetime


class Kind(StrEnum):
    LINE = "line"  # points joined in x order; x numeric or datetime
    STEP = "step"  # a value that holds until the next x (queue sizes, histograms as outlines)
    BAR = "bar"  # grouped bars over categorical x


@dataclass
class Series:
    name: str
    x: list[X] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    reference: bool = False  # a baseline to compare with (random screening): drawn thin, not data

    def add(self, x: X, y: float) -> None:
        self.x.append(x)
        self.y.append(y)


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    kind: Kind = Kind.LINE
    series: list[Series] = field(default_factory=list)
    y_range: tuple[float, float] | None = None
    note: str = ""  # shown under the chart on the page (method, caveats)

    def add_series(self, name: str, reference: bool = False) -> Series:
        series = Series(name, reference=reference)
        self.series.append(series)
        return series

    @property
    def points(self) -> int:
        """Data points drawn, baselines not counted: a chart with 0 shows no data."""
        return sum(len(s.x) for s in self.series if not s.reference)

    def to_csv(self) -> str:
        """Long format, one drawn point a row: ``series,x,y``."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["series", self.x_label, self.y_label])
        for s in self.series:
            for x, y in zip(s.x, s.y, strict=True):
                writer.writerow([s.name, x.isoformat() if isinstance(x, datetime) else x, _num(y)])
        return out.getvalue()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
