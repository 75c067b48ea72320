"""Adaptive recrawl: how long to wait before crawling a source again, from its own run history.

Pure functions, no database: ``adaptive_interval`` replays a source's recent runs and returns the
interval with the reason for it; ``crawl_due`` says whether a cron firing should actually crawl.

- A run that found changes (new, updated or gone records) or whose candidates curators went on to
  accept halves the interval, down to the source's minimum.
- A run that found nothing new grows it by half, up to the maximum.
- Failed or interrupted runs do not move that interval; a streak of them backs off (cron period x
  2^(streak-1), capped at the maximum) so a broken partner is retried ever less often but never
  silently disabled: the longest wait is the maximum interval, and health monitoring raises a
  ``repeated_failures`` alert meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

SHRINK = 0.5
GROW = 1.5
SLACK = 0.1  # without a cron period: a firing crawls once 90% of the interval has passed
DEFAULT_MAX_HOURS = 7 * 24.0


@dataclass(frozen=True)
class RunOutcome:
    """What the interval logic needs to know about one finished, failed or interrupted run."""

    status: str
    started_at: datetime
    changed: int = 0
    accepted: int = 0


@dataclass(frozen=True)
class Bounds:
    """The cron period of the source's schedule and the registry's min/max interval, in hours."""

    base_hours: float
    min_hours: float
    max_hours: float

    @classmethod
    def for_source(cls, base_hours: float, min_hours: float | None = None, max_hours: float | None = None) -> Bounds:
        low = min_hours if min_hours is not None else base_hours
        high = max_hours if max_hours is not None else max(DEFAULT_MAX_HOURS, base_hours)
        return cls(base_hours=base_hours, min_hours=low, max_hours=max(low, high))

    def clamp(self, hours: float) -> float:
        return min(self.max_hours, max(self.min_hours, hours))


@dataclass(frozen=True)
class Interval:
    hours: float
    reason: str
    failures: int = 0


def _h(hours: float) -> str:
    return f"{hours:g} h" if hours < 48 else f"{hours:g} h ({hours / 24:.3g} days)"


def adaptive_interval(history: Sequence[RunOutcome], bounds: Bounds) -> Interval:
    """The wait after the last run of ``history`` (oldest first) before the next crawl."""
    hours = bounds.clamp(bounds.base_hours)
    reason = f"no finished run yet: cron period {_h(hours)}"
    quiet = failures = 0
    for run in history:
        if run.status != "finished":
            failures += 1
            continue
        failures = 0
        if run.changed > 0 or run.accepted > 0:
            quiet = 0
            hours = bounds.clamp(hours * SHRINK)
            what = ", ".join(
                part
                for part in (
                    f"{run.changed} changed record(s)" if run.changed else "",
                    f"{run.accepted} candidate(s) accepted by curators" if run.accepted else "",
                )
                if part
            )
            reason = f"last finished run saw {what}: interval shrunk to {_h(hours)}"
        else:
            quiet += 1
            hours = bounds.clamp(hours * GROW)
            reason = f"nothing changed in the last {quiet} finished run(s): interval grown to {_h(hours)}"
    if failures:
        backoff = bounds.clamp(bounds.base_hours * 2 ** (failures - 1))
        capped = " (the cap: retried at least this often, never disabled)" if backoff >= bounds.max_hours else ""
        return Interval(
            backoff, f"{failures} failed or interrupted run(s) in a row: backing off to {_h(backoff)}{capped}", failures
        )
    return Interval(hours, reason)


def crawl_due(
    interval: Interval, last_started: datetime | None, now: datetime, period_hours: float | None = None
) -> tuple[bool, str]:
    """Whether a cron firing at ``now`` should crawl, given when the last run started.

    With the cron period known, a firing crawls when it is the firing nearest to "last start +
    interval" (more than interval - period/2 has elapsed): a nightly source on a 54 h interval is
    crawled every second night, and one crawled by a catch-up at 09:00 still runs at 02:00 next
    night. Without it, 90% of the interval must have elapsed.
    """
    if last_started is None:
        return True, "never crawled"
    elapsed = now - last_started
    needed = timedelta(hours=interval.hours - period_hours / 2 if period_hours else interval.hours * (1 - SLACK))
    since = f"{elapsed.total_seconds() / 3600:.1f} h since the last run started"
    if elapsed > needed:
        return True, f"{since}, interval {_h(interval.hours)}"
    return False, (
        f"{since}, adaptive interval {_h(interval.hours)} not yet elapsed "
        f"(next crawl after {(last_started + needed).isoformat(timespec='minutes')}): {interval.reason}"
    )
