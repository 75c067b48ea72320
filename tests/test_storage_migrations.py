"""Alembic owns the schema: migrations create every model table and cannot drift from the models."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect

from storage.db import alembic_config
from storage.models import Base


def test_migrations_create_every_model_table(db_engine: Engine) -> None:
    assert set(Base.metadata.tables) <= set(inspect(db_engine).get_table_names())


def test_models_and_migrations_do_not_drift(db_engine: Engine) -> None:
    command.check(alembic_config(db_engine))


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    from storage.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'wal.sqlite3'}")
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
    engine.dispose()
