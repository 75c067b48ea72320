"""``harvester crawl`` and ``harvester demo``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from harvester.cli.output import print_table
from harvester.crawl.runner import CrawlOptions, run_crawls
from harvester.registry import SourceKind, get_source, load_registry


def latest_runs(source_ids: list[str], after_id: int) -> dict[str, dict]:
    from sqlalchemy import select

    from storage.db import session_factory
    from storage.models import CrawlRun

    with session_factory()() as session:
        rows = session.scalars(
            select(CrawlRun).where(CrawlRun.id > after_id, CrawlRun.source_id.in_(source_ids)).order_by(CrawlRun.id)
        ).all()
    return {r.source_id: {"run": r.id, "status": r.status, **(r.stats or {})} for r in rows}


def max_run_id(exclude_running: bool = False) -> int:
    """The newest run id; with ``exclude_running`` the newest ended one (a distributed worker may join a
    shared run that is already running)."""
    from sqlalchemy import func, select

    from storage.db import session_factory
    from storage.models import CrawlRun, RunStatus

    query = select(func.max(CrawlRun.id))
    if exclude_running:
        query = query.where(CrawlRun.status != RunStatus.RUNNING)
    with session_factory()() as session:
        return session.scalar(query) or 0


def run_workers(source_ids: list[str], options: CrawlOptions, workers: int) -> int:
    """Distributed mode: ``workers`` crawl processes on this machine share the crawl; the worst exit code."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return max(pool.map(lambda _: run_crawls(source_ids, options), range(workers)))


def crawl_and_report(source_ids: list[str], options: CrawlOptions, workers: int = 1) -> dict[str, dict]:
    from harvester.settings import get_settings
    from storage.db import get_engine, upgrade

    try:
        upgrade(get_engine())  # a configured SQLite file that does not exist is refused, not created
        before = max_run_id(exclude_running=bool(get_settings().redis_url))
    except SQLAlchemyError as exc:
        raise click.ClickException(f"the database fails, nothing crawled: {str(exc).splitlines()[0]}") from None
    code = run_crawls(source_ids, options) if workers == 1 else run_workers(source_ids, options, workers)
    try:
        results = latest_runs(source_ids, before)
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"crawl process exited with {code}; its runs cannot be read, the database fails: {str(exc).splitlines()[0]}"
        ) from None
    rows = [
        [
            sid,
            r.get("status"),
            r.get("requests"),
            r.get("pages_parsed", 0) + r.get("pages_not_modified", 0),
            r.get("new"),
            r.get("new_pending"),
            r.get("updated"),
            r.get("not_modified"),
            r.get("gone"),
            r.get("store_failed", 0),
            r.get("errors"),
        ]
        for sid, r in sorted(results.items())
    ]
    print_table(
        [
            "source",
            "status",
            "requests",
            "pages",
            "new",
            "pending",
            "updated",
            "not_modified",
            "gone",
            "not_stored",
            "errors",
        ],
        rows,
    )
    missing = [s for s in source_ids if s not in results]
    if code != 0:
        raise_alerts(source_ids)
    if code != 0 or missing:
        unrecorded = f"; no run recorded for {', '.join(missing)}" if missing else ""
        raise click.ClickException(f"crawl process exited with {code}{unrecorded}")
    unfinished = [
        f"{sid}: {r.get('incomplete') or r.get('status')}"
        for sid, r in sorted(results.items())
        if r.get("status") != "finished" or r.get("incomplete")
    ]
    if unfinished:
        raise click.ClickException("crawl did not complete: " + "; ".join(unfinished))
    return results


def raise_alerts(source_ids: list[str]) -> None:
    """After a failed crawl: the health checks of its sources, new alerts sent (when the database answers)."""
    from harvester.health.checks import check_sources
    from harvester.health.notify import deliver_new_alerts
    from storage.db import transaction

    try:
        with transaction() as session:
            for report in check_sources(session, source_ids):
                for alert in report.opened:
                    click.echo(f"alert on {report.source_id}: {alert.message}", err=True)
        deliver_new_alerts()
    except SQLAlchemyError as exc:
        click.echo(f"alerts not raised, the database fails: {str(exc).splitlines()[0]}", err=True)


@click.command()
@click.argument("source_ids", nargs=-1)
@click.option("--all", "crawl_all", is_flag=True, help="Crawl every enabled source.")
@click.option(
    "--replay",
    type=click.Path(path_type=Path, file_okay=False),
    help="Serve responses from the WARC files in DIR instead of the network.",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also write every response to a WARC file in DIR.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Distributed mode (HARVESTER_REDIS_URL): crawl processes on this machine sharing the crawl.",
)
def crawl(source_ids: tuple[str, ...], crawl_all: bool, replay: Path | None, record: Path | None, workers: int) -> None:
    """Crawl SOURCE... (registry ids) or --all, store candidates and print per-source run stats.

    With HARVESTER_REDIS_URL set, every crawl process of a source (this command on several machines, or
    --workers N here) shares one crawl: one queue, each URL fetched once, one run row."""
    from harvester.settings import get_settings

    if workers > 1 and not get_settings().redis_url:
        raise click.UsageError("--workers needs distributed mode: set HARVESTER_REDIS_URL")
    registry = load_registry()
    if crawl_all:
        ids = [s.id for s in registry.values() if s.enabled and s.kind != SourceKind.FILE]
    elif source_ids:
        ids = [get_source(s, registry).id for s in source_ids]
        files = [s for s in ids if registry[s].kind == SourceKind.FILE]
        if files:
            raise click.UsageError(
                f"{', '.join(files)}: a file source is imported, not crawled (harvester import {files[0]})"
            )
    else:
        raise click.UsageError("name at least one SOURCE or use --all")
    if replay and not replay.is_dir():
        raise click.UsageError(f"replay folder {replay} does not exist")
    crawl_and_report(ids, CrawlOptions(replay_dir=replay, record_dir=record), workers)


