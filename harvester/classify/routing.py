"""Routing by score: at or above the pending threshold a candidate goes to the review queue as
``pending``; below it, it is kept as ``filtered`` (screened out: visible, filterable, reversible by
a curator), never dropped. One setting for the crawl and for ``harvester classify rescore``:
``HARVESTER_PENDING_THRESHOLD`` in the environment, else the Scrapy setting of the same name.
"""

from __future__ import annotations

import os

DEFAULT_PENDING_THRESHOLD = 0.35
ENV_VAR = "HARVESTER_PENDING_THRESHOLD"
PENDING, FILTERED = "pending", "filtered"


class ThresholdError(ValueError):
    """A threshold that is not a number between 0 and 1."""


def pending_threshold(default: float | None = None) -> float:
    """The environment's ``HARVESTER_PENDING_THRESHOLD`` if set, else ``default`` (else 0.35)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_PENDING_THRESHOLD if default is None else default
    try:
        value = float(raw)
    except ValueError:
        raise ThresholdError(f"{ENV_VAR}={raw!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ThresholdError(f"{ENV_VAR}={raw!r} is not a number between 0 and 1")
    return value


def route(score: float | None, threshold: float) -> str:
    return PENDING if (score or 0.0) >= threshold else FILTERED
