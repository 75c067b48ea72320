"""The jobs APScheduler runs. Each is a module-level function referenced by text
(``schedules.jobs:crawl_source``) with plain-string args: APScheduler 3 deletes a persisted job it
cannot unpickle, so nothing else goes into the job store.

A crawl job spawns the crawl as its own child process (``harvester.crawl.runner.run_crawls``), treats
"the source already has a running crawl" as a clean skip, honours the adaptive recrawl interval,
and ends with the source's health check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from harvester.crawl.runner import CrawlOptions
from harvester.health.checks import Finding, check_source, check_sources, open_alert, resolve_alerts
from harvester.health.notify import deliver_new_alerts
from harvester.registry import SourceSpec, load_registry_partly
from schedules.adaptive import Bounds, Interval, RunOutcome, adaptive_interval, crawl_due
from storage.db import session_factory, transaction
from storage.models import AlertKind, Candidate, CandidateStatus, CrawlRun, Decision, RunStatus
from storage.runs import recover_stale

log = logging.getLogger("harvester.schedule")

CATCH_UP = "catch-up"
HISTORY_RUNS = 20


class ScheduleSettings(BaseSettings):
    """``HARVESTER_SCHEDULE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HARVESTER_SCHEDULE_", extra="ignore")

    max_workers: int = Field(default=2, ge=1, description="Crawls that may run at the same time.")
    misfire_grace_hours: float = Field(
        default=12,
        gt=0,
        description="A firing missed while the scheduler was down still runs (once) if it "
        "comes back within this many hours.",
    )
    timezone: str = Field(default="UTC", description="Time zone of the registry cron expressions.")
    health_cron: str = Field(default="30 7 * * *", description="When the daily source-health check runs.")
    retrain_cron: str = Field(default="0 4 * * 0", description="When `classify retrain` runs (weekly).")
    chm_sync_cron: str = Field(
        default="0 7 * * *",
        description="When the CHM sync runs (after the nightly "
        "crawls): export every accepted candidate, and push when CHM credentials are set.",
    )
    replay_dir: Path | None = Field(default=None, description="Scheduled crawls replay WARCs from here (demo).")
    crawl_log_level: str = Field(default="WARNING", description="Log level of the crawl child processes.")


@lru_cache(maxsize=1)
def schedule_settings() -> ScheduleSettings:
    return ScheduleSettings()


CrawlRunner = Callable[[list[str], CrawlOptions], int]
#: Hook: when set, crawl jobs call this instead of ``harvester.crawl.runner.run_crawls`` (tests, dry runs).
CRAWL_RUNNER: CrawlRunner | None = None


def _runner() -> CrawlRunner:
    if CRAWL_RUNNER is not None:
        return CRAWL_RUNNER
    from harvester.crawl.runner import run_crawls

    return run_crawls


def aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# -- adaptive interval, from the database -----------------------------------------------------------

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_day(token: str) -> int:
    token = token.strip().lower()
    if token[:3] in DAYS:
        return DAYS.index(token[:3])
    day = int(token)
    if not 0 <= day <= 7:
        raise ValueError(f"day of week {token!r} is not 0-7 or sun-sat")
    return day


def standard_days_of_week(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as APScheduler day names.

    APScheduler 3's ``CronTrigger.from_crontab`` reads the numbers with 0 = Monday (its issue #286),
    so ``30 3 * * 1`` would fire on Tuesdays; expanding to names keeps the standard meaning."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            low, high = (_cron_day(t) for t in span.split("-", 1))
            high = 7 if high == 0 and low > 0 else high  # "fri-sun"
        else:
            low = _cron_day(span)
            high = 6 if step_text else low
        if high < low or step < 1:
            raise ValueError(f"bad day-of-week range {part!r}")
        days.update(d % 7 for d in range(low, high + 1, step))
    return "*" if len(days) == 7 else ",".join(DAYS[d] for d in sorted(days))


def cron_trigger(expression: str, timezone: str = "UTC") -> Any:
    """An APScheduler ``CronTrigger`` for a standard 5-field crontab expression."""
    from apscheduler.triggers.cron import CronTrigger

    values = expression.split()
    if len(values) != 5:
        raise ValueError(f"{expression!r} is not a 5-field cron expression")
    minute, hour, day, month, dow = values
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=standard_days_of_week(dow), timezone=timezone
    )