@click.command()
@click.option("--no-serve", is_flag=True, help="Stop after the summary instead of starting the review app.")
def demo(no_serve: bool) -> None:
    """Build the offline replay of every verified partner, crawl it into SQLite and summarise the queue."""
    from harvester.recordings.replay_build import build_replay
    from harvester.settings import get_settings

    settings = get_settings()
    specs = [s for s in load_registry().values() if s.verified and s.enabled]
    click.echo(
        f"building the replay of {len(specs)} verified partner sources in {settings.replay_cache_dir} ...", err=True
    )
    build_replay(specs, settings.replay_cache_dir)
    before = _last_run_id()
    crawl_and_report([s.id for s in specs], CrawlOptions(replay_dir=settings.replay_cache_dir, trigger="demo"))
    _import_partner_files()
    _draw_audit_samples(before, settings.audit_sample_size)
    _queue_summary()
    if not no_serve:
        _serve_demo()


def _import_partner_files() -> None:
    """The demo's second step: partner files (third-party dumps, unverified) imported as runs of their own."""
    from harvester.cli.import_cmds import IMPORT_COLUMNS, import_row, run_import

    specs = [
        s for s in load_registry().values() if s.kind == SourceKind.FILE and s.enabled and s.file and s.file.fixture
    ]
    click.echo(f"importing {len(specs)} partner files (third-party dumps, not replays: unverified) ...", err=True)
    rows = []
    for spec in specs:
        result = run_import(spec, (), None, complete=False)
        rows.append(import_row(spec.id, result.run_id, result.stats))
    print_table(IMPORT_COLUMNS, rows)


def _serve_demo() -> None:
    """Serve the review app; on a database without accounts, create a ``demo`` admin and print its password."""
    import secrets

    import uvicorn
    from sqlalchemy import func, select

    from harvester.web.app import create_app
    from harvester.web.auth import add_user
    from storage.db import transaction
    from storage.models import User

    with transaction() as session:
        if not session.scalar(select(func.count()).select_from(User)):
            password = secrets.token_urlsafe(12)
            add_user(session, "demo", "admin", password)
            click.echo(f"created review account demo / {password}", err=True)
    click.echo("review app on http://127.0.0.1:8000/ (Ctrl+C stops)", err=True)
    uvicorn.run(create_app(), host="127.0.0.1", port=8000, log_level="warning")


def _last_run_id() -> int:
    from sqlalchemy import func, select

    from storage.db import session_factory, upgrade
    from storage.models import CrawlRun

    upgrade()
    with session_factory()() as session:
        return session.scalar(select(func.max(CrawlRun.id))) or 0


def _draw_audit_samples(after_run_id: int, k: int) -> None:
    """As a scheduled crawl does: each finished run of this demo sends ``k`` of what it filtered to the queue."""
    from sqlalchemy import select

    from storage.audit import draw_sample
    from storage.db import transaction
    from storage.models import CrawlRun, RunStatus

    with transaction() as session:
        for run_id in session.scalars(
            select(CrawlRun.id).where(CrawlRun.id > after_run_id, CrawlRun.status == RunStatus.FINISHED.value)
        ):
            draw_sample(session, run_id, k)


def _queue_summary() -> None:
    from harvester.classify.routing import thresholds
    from storage.audit import recall_audit
    from storage.db import session_factory
    from storage.queue import count_by_source_status

    with session_factory()() as session:
        counts = count_by_source_status(session)
        audit = recall_audit(session)
    total_pending = sum(v for (_, st), v in counts.items() if st == "pending")
    total = sum(counts.values())
    registry = load_registry()
    origin = {
        s.id: "partner file" if s.kind == SourceKind.FILE else "replay" if s.verified else "crawl"
        for s in registry.values()
    }
    rows = [
        [
            source,
            origin.get(source, "?"),
            sum(v for (sid, _), v in counts.items() if sid == source),
            counts.get((source, "pending"), 0),
        ]
        for source in sorted({sid for sid, _ in counts})
    ]
    print_table(["source", "from", "candidates", "pending"], rows)
    t = thresholds()
    click.echo(
        f"queue: {total} candidates, {total_pending} pending review ({total_pending / max(total, 1):.0%}; "
        f"triage for {t.recall_target:.0%} recall excludes scores below {t.exclude_below:.3f})",
        file=sys.stdout,
    )
    click.echo(f"recall audit: {audit.sentence()}", file=sys.stdout)
