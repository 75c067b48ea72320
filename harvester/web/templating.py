"""The Jinja2 template environment the page routes render with (``.html`` templates: autoescaped)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from harvester.web.explain import criterion_name

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["criterion_name"] = criterion_name
