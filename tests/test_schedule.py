"""Scheduling: the adaptive recrawl interval, `schedule list`, missed firings caught up once, the
crawl-concurrency cap, and "already running" as a clean skip."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

import schedules.jobs as jobs
from harvester.cli import cli
from harvester.crawl.runner import CrawlOptions
from harvester.crawl.runs_extension import run_stats
from harvester.registry import SourceSpec, load_registry
from harvester.settings import get_settings
from schedules.adaptive import Bounds, Interval, RunOutcome, adaptive_interval, crawl_due
from schedules.jobs import ScheduleSettings, crawl_source, cron_period_hours, cron_trigger
from schedules.scheduler import add_catch_ups, build_scheduler, sync_jobs
from storage.db import dispose_engines, transaction, upgrade
from storage.models import Alert, AlertKind, CrawlRun, RunStatus, SchedulerJob
from storage.runs import ensure_source, finish_run, start_run

REGISTRY = Path(__file__).resolve().parent.parent / "harvester" / "sources"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
NIGHTLY = Bounds.for_source(24)


# -- the adaptive interval (pure) -------------------------------------------------------------------


def _runs(*specs: tuple[str, int] | tuple[str, int, int]) -> list[RunOutcome]:
    """(status, changed[, accepted]) per night, one day apart."""
    return [RunOutcome(s[0], T0 + timedelta(days=i), s[1], s[2] if len(s) > 2 else 0) for i, s in enumerate(specs)]


def test_a_source_never_crawled_uses_its_cron_period_and_is_due() -> None:
    interval = adaptive_interval([], NIGHTLY)
    assert interval.hours == 24
    assert crawl_due(interval, None, T0) == (True, "never crawled")


def test_quiet_runs_grow_the_interval_by_half_up_to_the_maximum() -> None:
    hours = [adaptive_interval(_runs(*[("finished", 0)] * n), NIGHTLY).hours for n in range(1, 7)]
    assert hours == [36, 54, 81, 121.5, 168, 168]
    assert (
        "nothing changed in the last 6 finished run(s)"
        in adaptive_interval(_runs(*[("finished", 0)] * 6), NIGHTLY).reason
    )


def test_changed_pages_shrink_the_interval_back_to_the_minimum() -> None:
    quiet = [("finished", 0)] * 4
    assert adaptive_interval(_runs(*quiet), NIGHTLY).hours == 121.5
    assert adaptive_interval(_runs(*quiet, ("finished", 7)), NIGHTLY).hours == 60.75
    shrunk = adaptive_interval(_runs(*quiet, ("finished", 7), ("finished", 3), ("finished", 1)), NIGHTLY)
    assert shrunk.hours == 24
    assert "1 changed record(s)" in shrunk.reason


def test_curator_acceptances_shrink_the_interval_even_when_pages_did_not_change() -> None:
    interval = adaptive_interval(_runs(("finished", 0), ("finished", 0), ("finished", 0, 2)), NIGHTLY)
    assert interval.hours == 27  # 24 -> 36 -> 54 -> 27
    assert "2 candidate(s) accepted by curators" in interval.reason


def test_registry_bounds_limit_the_interval() -> None:
    bounds = Bounds.for_source(6, min_hours=12, max_hours=48)
    assert adaptive_interval([], bounds).hours == 12
    assert adaptive_interval(_runs(*[("finished", 0)] * 10), bounds).hours == 48
    assert adaptive_interval(_runs(*[("finished", 5)] * 10), bounds).hours == 12


def test_repeated_failures_back_off_but_never_beyond_the_maximum() -> None:
    hours = [adaptive_interval(_runs(("finished", 3), *[("failed", 0)] * n), NIGHTLY) for n in range(1, 7)]
    assert [i.hours for i in hours] == [24, 48, 96, 168, 168, 168]
    assert hours[-1].failures == 6
    assert "never disabled" in hours[-1].reason
    assert crawl_due(hours[-1], T0, T0 + timedelta(days=7))[0]  # still crawled, once a week


def test_a_finished_run_after_failures_resumes_the_learned_interval() -> None:
    history = _runs(("finished", 0), ("finished", 0), ("interrupted", 0), ("failed", 0), ("finished", 0))
    assert adaptive_interval(history, NIGHTLY).hours == 81  # three quiet finished runs: 24*1.5^3


def test_a_nightly_firing_crawls_when_it_is_the_one_nearest_to_the_interval() -> None:
    nightly, every_54h = Interval(24, "x"), Interval(54, "grown")
    last = T0 + timedelta(minutes=3)  # the crawl started a little after its 02:00 firing
    assert crawl_due(nightly, last, T0 + timedelta(days=1), 24)[0]
    due, reason = crawl_due(every_54h, last, T0 + timedelta(days=1), 24)
    assert not due
    assert "adaptive interval 54 h (2.25 days) not yet elapsed" in reason and reason.endswith("grown")
    assert crawl_due(every_54h, last, T0 + timedelta(days=2), 24)[0]  # 48 h is nearer to 54 h than 72 h
    catch_up = T0 + timedelta(hours=7)  # crawled at 09:00 after a reboot: 02:00 next night still crawls
    assert crawl_due(nightly, catch_up, T0 + timedelta(days=1), 24)[0]
    every_36h = Interval(36, "grown")  # 36 h on a nightly cron: every other night, not every night
    assert [crawl_due(every_36h, last, T0 + timedelta(days=d), 24)[0] for d in (1, 2)] == [False, True]


@pytest.mark.parametrize(
    ("cron", "hours"), [("0 2 * * *", 24), ("0 */6 * * *", 6), ("30 3 * * 1", 168), ("0 2 * * 1,4", 72)]
)
def test_cron_period_is_the_shortest_gap_between_firings(cron: str, hours: float) -> None:
    assert cron_period_hours(cron) == hours


@pytest.mark.parametrize(
    ("cron", "weekdays"),
    [
        ("30 3 * * 1", {0}),
        ("0 2 * * 0", {6}),
        ("0 2 * * 7", {6}),
        ("0 2 * * 1-5", {0, 1, 2, 3, 4}),
        ("0 2 * * */3", {6, 2, 5}),
        ("0 2 * * fri-sun", {4, 5, 6}),
    ],
)
def test_registry_cron_weekdays_keep_their_crontab_meaning(cron: str, weekdays: set[int]) -> None:
    """APScheduler 3 reads crontab weekday numbers with 0 = Monday; the registry's 1 must stay Monday."""
    trigger, fire, seen = cron_trigger(cron), T0, set()
    for _ in range(14):
        fire = trigger.get_next_fire_time(None, fire + timedelta(minutes=1))
        seen.add(fire.weekday())
    assert seen == weekdays


