"""``harvester queue`` and ``harvester runs``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harvester.charts.curves import chart_path
from harvester.cli.output import json_option, print_json, print_table
from harvester.cli.schedule_cmds import RUNS_QUARANTINE_COMMANDS
from storage.models import CandidateStatus


@click.command()
@click.option("--status", type=click.Choice([s.value for s in CandidateStatus]), help="Only this status.")
@click.option("--source", "source_id", help="Only this source id.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many (0 = all).")
@json_option
def queue(status: str | None, source_id: str | None, limit: int, as_json: bool) -> None:
    """List candidates ranked by relevance score."""
    from storage.db import session_factory
    from storage.queue import QueueFilter, candidate_json, search_candidates

    with session_factory()() as session:
        rows, _ = search_candidates(session, QueueFilter(status=status, source_id=source_id), limit=limit or None)
        data = [candidate_json(c) for c in rows]
    if as_json:
        print_json(data)
        return
    print_table(
        ["id", "score", "status", "source", "lang", "countries", "title"],
        [
            [
                d["id"],
                f"{d['score']:.2f}" if d["score"] is not None else "",
                d["status"],
                d["source"],
                d["language"],
                ",".join(d["countries"][:4]),
                (d["title"] or "")[:70],
            ]
            for d in data
        ],
    )


@click.group(invoke_without_command=True)
@click.option("--source", "source_id", help="Only this source id.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=chart_path,
    help="Also draw the run history (records per run, per source) into this .svg or .png file.",
)
@json_option
@click.pass_context
def runs(ctx: click.Context, source_id: str | None, limit: int, plot: Path | None, as_json: bool) -> None:
    """List crawl runs, newest first, with their stats; subcommands review over-harvest quarantine."""
    if ctx.invoked_subcommand is not None:
        return
    from storage.db import session_factory
    from storage.runs import list_runs

    with session_factory()() as session:
        rows = list_runs(session, source_id, limit)
        data = [
            {
                "id": r.id,
                "source": r.source_id,
                "trigger": r.trigger,
                "status": r.status,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "finish_reason": r.finish_reason,
                "replay": r.replay,
                "stats": r.stats,
            }
            for r in rows
        ]
        if plot is not None:
            from harvester.charts.curves import runs_history_chart, write_chart

            size = write_chart(runs_history_chart(rows), plot)
            click.echo(f"wrote {plot} ({size} bytes, {len(rows)} runs)", err=True)
    if as_json:
        print_json(data)
        return
    print_table(
        ["id", "source", "status", "trigger", "started", "items", "new", "not_modified", "errors", "left out (reason)"],
        [
            [
                d["id"],
                d["source"],
                d["status"],
                d["trigger"],
                str(d["started_at"])[:19],
                d["stats"].get("items"),
                d["stats"].get("new"),
                d["stats"].get("not_modified"),
                d["stats"].get("errors"),
                left_out(d["stats"]),
            ]
            for d in data
        ],
    )


def left_out(stats: dict[str, Any]) -> str:
    """Records skipped or dropped in a run, with their reasons: ``132 OAI record without dc:title``."""
    reasons = {**stats.get("skipped", {})}
    for reason, count in stats.get("dropped_reasons", {}).items():
        reasons[reason] = reasons.get(reason, 0) + count
    return "; ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda r: -r[1]))


for _command in RUNS_QUARANTINE_COMMANDS:
    runs.add_command(_command)
