"""Build the APScheduler 3 scheduler on the harvester database and keep its jobs in step with the registry.

- Job store: ``SQLAlchemyJobStore`` on the harvester database (table ``apscheduler_jobs``, created by
  the Alembic migration; on SQLite the project engine's WAL + busy timeout + ``BEGIN IMMEDIATE``
  keep it from "database is locked"). One scheduler process per database (APScheduler FAQ).
- Job defaults: ``coalesce=True`` and ``max_instances=1`` with a misfire grace of hours, so a machine
  that was off at the scheduled hour crawls once when it comes back, never N times.
- Executors: crawls share a thread pool of ``max_workers`` threads (each thread waits on one crawl
  child process, so that is the cap on concurrent crawls); maintenance jobs have their own thread.
- Jobs are re-derived from the registry at every start with fixed ids (``crawl:<source>``,
  ``health_check``, ``classify_retrain``, ``chm_sync``). A job whose trigger did not change keeps its stored next
  run time, so a firing missed while the scheduler was down is still caught up.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, select

from harvester.registry import SourceSpec
from schedules.jobs import CATCH_UP, ScheduleSettings, aware, crawl_decision, cron_trigger, schedule_settings
from storage.models import AlertKind, CrawlRun, RunStatus

log = logging.getLogger("harvester.schedule")

JOBS_TABLE = "apscheduler_jobs"
CRAWL_PREFIX = "crawl:"
CATCH_UP_PREFIX = "catch-up:"
HEALTH_JOB = "health_check"
RETRAIN_JOB = "classify_retrain"
CHM_SYNC_JOB = "chm_sync"
CRAWL_FUNC = "schedules.jobs:crawl_source"
HEALTH_FUNC = "schedules.jobs:health_check"
RETRAIN_FUNC = "schedules.jobs:retrain_model"
CHM_SYNC_FUNC = "schedules.jobs:chm_sync"


class _KeepDueJobsOnShutdown:
    """APScheduler 3's main loop runs ``_process_jobs`` once more after ``shutdown()`` woke it: a job due
    at that moment is submitted to the stopped executor (fails) and its next run time is advanced anyway,
    so the firing is lost. Skipping that last pass leaves it due in the store for the next start."""

    state: int

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()  # type: ignore[misc]


class HarvesterBlockingScheduler(_KeepDueJobsOnShutdown, BlockingScheduler):
    pass


class HarvesterBackgroundScheduler(_KeepDueJobsOnShutdown, BackgroundScheduler):
    pass


@dataclass
class Schedule:
    scheduler: BaseScheduler
    jobstore: SQLAlchemyJobStore
    settings: ScheduleSettings


@dataclass(frozen=True)
class JobPlan:
    id: str
    kind: str
    func: str
    args: tuple[str, ...]
    trigger: BaseTrigger
    executor: str
    schedule: str
    source: str | None = None


@dataclass(frozen=True)
class Omitted:
    source: str
    schedule: str
    reason: str


@dataclass
class SyncResult:
    planned: list[tuple[JobPlan, datetime | None, bool]] = field(default_factory=list)  # plan, next run, kept
    omitted: list[Omitted] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)  # store jobs we do not manage (catch-ups)


def build_scheduler(
    engine: Engine | None = None, *, background: bool = False, settings: ScheduleSettings | None = None
) -> Schedule:
    """A configured, not yet started scheduler (blocking for the daemon, background for tests)."""
    from storage.db import get_engine

    settings = settings or schedule_settings()
    jobstore = SQLAlchemyJobStore(engine=engine or get_engine(), tablename=JOBS_TABLE)
    cls = HarvesterBackgroundScheduler if background else HarvesterBlockingScheduler
    scheduler = cls(
        jobstores={"default": jobstore},
        executors={"default": ThreadPoolExecutor(settings.max_workers), "maintenance": ThreadPoolExecutor(2)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(settings.misfire_grace_hours * 3600),
        },
        timezone=settings.timezone,
    )
    scheduler.add_listener(
        on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_EXECUTED | EVENT_JOB_MAX_INSTANCES
    )
    return Schedule(scheduler, jobstore, settings)


def plan_jobs(registry: dict[str, SourceSpec], settings: ScheduleSettings) -> tuple[list[JobPlan], list[Omitted]]:
    """The jobs the registry asks for, and the sources kept out of the schedule with the reason."""
    tz = settings.timezone
    plans, omitted = [], []
    for spec in registry.values():
        if not spec.enabled:
            omitted.append(Omitted(spec.id, spec.schedule, "disabled in the registry (enabled: false)"))
            continue
        if spec.omit_from_schedule:
            omitted.append(Omitted(spec.id, spec.schedule, spec.omit_from_schedule))
            continue
        try:
            trigger = cron_trigger(spec.schedule, tz)
        except ValueError as exc:
            omitted.append(Omitted(spec.id, spec.schedule, f"bad cron expression: {exc}"))
            continue
        plans.append(
            JobPlan(
                f"{CRAWL_PREFIX}{spec.id}", "crawl", CRAWL_FUNC, (spec.id,), trigger, "default", spec.schedule, spec.id
            )
        )
    plans.append(
        JobPlan(
            HEALTH_JOB,
            "health",
            HEALTH_FUNC,
            (),
            cron_trigger(settings.health_cron, tz),
            "maintenance",
            settings.health_cron,
        )
    )
    plans.append(
        JobPlan(
            RETRAIN_JOB,
            "retrain",
            RETRAIN_FUNC,
            (),
            cron_trigger(settings.retrain_cron, tz),
            "maintenance",
            settings.retrain_cron,
        )
    )
    plans.append(
        JobPlan(
            CHM_SYNC_JOB,
            "chm_sync",
            CHM_SYNC_FUNC,
            (),
            cron_trigger(settings.chm_sync_cron, tz),
            "maintenance",
            settings.chm_sync_cron,
        )
    )
    return plans, omitted


def _managed(job_id: str) -> bool:
    return job_id.startswith(CRAWL_PREFIX) or job_id in (HEALTH_JOB, RETRAIN_JOB, CHM_SYNC_JOB)


def sync_jobs(
    schedule: Schedule,
    registry: dict[str, SourceSpec],
    now: datetime | None = None,
    remove_stale: bool = True,
    keep: frozenset[str] = frozenset(),
) -> SyncResult:
    """Bring the scheduler's jobs in line with the registry (before or after the scheduler starts).

    Unchanged jobs keep their stored next run time (a missed firing stays missed-and-due); changed ones
    are replaced; crawl jobs of sources that left the schedule are removed from the store
    (``remove_stale``; ``schedule list`` only reports them), except those of the sources in ``keep``
    (a registry file that does not load: its job stays and skips with an alert until the file is fixed).
    """
    now = now or datetime.now(UTC)
    plans, omitted = plan_jobs(registry, schedule.settings)
    existing = {job.id: job for job in schedule.jobstore.get_all_jobs()}
    result = SyncResult(omitted=omitted)
    for plan in plans:
        old = existing.get(plan.id)
        kwargs: dict[str, Any] = {}
        kept = (
            old is not None
            and old.next_run_time is not None
            and repr(old.trigger) == repr(plan.trigger)
            and old.func_ref == plan.func
            and tuple(old.args) == plan.args
            and old.executor == plan.executor
        )
        next_run = old.next_run_time if kept else plan.trigger.get_next_fire_time(None, now)
        if kept:
            kwargs["next_run_time"] = old.next_run_time
        schedule.scheduler.add_job(
            plan.func,
            plan.trigger,
            args=list(plan.args),
            id=plan.id,
            name=plan.id,
            executor=plan.executor,
            replace_existing=True,
            **kwargs,
        )
        result.planned.append((plan, next_run, kept))
    wanted = {p.id for p in plans}
    for job_id, job in existing.items():
        if _managed(job_id) and job_id not in wanted:
            if job_id.partition(":")[2] in keep:
                continue
            if remove_stale:
                schedule.jobstore.remove_job(job_id)
                log.info("removed job %s: no longer in the schedule", job_id)
            result.removed.append(job_id)
        elif not _managed(job_id):
            result.other.append(job)
    return result


def add_catch_ups(schedule: Schedule, registry: dict[str, SourceSpec], now: datetime | None = None) -> list[str]:
    """Sources whose last run was interrupted (killed, machine off) get one catch-up crawl now."""
    from storage.db import transaction
    from storage.runs import recover_stale

    now = now or datetime.now(UTC)
    added = []
    with transaction() as session:
        for spec in registry.values():
            if not spec.enabled or spec.omit_from_schedule:
                continue
            recover_stale(session, spec.id)
            last = session.scalars(
                select(CrawlRun).where(CrawlRun.source_id == spec.id).order_by(CrawlRun.id.desc()).limit(1)
            ).first()
            if last is not None and last.status == RunStatus.INTERRUPTED:
                job_id = f"{CATCH_UP_PREFIX}{spec.id}"
                schedule.scheduler.add_job(
                    CRAWL_FUNC,
                    DateTrigger(now, timezone=UTC),
                    args=[spec.id, CATCH_UP],
                    id=job_id,
                    name=job_id,
                    replace_existing=True,
                )
                added.append(spec.id)
                log.info("catch-up crawl of %s: run %s was interrupted (%s)", spec.id, last.id, last.finish_reason)
    return added


def on_job_event(event: JobEvent) -> None:
    """Job errors and missed firings become alerts; the next successful execution resolves them."""
    from harvester.health.checks import Finding, open_alert, resolve_alerts
    from harvester.health.notify import deliver_new_alerts
    from storage.db import transaction

    job_id = event.job_id
    source = job_id.split(":", 1)[1] if ":" in job_id else "scheduler"
    if event.code == EVENT_JOB_MAX_INSTANCES:
        log.warning("job %s fired while its previous run is still going: skipped", job_id)
        return
    with transaction() as session:
        if event.code == EVENT_JOB_ERROR:
            message = f"job {job_id} failed: {event.exception}"  # type: ignore[attr-defined]
            open_alert(session, source, Finding(AlertKind.JOB_ERROR, message, None, subject=job_id))
        elif event.code == EVENT_JOB_MISSED:
            when = event.scheduled_run_time  # type: ignore[attr-defined]
            message = (
                f"job {job_id} missed its run at {when}: the scheduler was down longer than the misfire "
                "grace; it runs at its next firing"
            )
            open_alert(session, source, Finding(AlertKind.JOB_MISSED, message, None, subject=job_id))
        elif event.code == EVENT_JOB_EXECUTED:
            resolve_alerts(session, source, [AlertKind.JOB_ERROR, AlertKind.JOB_MISSED], subject=job_id)
    if event.code in (EVENT_JOB_ERROR, EVENT_JOB_MISSED):
        deliver_new_alerts()


def _note(next_run: datetime | None, now: datetime, grace_hours: float) -> str:
    if next_run is None:
        return "paused"
    late = now - next_run
    if late <= timedelta(0):
        return ""
    hours = late.total_seconds() / 3600
    if hours <= grace_hours:
        return f"overdue by {hours:.1f} h: runs once when the scheduler starts"
    return f"missed by {hours:.1f} h (beyond the {grace_hours:g} h grace): skipped until its next firing"


def schedule_rows(
    schedule: Schedule, synced: SyncResult, registry: dict[str, SourceSpec], now: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per job and per source kept out of the schedule (``harvester schedule list``)."""
    from storage.db import session_factory

    now = now or datetime.now(UTC)
    grace = schedule.settings.misfire_grace_hours
    rows: list[dict[str, Any]] = []
    with session_factory()() as session:
        for plan, next_run, kept in synced.planned:
            row: dict[str, Any] = {
                "id": plan.id,
                "kind": plan.kind,
                "source": plan.source,
                "schedule": plan.schedule,
                "timezone": schedule.settings.timezone,
                "scheduled": True,
                "omitted_reason": None,
                "next_run_time": aware(next_run),
                "note": _note(aware(next_run), now, grace),
                "stored": kept,
            }
            if plan.source and next_run is not None:
                decision = crawl_decision(
                    session, registry[plan.source], max(now, aware(next_run) or now), schedule.settings.timezone
                )
                row["adaptive"] = {
                    "interval_hours": round(decision.interval.hours, 2),
                    "reason": decision.interval.reason,
                    "crawls_at_next_run": decision.due,
                    "next_run_decision": decision.reason,
                    "last_run_started": decision.last_started,
                }
            rows.append(row)
    for job in synced.other:
        nxt = aware(job.next_run_time)
        source = job.args[0] if job.args else None
        rows.append(
            {
                "id": job.id,
                "kind": "catch-up" if job.id.startswith(CATCH_UP_PREFIX) else "other",
                "source": source,
                "schedule": str(job.trigger),
                "timezone": schedule.settings.timezone,
                "scheduled": True,
                "omitted_reason": None,
                "next_run_time": nxt,
                "note": _note(nxt, now, grace),
                "stored": True,
            }
        )
    for item in synced.omitted:
        rows.append(
            {
                "id": None,
                "kind": "crawl",
                "source": item.source,
                "schedule": item.schedule,
                "timezone": schedule.settings.timezone,
                "scheduled": False,
                "omitted_reason": item.reason,
                "next_run_time": None,
                "note": f"not scheduled: {item.reason}",
                "stored": False,
            }
        )
    return rows