def cron_period_hours(expression: str, timezone: str = "UTC") -> float:
    """The shortest gap between consecutive firings of a cron expression (over a sample of firings)."""
    trigger = cron_trigger(expression, timezone)
    fire = trigger.get_next_fire_time(None, datetime(2026, 1, 5, tzinfo=UTC))
    gaps = []
    for _ in range(16):
        if fire is None:
            break
        nxt = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if nxt is None:
            break
        gaps.append((nxt - fire).total_seconds() / 3600)
        fire = nxt
    return min(gaps) if gaps else 24.0


def bounds_for(spec: SourceSpec, timezone: str = "UTC") -> Bounds:
    return Bounds.for_source(
        cron_period_hours(spec.schedule, timezone), spec.min_interval_hours, spec.max_interval_hours
    )


def load_history(session: Session, source_id: str, limit: int = HISTORY_RUNS) -> list[RunOutcome]:
    """The source's last terminal runs, oldest first, with changes seen and curator acceptances that
    followed each (acceptances between a run's start and the next run's start count for that run)."""
    runs = list(
        reversed(
            session.scalars(
                select(CrawlRun)
                .where(
                    CrawlRun.source_id == source_id,
                    CrawlRun.status.in_([RunStatus.FINISHED, RunStatus.FAILED, RunStatus.INTERRUPTED]),
                )
                .order_by(CrawlRun.id.desc())
                .limit(limit)
            ).all()
        )
    )
    if not runs:
        return []
    starts = [aware(r.started_at) or datetime.now(UTC) for r in runs]
    accepted_at = [
        aware(at)
        for at in session.scalars(
            select(Decision.at)
            .join(Candidate, Candidate.id == Decision.candidate_id)
            .where(
                Candidate.source_id == source_id,
                Decision.to_status == CandidateStatus.ACCEPTED,
                Decision.at >= starts[0],
            )
        )
    ]
    history = []
    for i, run in enumerate(runs):
        end = starts[i + 1] if i + 1 < len(runs) else None
        accepted = sum(1 for at in accepted_at if at is not None and at >= starts[i] and (end is None or at < end))
        stats = run.stats or {}
        changed = sum(int(stats.get(k, 0) or 0) for k in ("new", "updated", "gone"))
        history.append(RunOutcome(status=run.status, started_at=starts[i], changed=changed, accepted=accepted))
    return history


@dataclass(frozen=True)
class CrawlDecision:
    due: bool
    reason: str
    interval: Interval
    last_started: datetime | None


def crawl_decision(session: Session, spec: SourceSpec, now: datetime, timezone: str = "UTC") -> CrawlDecision:
    history = load_history(session, spec.id)
    bounds = bounds_for(spec, timezone)
    interval = adaptive_interval(history, bounds)
    last = history[-1].started_at if history else None
    due, reason = crawl_due(interval, last, now, bounds.base_hours)
    return CrawlDecision(due, reason, interval, last)


# -- jobs --------------------------------------------------------------------------------------------


def _running_run(session: Session, source_id: str) -> CrawlRun | None:
    return session.scalars(
        select(CrawlRun).where(CrawlRun.source_id == source_id, CrawlRun.status == RunStatus.RUNNING)
    ).first()


def _skip(source_id: str, why: str) -> str:
    message = f"skipped crawl of {source_id}: {why}"
    log.info(message)
    return message


def registry_now() -> tuple[dict[str, SourceSpec], dict[str, str]]:
    """The registry as it loads now, and the files that do not: each of those gets a ``registry_error``
    alert (logged and sent), resolved once the file loads again."""
    specs, broken = load_registry_partly()
    with transaction() as session:
        for source_id, error in broken.items():
            alert, new = open_alert(
                session,
                source_id,
                Finding(
                    AlertKind.REGISTRY_ERROR,
                    f"registry file of {source_id} does not load, not crawled: {error}",
                    None,
                    details={"error": error},
                ),
            )
            if new:
                log.error("%s", alert.message)
        for source_id in specs:
            resolve_alerts(session, source_id, [AlertKind.REGISTRY_ERROR])
    if broken:
        deliver_new_alerts()
    return specs, broken