def test_registry_rejects_a_minimum_above_the_maximum() -> None:
    data = yaml.safe_load((REGISTRY / "gcf_projects.yaml").read_text())
    SourceSpec.model_validate(
        data
        | {
            "min_interval_hours": 12,
            "max_interval_hours": 72,
            "omit_from_schedule": "partner asked for a pause until March",
        }
    )
    with pytest.raises(ValueError, match="min_interval_hours must not exceed max_interval_hours"):
        SourceSpec.model_validate(data | {"min_interval_hours": 96, "max_interval_hours": 48})


# -- fixtures: a registry folder of real entries, a fake crawl -----------------------------------------


@pytest.fixture
def registry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harvester_env: Path) -> Path:
    """Copies of real registry entries that tests may edit; the settings point at them."""
    folder = tmp_path / "sources"
    shutil.copytree(REGISTRY, folder)
    monkeypatch.setenv("HARVESTER_REGISTRY_DIR", str(folder))
    get_settings.cache_clear()
    jobs.schedule_settings.cache_clear()
    upgrade()
    yield folder
    jobs.schedule_settings.cache_clear()


def edit_entry(folder: Path, source_id: str, **changes: object) -> None:
    path = folder / f"{source_id}.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | changes, allow_unicode=True))


def keep_only(folder: Path, *source_ids: str) -> None:
    for path in folder.glob("*.yaml"):
        if path.stem not in source_ids:
            path.unlink()


