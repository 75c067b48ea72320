"""``harvester sources list|check|test|new|health``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harvester.cli.output import json_option, print_json, print_table
from harvester.registry import SourceSpec, load_registry


def politeness_summary(spec: SourceSpec) -> dict[str, Any]:
    """The effective politeness of a source: project defaults with the entry's overrides."""
    from harvester.crawl import settings as defaults

    over = spec.politeness.scrapy_settings()
    return {
        "robots_txt": over.get("ROBOTSTXT_OBEY", defaults.ROBOTSTXT_OBEY),
        "user_agent": defaults.USER_AGENT,
        "download_delay_s": over.get("DOWNLOAD_DELAY", defaults.DOWNLOAD_DELAY),
        "concurrent_requests_per_host": over.get(
            "CONCURRENT_REQUESTS_PER_DOMAIN", defaults.CONCURRENT_REQUESTS_PER_DOMAIN
        ),
        "autothrottle": over.get("AUTOTHROTTLE_ENABLED", defaults.AUTOTHROTTLE_ENABLED),
        "crawl_delay_cap_s": over.get("HARVESTER_CRAWL_DELAY_CAP", defaults.HARVESTER_CRAWL_DELAY_CAP),
        "download_timeout_s": defaults.DOWNLOAD_TIMEOUT,
        "max_download_bytes": defaults.DOWNLOAD_MAXSIZE,
        "warn_download_bytes": defaults.DOWNLOAD_WARNSIZE,
        "max_redirects": defaults.REDIRECT_MAX_TIMES,
    }


def would_crawl(spec: SourceSpec) -> str:
    if spec.kind == "oai" and spec.oai:
        start = spec.oai.from_date or "the repository's earliestDatestamp (Identify)"
        window = f"from {start} until {spec.oai.until or 'now'}, then from the last harvested window's end"
        return f"ListRecords {spec.oai.metadata_prefix} {window} in {spec.oai.window_days}-day windows"
    if spec.kind == "export" and spec.export:
        return f"one {spec.export.format.upper()} file, a candidate per row keyed by {spec.record.key}"
    if spec.kind == "file" and spec.file:
        return (
            f"nothing: imports {spec.file.fixture or 'a given file'} ({spec.file.format.upper()}), a candidate per "
            f"record keyed by {spec.record.key}"
        )
    if spec.kind == "api" and spec.api:
        return f"JSON records, pagination {spec.api.pagination.type}"
    if spec.kind == "listing":
        links = spec.listing.item_links if spec.listing and spec.listing.item_links else "links found by their shape"
        return f"listing pages -> detail pages ({links})"
    if spec.kind == "page":
        return f"{len(spec.start_urls)} record page(s)"
    return f"{spec.kind} entries"


@click.group()
def sources() -> None:
    """The source registry."""


@sources.command("list")
@json_option
def sources_list(as_json: bool) -> None:
    """List registered sources with kind, verification and schedule."""
    registry = load_registry()
    rows = [
        {
            "id": s.id,
            "name": s.name,
            "kind": s.kind.value,
            "verified": s.verified,
            "enabled": s.enabled,
            "schedule": s.schedule,
            "start_urls": s.start_urls,
            "verification": s.verification,
        }
        for s in registry.values()
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ["id", "kind", "verified", "enabled", "schedule", "name"],
        [[r["id"], r["kind"], "yes" if r["verified"] else "NO", r["enabled"], r["schedule"], r["name"]] for r in rows],
    )


@sources.command("check")
@json_option
def sources_check(as_json: bool) -> None:
    """Validate the registry and show, per source, what a crawl would fetch and how politely."""
    registry = load_registry()
    report = [
        {
            "id": s.id,
            "kind": s.kind.value,
            "verified": s.verified,
            "verification": s.verification,
            "hosts": s.hosts,
            "start_urls": s.start_urls,
            "would_crawl": would_crawl(s),
            "politeness": politeness_summary(s),
        }
        for s in registry.values()
    ]
    if as_json:
        print_json(report)
        return
    for entry in report:
        flag = "verified" if entry["verified"] else "UNVERIFIED"
        click.echo(f"{entry['id']} ({entry['kind']}, {flag}): {entry['would_crawl']}")
        click.echo(f"  hosts: {', '.join(entry['hosts'])}")
        p = entry["politeness"]
        click.echo(
            f"  politeness: robots.txt {'obeyed' if p['robots_txt'] else 'IGNORED'}, "
            f"delay {p['download_delay_s']} s, {p['concurrent_requests_per_host']} request(s) per host, "
            f"autothrottle {'on' if p['autothrottle'] else 'off'}, Crawl-delay cap {p['crawl_delay_cap_s']} s, "
            f"timeout {p['download_timeout_s']:g} s, max {p['max_download_bytes']} bytes, "
            f"{p['max_redirects']} redirects"
        )
        if not entry["verified"]:
            click.echo(f"  not verified: {entry['verification']}")
    click.echo(f"{len(report)} sources valid")


@sources.command("test")
@click.argument("source_ids", nargs=-1)
@click.option(
    "--update", is_flag=True, help="Rewrite the expected outputs from what is extracted now (then review the diff)."
)
def sources_test(source_ids: tuple[str, ...], update: bool) -> None:
    """Replay each source's recorded captures and compare every field with its expected output."""
    from harvester.crawl.source_check import check_source
    from harvester.registry import get_source

    registry = load_registry()
    specs = [get_source(s, registry) for s in source_ids] if source_ids else [s for s in registry.values() if s.replay]
    failed = False
    for spec in specs:
        tally = check_source(spec, update=update)
        fields = sorted(set(tally.right) | set(tally.wrong) | set(tally.missing))
        click.echo(f"{spec.id}: {'ok' if tally.ok and not tally.problems else 'REGRESSION'}")
        print_table(
            ["field", "right", "wrong", "missing"],
            [[f, tally.right[f], tally.wrong[f], tally.missing[f]] for f in fields],
        )
        for problem in tally.problems[:20]:
            click.echo(f"  {problem}")
        failed |= not tally.ok or bool(tally.problems)
    if failed:
        raise SystemExit(1)


