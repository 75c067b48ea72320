"""``harvester``: db, sources, crawl, import, demo, queue, runs, extract."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harvester.cli.output import json_option, print_json, print_table

USER_ERRORS: tuple[type[Exception], ...] = ()


def _user_errors() -> tuple[type[Exception], ...]:
    from harvester.chm.reference import ReferenceMissingError
    from harvester.imports import FileImportError
    from harvester.recordings.fixtures import FixturesMissingError
    from harvester.registry import RegistryError
    from storage.backup import BackupError
    from storage.db import DatabaseUrlError

    return (RegistryError, DatabaseUrlError, FixturesMissingError, ReferenceMissingError, FileImportError, BackupError)


class HarvesterGroup(click.Group):
    """Turns known user mistakes into one clear line and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _user_errors() as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                click.echo(f"error: database unavailable: {str(exc.orig).splitlines()[0]}", err=True)
                sys.exit(2)
            raise


@click.group(cls=HarvesterGroup)
@click.version_option(package_name="chm-harvester")
def cli() -> None:
    """CHM Harvester: crawl partner sources, classify candidates, fill the CBD CHM review queue."""


def main() -> None:
    cli(prog_name="harvester")


@cli.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the newest migration."""
    from harvester.settings import get_settings
    from storage.db import upgrade

    upgrade()
    click.echo(f"database at {_redacted(get_settings().resolved_database_url)} is up to date")


@db.command("backup")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def db_backup(file: Path) -> None:
    """Write a consistent copy of the database to FILE, while crawls and the app keep running.

    SQLite: the online backup API (what is still in the WAL included; never copy the file with cp).
    PostgreSQL: pg_dump --format=custom."""
    from storage.backup import backup
    from storage.db import get_engine

    backup(get_engine(), file)
    click.echo(f"backed up {_redacted(str(get_engine().url))} to {file} ({file.stat().st_size:,} bytes)")


@db.command("restore")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--force", is_flag=True, help="Replace a database that already holds candidates.")
def db_restore(file: Path, force: bool) -> None:
    """Restore the configured database from FILE (made by `db backup`), then migrate it to the newest schema."""
    from storage.backup import restore
    from storage.db import get_engine

    restore(get_engine(create=True), file, force=force)
    click.echo(f"restored {_redacted(str(get_engine().url))} from {file}")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


from harvester.cli import (  # noqa: E402
    classify_cmds,
    crawl_cmds,
    extract_cmds,
    import_cmds,
    queue_cmds,
    review_cmds,
    sources_cmds,
)

cli.add_command(sources_cmds.sources)
cli.add_command(crawl_cmds.crawl)
cli.add_command(crawl_cmds.demo)
cli.add_command(queue_cmds.queue)
cli.add_command(queue_cmds.runs)
cli.add_command(extract_cmds.extract)
cli.add_command(import_cmds.import_cmd)
cli.add_command(review_cmds.users)
cli.add_command(review_cmds.serve)
cli.add_command(review_cmds.decide)
cli.add_command(classify_cmds.classify)
from harvester.cli.schedule_cmds import schedule as _schedule  # noqa: E402

cli.add_command(_schedule)
from harvester.cli.chm_cmds import chm as _chm  # noqa: E402

cli.add_command(_chm)
__all__ = ["Path", "cli", "json_option", "main", "print_json", "print_table"]