class FakeCrawl:
    """Stands in for the crawl child process: records the call and writes a real finished run row."""

    def __init__(self, seconds: float = 0.0, write_run: bool = True) -> None:
        self.calls: list[tuple[list[str], str]] = []
        self.seconds, self.write_run = seconds, write_run
        self.active = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, source_ids: list[str], options: CrawlOptions) -> int:
        with self.lock:
            self.calls.append((list(source_ids), options.trigger))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.write_run:
                for source_id in source_ids:
                    with transaction() as session:
                        ensure_source(session, source_id, source_id, "api", True, True, "h")
                        run_id = start_run(session, source_id, options.trigger, replay=True).id
            time.sleep(self.seconds)
            if self.write_run:
                stats = run_stats(
                    {
                        "downloader/request_count": 1,
                        "item_scraped_count": 12,
                        "harvester/store/new": 12,
                        "downloader/response_status_count/200": 1,
                    }
                )
                with transaction() as session:
                    finish_run(session, run_id, RunStatus.FINISHED, "finished", stats)
            return 0
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def fake_crawl(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeCrawl]]:
    def install(**kwargs: object) -> FakeCrawl:
        fake = FakeCrawl(**kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(jobs, "CRAWL_RUNNER", fake)
        return fake

    yield install


def wait_for(condition: Callable[[], bool], timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def stored_jobs() -> dict[str, SchedulerJob]:
    with transaction() as session:
        return {j.id: j for j in session.scalars(select(SchedulerJob))}


def a_minute_away(now: datetime, minutes: int) -> str:
    """An hourly cron firing ``minutes`` from now: no firing falls inside a test's few seconds."""
    return f"{(now + timedelta(minutes=minutes)).minute} * * * *"


# -- schedule list ---------------------------------------------------------------------------------


def test_schedule_list_json_shows_every_scheduled_source_and_why_others_are_not(registry_dir: Path) -> None:
    edit_entry(registry_dir, "gef_projects", omit_from_schedule="GEF asked us to pause while they migrate the portal")
    edit_entry(registry_dir, "bhl_oai", schedule="15 3 * * 1", max_interval_hours=336)
    result = CliRunner().invoke(cli, ["schedule", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    registry = load_registry(registry_dir)
    crawl = {r["source"]: r for r in rows if r["kind"] == "crawl"}
    expected = {s.id for s in registry.values() if s.enabled and not s.omit_from_schedule}
    assert {sid for sid, r in crawl.items() if r["scheduled"]} == expected
    now = datetime.now(UTC)
    for sid in expected:
        row = crawl[sid]
        assert row["id"] == f"crawl:{sid}"
        assert datetime.fromisoformat(row["next_run_time"]) > now
        assert row["adaptive"]["crawls_at_next_run"] is True  # never crawled yet
    assert crawl["bhl_oai"]["schedule"] == "15 3 * * 1"
    assert datetime.fromisoformat(crawl["bhl_oai"]["next_run_time"]).weekday() == 0
    assert crawl["bhl_oai"]["adaptive"]["interval_hours"] == 168
    assert crawl["gef_projects"] | {"next_run_time": None} == crawl["gef_projects"]
    assert (crawl["gef_projects"]["scheduled"], crawl["gef_projects"]["omitted_reason"]) == (
        False,
        "GEF asked us to pause while they migrate the portal",
    )
    assert crawl["panorama_solutions"]["omitted_reason"].startswith("disabled in the registry")
    assert {r["id"] for r in rows if r["kind"] == "health"} == {"health_check"}
    [retrain] = [r for r in rows if r["kind"] == "retrain"]  # `harvester classify retrain` exists: weekly
    assert (retrain["id"], retrain["schedule"]) == ("classify_retrain", "0 4 * * 0")
    assert datetime.fromisoformat(retrain["next_run_time"]).weekday() == 6  # crontab 0 = Sunday
    assert stored_jobs() == {}  # listing builds and syncs the scheduler but never starts it

    table = CliRunner().invoke(cli, ["schedule", "list"])
    assert table.exit_code == 0, table.output
    assert "not scheduled: GEF asked us to pause while they migrate the portal" in table.output


def test_jobs_are_stored_by_reference_with_plain_string_args(registry_dir: Path) -> None:
    keep_only(registry_dir, "gcf_projects", "gef_projects")
    schedule = build_scheduler(background=True, settings=ScheduleSettings())
    sync_jobs(schedule, load_registry(registry_dir))
    schedule.scheduler.start(paused=True)
    schedule.scheduler.shutdown()
    stored = stored_jobs()
    assert {"crawl:gcf_projects", "crawl:gef_projects", "health_check"} <= set(stored)
    state = pickle.loads(stored["crawl:gcf_projects"].job_state)
    assert (state["func"], state["args"]) == ("schedules.jobs:crawl_source", ("gcf_projects",))
    assert (state["coalesce"], state["max_instances"], state["misfire_grace_time"]) == (True, 1, 12 * 3600)

    edit_entry(registry_dir, "gef_projects", omit_from_schedule="licence under review")
    schedule = build_scheduler(background=True, settings=ScheduleSettings())
    synced = sync_jobs(schedule, load_registry(registry_dir))
    assert synced.removed == ["crawl:gef_projects"]
    assert "crawl:gef_projects" not in stored_jobs()


# -- missed firings, concurrency ------------------------------------------------------------------


def _persist_missed_firing(registry_dir: Path, settings: ScheduleSettings, job_id: str, missed_at: datetime) -> None:
    """The scheduler ran, stored its jobs, then the machine went off before ``missed_at`` came."""
    schedule = build_scheduler(background=True, settings=settings)
    sync_jobs(schedule, load_registry(registry_dir))
    schedule.scheduler.start(paused=True)
    schedule.scheduler.modify_job(job_id, next_run_time=missed_at)
    schedule.scheduler.shutdown()


def test_a_firing_missed_while_the_machine_was_off_runs_exactly_once(
    registry_dir: Path, fake_crawl: Callable[..., FakeCrawl]
) -> None:
    fake = fake_crawl()
    now = datetime.now(UTC)
    keep_only(registry_dir, "gcf_projects", "gef_projects")
    edit_entry(registry_dir, "gcf_projects", schedule=a_minute_away(now, 30))  # hourly: 5 firings missed in 5 h
    settings = ScheduleSettings(misfire_grace_hours=6)
    _persist_missed_firing(registry_dir, settings, "crawl:gcf_projects", now - timedelta(hours=5))

    schedule = build_scheduler(background=True, settings=settings)  # the machine is back
    synced = sync_jobs(schedule, load_registry(registry_dir))
    kept = {plan.id: (when, was_kept) for plan, when, was_kept in synced.planned}
    assert kept["crawl:gcf_projects"][1] is True and kept["crawl:gcf_projects"][0] < now
    schedule.scheduler.start()
    try:
        assert wait_for(lambda: len(fake.calls) >= 1)
        time.sleep(1.0)  # room for any further (wrong) catch-up runs
    finally:
        schedule.scheduler.shutdown(wait=True)

    assert fake.calls == [(["gcf_projects"], "schedule")]
    job = stored_jobs()["crawl:gcf_projects"]
    assert job.next_run_time is not None and job.next_run_time > now.timestamp()
    with transaction() as session:
        runs = session.scalars(select(CrawlRun)).all()
    assert [(r.source_id, r.trigger, r.status) for r in runs] == [("gcf_projects", "schedule", "finished")]


def test_a_firing_missed_beyond_the_grace_is_skipped_with_an_alert(
    registry_dir: Path, fake_crawl: Callable[..., FakeCrawl]
) -> None:
    fake = fake_crawl()
    now = datetime.now(UTC)
    keep_only(registry_dir, "gcf_projects")
    missed = (now - timedelta(hours=3)).replace(second=0, microsecond=0)
    edit_entry(registry_dir, "gcf_projects", schedule=f"{missed.minute} {missed.hour} * * *")
    settings = ScheduleSettings(misfire_grace_hours=1)
    _persist_missed_firing(registry_dir, settings, "crawl:gcf_projects", missed)

    schedule = build_scheduler(background=True, settings=settings)
    sync_jobs(schedule, load_registry(registry_dir))
    schedule.scheduler.start()

    def missed_alert() -> list[Alert]:
        with transaction() as session:
            return list(session.scalars(select(Alert).where(Alert.kind == AlertKind.JOB_MISSED)))

    try:
        assert wait_for(lambda: bool(missed_alert()))
    finally:
        schedule.scheduler.shutdown(wait=True)
    assert fake.calls == []
    [alert] = missed_alert()
    assert (alert.source_id, alert.subject) == ("gcf_projects", "crawl:gcf_projects")
    assert "missed its run" in alert.message
    assert stored_jobs()["crawl:gcf_projects"].next_run_time > now.timestamp()  # tomorrow, not disabled


def test_no_more_crawls_run_at_once_than_the_worker_cap(
    registry_dir: Path, fake_crawl: Callable[..., FakeCrawl]
) -> None:
    fake = fake_crawl(seconds=0.6)
    now = datetime.now(UTC)
    sources = ("gcf_projects", "gef_projects", "elsa_undp", "dryad_oai")
    keep_only(registry_dir, *sources)
    for sid in sources:
        edit_entry(registry_dir, sid, schedule=a_minute_away(now, 30))
    settings = ScheduleSettings(max_workers=2)
    schedule = build_scheduler(background=True, settings=settings)
    sync_jobs(schedule, load_registry(registry_dir))
    schedule.scheduler.start(paused=True)
    for sid in sources:
        schedule.scheduler.modify_job(f"crawl:{sid}", next_run_time=now - timedelta(minutes=10))
    schedule.scheduler.resume()
    try:
        assert wait_for(lambda: len(fake.calls) == 4 and fake.active == 0)
    finally:
        schedule.scheduler.shutdown(wait=True)
    assert sorted(c[0][0] for c in fake.calls) == sorted(sources)
    assert fake.peak == 2


# -- the crawl job ----------------------------------------------------------------------------------


@pytest.fixture
def job_db(db_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """Point the job functions (which use the configured database) at the test database."""
    monkeypatch.setenv("HARVESTER_DATABASE_URL", db_engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("HARVESTER_REGISTRY_DIR", raising=False)
    get_settings.cache_clear()
    jobs.schedule_settings.cache_clear()
    dispose_engines()
    yield db_engine
    get_settings.cache_clear()
    dispose_engines()


def test_a_crawl_of_a_source_that_is_already_running_is_skipped_cleanly(
    job_db: Engine, fake_crawl: Callable[..., FakeCrawl], caplog: pytest.LogCaptureFixture
) -> None:
    fake = fake_crawl()
    with transaction(job_db) as session:
        ensure_source(session, "gcf_projects", "GCF", "api", True, True, "h")
        running = start_run(session, "gcf_projects", "cli", replay=False).id  # this (live) process holds it
    with caplog.at_level(logging.INFO, logger="harvester.schedule"):
        outcome = crawl_source("gcf_projects")
    assert outcome.startswith(f"skipped crawl of gcf_projects: run {running} is already running (pid {os.getpid()}")
    assert fake.calls == []
    assert outcome in caplog.text
    with transaction(job_db) as session:
        assert session.scalars(select(CrawlRun.status)).all() == ["running"]


def test_a_crawl_that_loses_the_run_lock_to_a_concurrent_crawl_is_skipped(
    job_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def manual_crawl_wins(source_ids: list[str], options: CrawlOptions) -> int:
        with transaction() as session:  # a `harvester crawl` started meanwhile; our child then found it locked
            ensure_source(session, source_ids[0], "GCF", "api", True, True, "h")
            start_run(session, source_ids[0], "cli", replay=False)
        return 0

    monkeypatch.setattr(jobs, "CRAWL_RUNNER", manual_crawl_wins)
    outcome = crawl_source("gcf_projects")
    assert "started meanwhile and holds the lock" in outcome


def _finished_run(engine: Engine, started: datetime, new: int = 0, not_modified: int = 209) -> None:
    with transaction(engine) as session:
        ensure_source(session, "gcf_projects", "GCF", "api", True, True, "h")
        run = start_run(session, "gcf_projects", "schedule", replay=False)
        finish_run(
            session,
            run.id,
            RunStatus.FINISHED,
            "finished",
            run_stats(
                {
                    "downloader/request_count": 1,
                    "item_scraped_count": 209,
                    "harvester/store/new": new,
                    "harvester/store/not_modified": not_modified,
                }
            ),
        )
        session.execute(update(CrawlRun).where(CrawlRun.id == run.id).values(started_at=started))


def test_a_cron_firing_before_the_adaptive_interval_elapsed_is_skipped_with_the_reason(
    job_db: Engine, fake_crawl: Callable[..., FakeCrawl], caplog: pytest.LogCaptureFixture
) -> None:
    fake = fake_crawl()
    now = datetime.now(UTC)
    _finished_run(job_db, now - timedelta(hours=50))
    _finished_run(job_db, now - timedelta(hours=26))  # two quiet nights: interval 54 h
    with caplog.at_level(logging.INFO, logger="harvester.schedule"):
        outcome = crawl_source("gcf_projects")
    assert "adaptive interval 54 h (2.25 days) not yet elapsed (next crawl after" in outcome
    assert "nothing changed in the last 2 finished run(s)" in outcome
    assert fake.calls == []
    assert outcome in caplog.text

    assert crawl_source("gcf_projects", "catch-up").startswith("crawled gcf_projects: run ")  # bypasses it
    assert fake.calls == [(["gcf_projects"], "schedule")]


def test_a_due_source_is_crawled_and_its_health_checked(job_db: Engine, fake_crawl: Callable[..., FakeCrawl]) -> None:
    fake = fake_crawl()
    _finished_run(job_db, datetime.now(UTC) - timedelta(hours=23, minutes=50), new=4, not_modified=205)
    outcome = crawl_source("gcf_projects")
    assert re.match(r"crawled gcf_projects: run \d+ finished(, |$)", outcome), outcome
    assert fake.calls == [(["gcf_projects"], "schedule")]
    with transaction(job_db) as session:  # 12 new records where 205 of 209 used to be unchanged: noticed
        kinds = session.scalars(select(Alert.kind).where(Alert.resolved_at.is_(None))).all()
    assert sorted(kinds) == [AlertKind.ITEM_COUNT_DROP, AlertKind.NOT_MODIFIED_COLLAPSE]


def test_omitted_and_disabled_sources_are_never_crawled_by_a_stale_job(
    registry_dir: Path, fake_crawl: Callable[..., FakeCrawl]
) -> None:
    fake = fake_crawl()
    edit_entry(registry_dir, "gcf_projects", omit_from_schedule="API key expired")
    assert crawl_source("gcf_projects") == "skipped crawl of gcf_projects: omitted from the schedule: API key expired"
    assert crawl_source("panorama_solutions") == "skipped crawl of panorama_solutions: disabled in the registry"
    assert fake.calls == []


def test_an_invalid_cron_fails_sources_check_and_schedule_list_in_one_line(registry_dir: Path) -> None:
    edit_entry(registry_dir, "gcf_projects", schedule="61 25 * * *")
    line = next(
        i
        for i, text in enumerate((registry_dir / "gcf_projects.yaml").read_text().splitlines(), 1)
        if text.startswith("schedule:")
    )
    for args in (["sources", "check"], ["schedule", "list"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.splitlines() == [
            "error: gcf_projects.yaml: schedule: Value error, '61 25 * * *': minute '61' is not valid (allowed "
            f"0-59) (line {line})"
        ]


def test_a_yaml_syntax_error_is_reported_with_its_line(registry_dir: Path) -> None:
    path = registry_dir / "bhl_oai.yaml"
    lines = path.read_text().splitlines()
    lines[3] = lines[3] + ": ["  # an unclosed flow sequence on line 4
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["sources", "check"])
    assert result.exit_code == 2
    assert re.fullmatch(r"error: bhl_oai\.yaml: cannot read: line \d+, column \d+: .+\n", result.output), result.output


def test_one_broken_registry_file_alerts_while_the_daemon_crawls_the_others(
    registry_dir: Path, fake_crawl: Callable[..., FakeCrawl]
) -> None:
    fake = fake_crawl()
    (registry_dir / "bhl_oai.yaml").write_text("id: bhl_oai\nkind: oai\nname: [unclosed\n")
    assert crawl_source("gcf_projects", "catch-up").startswith("crawled gcf_projects: run ")
    assert crawl_source("bhl_oai", "catch-up").startswith(
        "skipped crawl of bhl_oai: bhl_oai.yaml: cannot read: line 4, column 1:"
    )
    assert fake.calls == [(["gcf_projects"], "schedule")]
    with transaction() as session:
        [alert] = session.scalars(select(Alert).where(Alert.kind == AlertKind.REGISTRY_ERROR)).all()
        assert (alert.source_id, alert.resolved_at) == ("bhl_oai", None)

    shutil.copy(REGISTRY / "bhl_oai.yaml", registry_dir / "bhl_oai.yaml")  # fixed
    jobs.registry_now()
    with transaction() as session:
        assert session.scalars(select(Alert.resolved_at).where(Alert.kind == AlertKind.REGISTRY_ERROR)).one()


@pytest.mark.slow
def test_a_scheduled_crawl_runs_the_real_crawl_in_a_child_process(
    registry_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harvester.recordings.replay_build import build_replay

    replay = get_settings().replay_cache_dir
    build_replay([load_registry()["gcf_projects"]], replay)
    monkeypatch.setenv("HARVESTER_SCHEDULE_REPLAY_DIR", str(replay))
    monkeypatch.setenv("HARVESTER_ALLOW_PRIVATE_HOSTS", "1")
    jobs.schedule_settings.cache_clear()
    outcome = crawl_source("gcf_projects")
    assert re.match(r"crawled gcf_projects: run \d+ finished(, |$)", outcome), outcome
    with transaction() as session:
        run = session.scalars(select(CrawlRun)).one()
    assert (run.trigger, run.stats["new"]) == ("schedule", 209)
    assert run.stats["field_fill_candidates"] == 209
    assert run.stats["field_fill"]["title"] == 1.0
    assert 0.9 < run.stats["field_fill"]["countries"] <= 1.0


def test_every_schedule_setting_is_documented() -> None:
    readme = (REGISTRY.parents[1] / "README.md").read_text(encoding="utf-8")
    for name, field in ScheduleSettings.model_fields.items():
        assert field.description, f"schedule setting {name} has no help text"
        assert f"`HARVESTER_SCHEDULE_{name.upper()}`" in readme, f"HARVESTER_SCHEDULE_{name.upper()} not in README"


# -- real crawl children: the wall-clock limit, the run lock, a killed crawl ------------------------


class StallingServer:
    """Accepts connections on 127.0.0.1 and never answers: a crawl of it hangs until it is stopped."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.connections: list[socket.socket] = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/feed.xml"

    def _accept(self) -> None:
        while self.running:
            try:
                self.connections.append(self.sock.accept()[0])
            except TimeoutError:
                continue

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def stalling_source(registry: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A feed source on a server that never answers, limited to 22.5 s of wall-clock per crawl (a loaded
    machine may need several seconds just to start the crawl process)."""
    server = StallingServer()
    (registry / "stalling_feed.yaml").write_text(
        textwrap.dedent(f"""\
        id: stalling_feed
        name: A feed whose server never answers
        kind: feed
        start_urls: ["{server.url}"]
        verified: false
        verification: "local test server"
        schedule: "{a_minute_away(datetime.now(UTC), 30)}"
        max_run_minutes: 0.375
        politeness: {{download_delay: 0, autothrottle: false}}
        """),
        encoding="utf-8",
    )
    monkeypatch.setenv("HARVESTER_ALLOW_PRIVATE_HOSTS", "1")
    monkeypatch.setenv("HARVESTER_CRAWL_KILL_GRACE_SECONDS", "2")
    get_settings.cache_clear()
    jobs.schedule_settings.cache_clear()
    yield "stalling_feed"
    server.stop()
    jobs.schedule_settings.cache_clear()


def runs_of(source_id: str) -> list[CrawlRun]:
    with transaction() as session:
        return list(session.scalars(select(CrawlRun).where(CrawlRun.source_id == source_id).order_by(CrawlRun.id)))


@pytest.mark.slow
def test_a_due_crawl_runs_in_a_child_that_holds_the_lock_until_its_wall_clock_limit_stops_it(
    stalling_source: str, registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = build_scheduler(background=True, settings=ScheduleSettings())
    sync_jobs(schedule, load_registry(registry))
    job_id = f"crawl:{stalling_source}"
    with caplog.at_level(logging.INFO):
        schedule.scheduler.start(paused=True)
        schedule.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC) - timedelta(minutes=1))
        started = time.monotonic()
        schedule.scheduler.resume()
        try:
            assert wait_for(lambda: [r.status for r in runs_of(stalling_source)] == ["running"], timeout=22)
            [running] = runs_of(stalling_source)
            assert running.pid != os.getpid() and running.trigger == "schedule"  # a child process owns the run

            schedule.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))  # the scheduler fires again
            assert wait_for(lambda: "fired while its previous run is still going: skipped" in caplog.text)
            outcome = crawl_source(stalling_source)  # and another trigger, e.g. a second scheduler
            assert outcome.startswith(
                f"skipped crawl of {stalling_source}: run {running.id} is already running (pid {running.pid} "
            )
            assert outcome in caplog.text

            assert wait_for(lambda: runs_of(stalling_source)[0].status != "running", timeout=45)
            elapsed = time.monotonic() - started
        finally:
            schedule.scheduler.shutdown(wait=True)
    [run] = runs_of(stalling_source)
    assert run.status == "failed"
    assert re.fullmatch(r"wall-clock limit of 22.5 s exceeded \(SIG(TERM|KILL)\)", run.finish_reason or "")
    assert 22.5 <= elapsed < 22.5 + 2 + 20
    assert f"crawl process {running.pid} exceeded its wall-clock limit of 22.5 s: SIGTERM" in caplog.text
    with pytest.raises(ProcessLookupError):
        os.kill(running.pid, 0)  # the child is gone
    with transaction() as session:  # the lock is free: a new run of the source can start
        start_run(session, stalling_source, "cli", replay=False)


@pytest.mark.slow
def test_the_lock_of_a_killed_crawl_is_recovered_by_the_next_trigger(
    stalling_source: str, registry: Path, fake_crawl: Callable[..., FakeCrawl]
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "harvester.crawl", "--quiet", "--trigger", "schedule", stalling_source], process_group=0
    )
    try:
        assert wait_for(lambda: [r.status for r in runs_of(stalling_source)] == ["running"], timeout=60)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # kill -9: no chance to close the run row
        child.wait()
    [killed] = runs_of(stalling_source)
    assert (killed.status, killed.pid) == ("running", child.pid)

    schedule = build_scheduler(background=True, settings=ScheduleSettings())
    assert add_catch_ups(schedule, load_registry(registry)) == [stalling_source]  # the daemon would catch up once
    fake = fake_crawl()
    assert crawl_source(stalling_source, "catch-up").startswith(f"crawled {stalling_source}: run ")
    assert fake.calls == [([stalling_source], "schedule")]
    first, second = runs_of(stalling_source)
    assert (first.id, first.status, first.finish_reason) == (killed.id, "interrupted", "process gone")
    assert second.status == "finished"


def test_the_retrain_job_skips_without_enough_decisions_and_runs_no_child(
    harvester_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade()
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the retrain job must not start a child"))
    outcome = jobs.retrain_model()
    assert outcome.startswith("skipped: not enough curator decisions to train: 0 usable (0 accepted, 0 rejected)")
