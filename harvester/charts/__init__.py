"""Charts for operators and curators: data as ``Chart`` objects (``model``), drawn as SVG/PNG
(``render``), built from the database (``queries``)."""

from harvester.charts.model import Chart, Kind, Series
from harvester.charts.render import ChartFormatError, fmt_for, render

__all__ = ["Chart", "ChartFormatError", "Kind", "Series", "fmt_for", "render"]
