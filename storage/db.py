"""Engine and sessions. SQLite runs in WAL mode and opens every transaction with BEGIN IMMEDIATE,
so a reader that later writes never dies with "database is locked" next to a busy crawler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class DatabaseUrlError(ValueError):
    """The configured database URL cannot be used."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the begin event below open transactions
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"bad database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise DatabaseUrlError(
            f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise DatabaseUrlError(f"unsupported database URL {url!r}: {exc}") from None


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine per URL for the process."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (tests, forked workers)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def get_engine(create: bool = False) -> Engine:
    """The configured database's engine. A configured (not the default) SQLite file must exist unless
    ``create`` (``harvester db upgrade``), and its folder always: a misspelt path is refused instead of
    silently becoming a new, empty database."""
    from harvester.settings import get_settings

    settings = get_settings()
    url = settings.resolved_database_url
    if url not in _ENGINES and settings.database_url is not None:
        check_sqlite_file(url, create)
    return engine_for(url)


def check_sqlite_file(url: str, create: bool) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"bad database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    if not path.parent.is_dir():
        raise DatabaseUrlError(
            f"SQLite database folder {path.parent} does not exist (HARVESTER_DATABASE_URL {url!r}): check the path"
        )
    if not create and not path.is_file():
        raise DatabaseUrlError(
            f"SQLite database {path} does not exist (HARVESTER_DATABASE_URL {url!r}): check "
            "the path, or create it with `harvester db upgrade`"
        )


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(engine or get_engine(), expire_on_commit=False)


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """One short write transaction: commits on success, rolls back on error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine | None = None) -> None:
    """Bring the schema to the newest migration (``harvester db upgrade``)."""
    from alembic import command

    engine = engine or get_engine(create=True)
    try:
        command.upgrade(alembic_config(engine), "heads")
    except Exception as exc:
        if "connection" in type(exc).__name__.lower() or "OperationalError" in type(exc).__name__:
            raise DatabaseUrlError(f"cannot reach the database at {engine.url!r}: {str(exc).splitlines()[0]}") from exc
        raise


def is_current(engine: Engine) -> bool:
    return inspect(engine).has_table("candidates")
