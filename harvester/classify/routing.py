"""Triage by score for a recall target: include, postpone or exclude.

The score is the calibrated probability that a curator accepts (``harvester.classify.zero_shot``),
so the thresholds come from the calibration rather than a fixed number:

- **exclude** below the score that keeps ``HARVESTER_RECALL_TARGET`` (default 0.95) of the relevant
  records of the calibration set above it (their out-of-fold probabilities, recorded by
  ``python -m bench.fit_zero_shot``): such a candidate is kept as ``filtered`` (screened out:
  visible, filterable, reversible by a curator, audited by sampling), never dropped;
- **include** at or above 0.5: more likely accepted than not;
- **postpone** in between: in the queue (``pending``), after the includes.

``HARVESTER_PENDING_THRESHOLD`` in the environment (or the Scrapy setting of the same name) still
overrides the exclusion threshold with a fixed score. One function, ``pending_threshold``, for the
crawl, ``harvester classify rescore`` and the app.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

ENV_VAR = "HARVESTER_PENDING_THRESHOLD"
PENDING, FILTERED = "pending", "filtered"
INCLUDE, POSTPONE, EXCLUDE = "include", "postpone", "exclude"
INCLUDE_FROM = 0.5


class ThresholdError(ValueError):
    """A threshold or recall target that is not a number between 0 and 1."""


@dataclass(frozen=True)
class Thresholds:
    recall_target: float
    exclude_below: float
    include_from: float
    source: str  # "calibration" or the override's name

    def triage(self, score: float | None) -> str:
        s = score or 0.0
        return (
            INCLUDE
            if s >= max(self.include_from, self.exclude_below)
            else POSTPONE
            if s >= self.exclude_below
            else EXCLUDE
        )

    def as_dict(self) -> dict[str, float | str]:
        return {
            "recall_target": self.recall_target,
            "exclude_below": self.exclude_below,
            "include_from": self.include_from,
            "source": self.source,
        }


def recall_threshold(recall_target: float, relevant_percentiles: list[float]) -> float:
    """The score above which ``recall_target`` of the calibration set's relevant records lie."""
    if not 0.0 < recall_target < 1.0:
        raise ThresholdError(f"recall target {recall_target!r} is not a number between 0 and 1")
    return float(np.interp(100.0 * (1.0 - recall_target), np.arange(len(relevant_percentiles)), relevant_percentiles))


def thresholds(recall_target: float | None = None, override: float | str | None = None) -> Thresholds:
    """Include/postpone/exclude thresholds for ``recall_target`` (default: the setting); ``override``
    (else ``HARVESTER_PENDING_THRESHOLD`` from the environment) replaces the exclusion threshold."""
    from harvester.classify.zero_shot import calibration
    from harvester.settings import get_settings

    target = get_settings().recall_target if recall_target is None else recall_target
    raw = os.environ.get(ENV_VAR, "").strip() or override
    if raw is not None and str(raw).strip():
        return Thresholds(target, _fraction(raw), INCLUDE_FROM, ENV_VAR)
    return Thresholds(
        target,
        round(recall_threshold(target, calibration().meta["relevant_percentiles"]), 4),
        INCLUDE_FROM,
        "calibration",
    )


def pending_threshold(override: float | str | None = None) -> float:
    """The score at or above which a candidate goes to the queue: see ``thresholds``."""
    return thresholds(override=override).exclude_below


def _fraction(raw: float | str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ThresholdError(f"{ENV_VAR}={raw!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ThresholdError(f"{ENV_VAR}={raw!r} is not a number between 0 and 1")
    return value


def route(score: float | None, threshold: float) -> str:
    return PENDING if (score or 0.0) >= threshold else FILTERED