@sources.command("new")
@click.argument("url")
@click.option("--id", "source_id", help="Registry id (default: from the host name).")
@click.option("--name", help="Human name of the source (default: the host name).")
@click.option(
    "--replay",
    "replay",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Saved responses instead of the network: a WARC file, or the start page's bare body "
    "(repeatable; with a WARC the linked pages in it are sampled too).",
)
@click.option(
    "--page",
    "pages",
    multiple=True,
    type=(str, click.Path(exists=True, dir_okay=False, path_type=Path)),
    help="URL FILE: a saved linked page (repeatable), with --replay.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write <id>.yaml into (default: the registry folder).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing entry file.")
def sources_new(
    url: str,
    source_id: str | None,
    name: str | None,
    replay: tuple[Path, ...],
    pages: tuple[tuple[str, Path], ...],
    out_dir: Path | None,
    force: bool,
) -> None:
    """Fetch (or replay) URL and a few pages it links to and write a proposed registry entry, with the
    fields found and where as comments; review it, then `harvester extract` / `sources test` use it."""
    from harvester.crawl.offline import SavedResponseError, read_saved
    from harvester.crawl.source_new import SourceProposalError, fetch, propose, replay_ref
    from harvester.settings import get_settings

    settings = get_settings()
    try:
        saved = {}
        refs: list[tuple[str, str]] = []
        for path in replay:
            for recorded in read_saved(path, url):
                saved.setdefault(recorded.url, recorded)
            if (ref := replay_ref(path)) and not path.name.endswith((".warc", ".warc.gz")):
                refs.append((ref, url))
        for page_url, path in pages:
            saved[page_url] = read_saved(path, page_url)[0]
            if ref := replay_ref(path):
                refs.append((ref, page_url))
        start = saved.get(url) or (None if replay else fetch(url, settings.user_agent))
        if start is None:
            raise click.ClickException(f"{url} is not among the replayed responses")
        proposal = propose(
            url,
            start,
            saved,
            source_id,
            name,
            refs or None,
            fetch_page=None if replay else (lambda u: fetch(u, settings.user_agent)),
        )
    except (SavedResponseError, SourceProposalError) as exc:
        raise click.ClickException(str(exc)) from None
    folder = out_dir or settings.registry_dir
    target = folder / f"{proposal.spec.id}.yaml"
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; choose another --id or pass --force")
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(proposal.yaml(), encoding="utf-8")
    click.echo(
        f"wrote {target} ({proposal.spec.kind.value}, {len(proposal.pages)} sampled page(s)); review it, then "
        f"`harvester extract --source {proposal.spec.id} ...`"
        + (f" or `harvester sources test {proposal.spec.id} --update`" if proposal.spec.replay else "")
    )


@sources.command("health")
@click.option("--source", "source_id", help="Only this source id.")
@click.option("--check", is_flag=True, help="Run the health checks now (as the daily job does) before showing.")
@click.option("--resolved", is_flag=True, help="Also show resolved alerts.")
@json_option
def sources_health(source_id: str | None, check: bool, resolved: bool, as_json: bool) -> None:
    """Source health: open alerts (zero items, error spikes, count drops, empty fields, stuck runs...)."""
    from sqlalchemy import select

    from harvester.health.checks import alert_json, alerts, check_sources
    from storage.db import session_factory, transaction, upgrade
    from storage.models import CrawlRun

    upgrade()
    registry = load_registry()
    with session_factory()() as session:
        ids = sorted(set(registry) | set(session.scalars(select(CrawlRun.source_id).distinct())))
    ids = [source_id] if source_id else ids
    if check:
        with transaction() as session:
            check_sources(session, ids)
    with session_factory()() as session:
        rows = [alert_json(a) for a in alerts(session, source_id, include_resolved=resolved)]
        last = {
            sid: session.scalars(
                select(CrawlRun).where(CrawlRun.source_id == sid).order_by(CrawlRun.id.desc()).limit(1)
            ).first()
            for sid in ids
        }
        report = [
            {
                "source": sid,
                "status": "alert" if any(r["source"] == sid and not r["resolved"] for r in rows) else "ok",
                "last_run": {
                    "id": run.id,
                    "status": run.status,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                }
                if (run := last[sid])
                else None,
                "alerts": [r for r in rows if r["source"] == sid],
            }
            for sid in ids
        ]
    report += [
        {"source": sid, "status": "alert", "last_run": None, "alerts": [r for r in rows if r["source"] == sid]}
        for sid in sorted({r["source"] for r in rows} - set(ids))
    ]  # scheduler-level alerts
    if as_json:
        print_json(report)
        return
    table = []
    for entry in report:
        run = entry["last_run"]
        for alert in entry["alerts"] or [None]:
            state = "ok" if alert is None else ("resolved" if alert["resolved"] else "ALERT")
            table.append(
                [
                    entry["source"],
                    state,
                    f"{run['id']} {run['status']}" if run else "-",
                    str(alert["created"])[:16] if alert else "",
                    alert["message"] if alert else "",
                ]
            )
    print_table(["source", "status", "last run", "since", "alert"], table)
    open_count = sum(1 for r in rows if not r["resolved"])
    click.echo(f"{open_count} open alert(s) on {sum(1 for e in report if e['status'] == 'alert')} source(s)")
