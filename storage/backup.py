"""Backup and restore of the harvester database (``harvester db backup|restore``).

SQLite: the online backup API copies a consistent snapshot, including what is still in the WAL
(a plain ``cp`` of the file misses it), while crawls and the review app keep working; the copy is
written beside the target and renamed into place, then checked with ``PRAGMA integrity_check``.
PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore`` (the newest client found on PATH or in
``/usr/lib/postgresql/*/bin``). A restore refuses a database that already holds candidates unless
forced, and brings the restored schema to the newest migration.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why in one line."""


def _sqlite_path(engine: Engine) -> Path:
    return Path(engine.url.database or "")


def _is_sqlite(engine: Engine) -> bool:
    return engine.url.get_backend_name() == "sqlite"


def _libpq_url(engine: Engine) -> str:
    return (
        make_url(engine.url.render_as_string(hide_password=False))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def _pg_tool(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    tool = found[-1] if found else shutil.which(name)
    if tool is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return tool


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or [f"exit code {done.returncode}"]
        raise BackupError(f"{Path(cmd[0]).name} failed: {lines[-1]}")


def _check_sqlite(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a harvester SQLite database: {exc}") from None
    finally:
        conn.close()
    if verdict != "ok":
        raise BackupError(f"{path} fails the integrity check: {verdict}")
    if not {"alembic_version", "candidates"} <= tables:
        raise BackupError(f"{path} is not a harvester database (no candidates table)")


def backup(engine: Engine, target: Path) -> None:
    """Write a consistent copy of the database to ``target`` (replaced atomically if it exists)."""
    target = target.resolve()
    if not target.parent.is_dir():
        raise BackupError(f"folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if _is_sqlite(engine):
            source = _sqlite_path(engine)
            if not source.is_file():
                raise BackupError(f"SQLite database {source} does not exist")
            src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(partial)
            try:
                src.backup(dst, pages=1024)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dst.close()
                src.close()
            _check_sqlite(partial)
        else:
            _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(partial), _libpq_url(engine)])
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _holds_candidates(engine: Engine) -> bool:
    if not inspect(engine).has_table("candidates"):
        return False
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM candidates LIMIT 1")).first() is not None


def restore(engine: Engine, source: Path, force: bool = False) -> None:
    """Replace the database's content with the backup ``source``, then migrate it to the newest schema."""
    from storage.db import upgrade

    if not source.is_file():
        raise BackupError(f"backup file {source} does not exist")
    if not force and _holds_candidates(engine):
        raise BackupError(
            "the database already holds candidates: restore into an empty database, or use --force to replace them"
        )
    if _is_sqlite(engine):
        _check_sqlite(source)
        src, dst = (
            sqlite3.connect(f"file:{source}?mode=ro", uri=True),
            sqlite3.connect(_sqlite_path(engine), timeout=30),
        )
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    else:
        _run(
            [
                _pg_tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exit-on-error",
                "--dbname",
                _libpq_url(engine),
                str(source),
            ]
        )
    engine.dispose()
    upgrade(engine)
