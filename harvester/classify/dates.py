"""Parse the candidate's ISO dates (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, optional time part).

A partial date is a period; ``earliest`` gives its first day and ``latest`` its last day, so an end
date of ``2009`` counts as over only after 2009-12-31 and a start date of ``2019-05`` as started on
2019-05-01. Anything else (free text, impossible dates) parses to ``None``.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

_ISO = re.compile(r"\s*(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?(?:[T ][0-9:.+\-Z]*)?\s*")


def _parts(value: str | None) -> tuple[int, int | None, int | None] | None:
    if not value or not isinstance(value, str):
        return None
    m = _ISO.fullmatch(value[:40])
    if not m:
        return None
    year = int(m.group(1))
    month = int(m.group(2)) if m.group(2) else None
    day = int(m.group(3)) if m.group(3) else None
    if not 1000 <= year <= 2999 or (month is not None and not 1 <= month <= 12):
        return None
    if day is not None:
        assert month is not None
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            return None
    return year, month, day


def earliest(value: str | None) -> date | None:
    parts = _parts(value)
    if parts is None:
        return None
    year, month, day = parts
    return date(year, month or 1, day or 1)


def latest(value: str | None) -> date | None:
    parts = _parts(value)
    if parts is None:
        return None
    year, month, day = parts
    month = month or 12
    return date(year, month, day or calendar.monthrange(year, month)[1])