def list_schedule(
    registry: dict[str, SourceSpec], engine: Engine | None = None, settings: ScheduleSettings | None = None
) -> list[dict[str, Any]]:
    """Build the scheduler on the job store, sync it with the registry and describe it; nothing starts
    and nothing is written (jobs added before ``start()`` stay pending and are dropped)."""
    schedule = build_scheduler(engine, background=True, settings=settings)
    synced = sync_jobs(schedule, registry, remove_stale=False)
    return schedule_rows(schedule, synced, registry)


def run_daemon(
    registry: dict[str, SourceSpec], settings: ScheduleSettings | None = None, broken: frozenset[str] = frozenset()
) -> None:
    """``harvester schedule run``: sync, queue catch-ups, then run jobs until SIGINT/SIGTERM. ``broken``:
    sources whose registry file does not load (their jobs are kept; they skip with an alert)."""
    schedule = build_scheduler(settings=settings)
    synced = sync_jobs(schedule, registry, keep=broken)
    catch_ups = add_catch_ups(schedule, registry)
    log.info(
        "scheduler: %d job(s), %d source(s) not scheduled, %d catch-up crawl(s), up to %d concurrent crawls",
        len(synced.planned),
        len(synced.omitted),
        len(catch_ups),
        schedule.settings.max_workers,
    )

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping the scheduler (running crawls finish on their own)", signum)
        schedule.scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    schedule.scheduler.start()
