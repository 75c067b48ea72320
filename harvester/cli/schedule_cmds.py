"""``harvester schedule run|list``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

from harvester.cli.output import json_option, print_json, print_table

if TYPE_CHECKING:
    from schedules.jobs import ScheduleSettings


@click.group()
def schedule() -> None:
    """Scheduled crawls (registry cron + adaptive interval), health checks and retraining."""


def _settings(max_workers: int | None, misfire_grace_hours: float | None) -> ScheduleSettings:
    from schedules.jobs import schedule_settings

    settings = schedule_settings()
    over = {
        k: v for k, v in (("max_workers", max_workers), ("misfire_grace_hours", misfire_grace_hours)) if v is not None
    }
    return settings.model_copy(update=over) if over else settings


@schedule.command("run")
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    help="Crawls that may run at the same time [default: HARVESTER_SCHEDULE_MAX_WORKERS or 2].",
)
@click.option(
    "--misfire-grace-hours",
    type=click.FloatRange(min=0, min_open=True),
    help="Catch up a firing missed by at most this many hours [default: HARVESTER_SCHEDULE_MISFIRE_GRACE_HOURS or 12].",
)
@click.option(
    "--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])
)
def schedule_run(max_workers: int | None, misfire_grace_hours: float | None, log_level: str) -> None:
    """Run the scheduler daemon in the foreground until SIGINT/SIGTERM (one per database).

    Each source is crawled in its own child process on its registry cron, when its adaptive
    interval has elapsed; a daily job checks source health. Jobs persist in the database.
    """
    from schedules.jobs import registry_now
    from schedules.scheduler import run_daemon
    from storage.db import upgrade

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_level != "DEBUG":  # their start-up chatter, not the schedule's
        for name in ("alembic", "apscheduler.scheduler"):
            logging.getLogger(name).setLevel(logging.WARNING)
    upgrade()
    specs, broken = registry_now()  # a broken registry file is an alert, not a daemon that will not start
    run_daemon(specs, _settings(max_workers, misfire_grace_hours), frozenset(broken))


@schedule.command("list")
@json_option
def schedule_list(as_json: bool) -> None:
    """Show every job with its next run time, and the sources kept out of the schedule with the reason."""
    from harvester.registry import load_registry
    from schedules.scheduler import list_schedule
    from storage.db import upgrade

    upgrade()
    rows = list_schedule(load_registry(), settings=_settings(None, None))
    if as_json:
        print_json(rows)
        return
    table = []
    for r in rows:
        adaptive = r.get("adaptive") or {}
        when = r["next_run_time"].isoformat(timespec="minutes") if r["next_run_time"] else "-"
        if adaptive:
            detail = f"every {adaptive['interval_hours']:g} h; " + (
                "crawls then" if adaptive["crawls_at_next_run"] else "skips then: interval not elapsed"
            )
        else:
            detail = r["note"]
        if r["note"] and adaptive:
            detail = f"{r['note']}; {detail}"
        table.append([r["id"] or "(not scheduled)", r["source"] or "", r["schedule"], when, detail])
    print_table(["job", "source", "cron", "next run", "detail"], table)


# -- over-harvest quarantine: `harvester runs quarantined|release|discard` (attached to the `runs` group) --


@click.command("quarantined")
@click.option("--all", "include_decided", is_flag=True, help="Also runs already released or discarded.")
@json_option
def runs_quarantined(include_decided: bool, as_json: bool) -> None:
    """List runs held in over-harvest quarantine, with why and how many candidates they hold."""
    from harvester.health.quarantine import quarantine_runs
    from storage.db import session_factory

    with session_factory()() as session:
        rows = quarantine_runs(session, include_decided)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["run", "source", "state", "new", "held", "why"],
        [
            [r["run"], r["source"], r["state"], r["new"], r["held_candidates"], r["details"].get("reason", "")]
            for r in rows
        ],
    )


def _quarantine_decision(run_id: int, actor: str, release: bool) -> None:
    from harvester.health.quarantine import Admin, QuarantineError, discard_run, release_run
    from storage.db import transaction

    try:
        with transaction() as session:
            count = (release_run if release else discard_run)(session, run_id, Admin(actor))
    except QuarantineError as exc:
        raise click.ClickException(str(exc)) from None
    if release:
        click.echo(f"run {run_id} released: {count} candidate(s) entered the queue as they would have")
    else:
        click.echo(f"run {run_id} discarded: {count} candidate(s) kept as filtered, out of the queue")


@click.command("release")
@click.argument("run_id", type=int)
@click.option("--as", "actor", default="cli-admin", show_default=True, help="Name recorded in the audit.")
def runs_release(run_id: int, actor: str) -> None:
    """Release a quarantined run: its candidates enter the queue (pending or filtered, as scored)."""
    _quarantine_decision(run_id, actor, release=True)


@click.command("discard")
@click.argument("run_id", type=int)
@click.option("--as", "actor", default="cli-admin", show_default=True, help="Name recorded in the audit.")
def runs_discard(run_id: int, actor: str) -> None:
    """Discard a quarantined run: its candidates are kept as filtered (out of the queue), audited."""
    _quarantine_decision(run_id, actor, release=False)


RUNS_QUARANTINE_COMMANDS = (runs_quarantined, runs_release, runs_discard)
