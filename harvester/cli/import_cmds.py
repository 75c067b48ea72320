"""``harvester import``: a partner's file as a run of its own (``harvester.imports``)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from harvester.cli.output import json_option, print_json, print_table
from harvester.registry import SourceKind, SourceSpec, get_source, load_registry

IMPORT_COLUMNS = ["source", "run", "files", "records", "new", "pending", "updated", "not_modified", "gone"]


def _capture_date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def import_row(source_id: str, run_id: int, stats: dict[str, Any]) -> list[Any]:
    files = ", ".join(f["file"] for f in stats["import"]["files"])
    return [
        source_id,
        run_id,
        files,
        stats["items"],
        stats["new"],
        stats["new_pending"],
        stats["updated"],
        stats["not_modified"],
        stats["gone"],
    ]


def run_import(spec: SourceSpec, files: tuple[Path, ...], captured: date | None, complete: bool) -> Any:
    """Import ``files`` (default: the registry entry's own file) into the database; the result."""
    from harvester.imports import ImportFile, import_files, registry_files
    from storage.db import upgrade

    if spec.kind != SourceKind.FILE:
        raise click.UsageError(
            f"source {spec.id!r} is of kind {spec.kind.value!r}: crawl it, only file sources are imported"
        )
    if files:
        if captured is None:
            raise click.UsageError("state the files' capture date with --captured YYYY-MM-DD")
        sources = [ImportFile(path, captured) for path in files]
    else:
        sources = registry_files(spec)
        if captured is not None:
            sources = [ImportFile(s.path, captured) for s in sources]
    upgrade()
    return import_files(spec, sources, complete=complete)


@click.command("import")
@click.argument("source_id")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--captured",
    callback=_capture_date,
    metavar="YYYY-MM-DD",
    help="Capture date the files' publisher states (required with FILE; the entry's date otherwise).",
)
@click.option(
    "--complete",
    is_flag=True,
    help="The files hold every record the partner has: stored records missing from them are gone.",
)
@json_option
def import_cmd(source_id: str, files: tuple[Path, ...], captured: date | None, complete: bool, as_json: bool) -> None:
    """Import FILE... (CSV, JSON, JSON Lines or XLSX, as the file source SOURCE_ID declares) as one run.

    Without FILE, the file the registry entry names in the fixtures folder is imported. A bad file is
    refused in one line and nothing is stored; importing the same file again changes nothing."""
    spec = get_source(source_id, load_registry())
    result = run_import(spec, files, captured, complete)
    if as_json:
        print_json({"source": spec.id, "run": result.run_id, **result.stats})
        return
    print_table(IMPORT_COLUMNS, [import_row(spec.id, result.run_id, result.stats)])