def crawl_source(source_id: str, reason: str = "cron") -> str:
    """Crawl one source in a child process, unless it is already running, omitted, or not yet due.

    ``reason`` is ``cron`` (a schedule firing: the adaptive interval decides) or ``catch-up`` (a run
    that was interrupted: crawl regardless of the interval). Returns a one-line outcome.
    """
    settings = schedule_settings()
    now = datetime.now(UTC)
    specs, broken = registry_now()
    if source_id in broken:
        log.warning("skipped crawl of %s: %s", source_id, broken[source_id])
        return f"skipped crawl of {source_id}: {broken[source_id]}"
    spec = specs.get(source_id)
    if spec is None:
        return _skip(source_id, f"unknown source {source_id!r}: no longer in the registry")
    if not spec.enabled:
        return _skip(source_id, "disabled in the registry")
    if spec.omit_from_schedule:
        return _skip(source_id, f"omitted from the schedule: {spec.omit_from_schedule}")

    with transaction() as session:
        recover_stale(session, source_id)
        running = _running_run(session, source_id)
        if running is not None:
            return _skip(
                source_id,
                f"run {running.id} is already running (pid {running.pid} on {running.host}, "
                f"started {aware(running.started_at)})",
            )
        before = session.scalar(select(func.max(CrawlRun.id))) or 0
        if reason != CATCH_UP:
            decision = crawl_decision(session, spec, now, settings.timezone)
            if not decision.due:
                return _skip(source_id, decision.reason)

    options = CrawlOptions(
        replay_dir=settings.replay_dir, trigger="schedule", log_level=settings.crawl_log_level, progress=False
    )
    log.info("crawling %s (%s)", source_id, reason)
    code = _runner()([source_id], options)

    with session_factory()() as session:
        run = session.scalars(
            select(CrawlRun)
            .where(CrawlRun.source_id == source_id, CrawlRun.id > before, CrawlRun.trigger == options.trigger)
            .order_by(CrawlRun.id)
        ).first()
        other = _running_run(session, source_id) if run is None else None
    if run is None and other is not None:  # lost the race for the run lock to a crawl started meanwhile
        return _skip(source_id, f"run {other.id} started meanwhile and holds the lock")

    with transaction() as session:
        report = check_source(session, source_id)
        for alert in report.opened:
            log.warning("alert on %s: %s", source_id, alert.message)
    deliver_new_alerts()
    if run is None:
        raise RuntimeError(f"crawl of {source_id} exited with code {code} and recorded no run")
    outcome = f"crawled {source_id}: run {run.id} {run.status}"
    if run.status == RunStatus.FINISHED:
        from harvester.settings import get_settings
        from storage.audit import draw_sample

        with transaction() as session:
            sampled = draw_sample(session, run.id, get_settings().audit_sample_size)
        outcome += f", {len(sampled)} filtered candidate(s) sent to the queue as recall-audit samples"
    (log.info if run.status == RunStatus.FINISHED else log.warning)(outcome)
    return outcome


def health_check() -> str:
    """Check every registered source (and any source with runs) and bring the alerts up to date."""
    specs, broken = registry_now()
    ids = set(specs) | set(broken)
    with transaction() as session:
        ids |= set(session.scalars(select(CrawlRun.source_id).distinct()))
        reports = check_sources(session, sorted(ids))
        for report in reports:
            for alert in report.opened:
                log.warning("alert on %s: %s", report.source_id, alert.message)
        opened = sum(len(r.opened) for r in reports)
        still = sum(len(r.still_open) for r in reports)
        resolved = sum(len(r.resolved) for r in reports)
    deliver_new_alerts()
    outcome = f"health check of {len(ids)} sources: {opened} new alert(s), {still} still open, {resolved} resolved"
    log.info(outcome)
    return outcome


def retrain_model() -> str:
    """Train a new model version on the curators' decisions (``storage.model_store.retrain``); too few
    decisions yet is a skip, not a fault: the rules or the previous model keep ranking."""
    from storage.model_store import NotEnoughDecisions, retrain

    try:
        row = retrain()
    except NotEnoughDecisions as exc:
        log.info("classify retrain skipped: %s", exc)
        return f"skipped: {exc}"
    log.info("classify retrain finished: model %s on %d decisions", row.version, row.n_train)
    return f"retrained: {row.version}"


def chm_sync() -> str:
    """The CHM sync after the nightly crawls (``harvester.chm.sync``): export, and push when configured."""
    from harvester.chm import sync

    summary = sync()
    log.info("chm sync finished: %s", summary)
    return ", ".join(f"{step}: {result}" for step, result in summary.items())
