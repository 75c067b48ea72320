"""Which database errors are transient, and a write retried through a real one (``storage.retry``)."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage.db import make_engine, transaction, upgrade
from storage.retry import RetryPolicy, StoreError, retrying, transient_reason


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locked_error(path: Path) -> DBAPIError:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    except DBAPIError as exc:
        return exc
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    raise AssertionError("the write went through the lock")


def test_real_transient_errors_are_named_and_a_constraint_is_not(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER PRIMARY KEY)").connection.commit()
    assert transient_reason(locked_error(path)) == "database locked"

    engine = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x", connect_args={"connect_timeout": 2}
    )
    with pytest.raises(DBAPIError) as refused:
        engine.connect()
    assert transient_reason(refused.value) == "database unreachable"

    plain = create_engine(f"sqlite:///{path}")
    with pytest.raises(IntegrityError) as duplicate, plain.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1), (1)"))
    plain.dispose()
    assert transient_reason(duplicate.value) is None
    assert transient_reason(ValueError("database is locked")) is None


def test_a_write_waits_out_a_lock_held_past_the_busy_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storage.db.SQLITE_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "harvester.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    locked = threading.Event()

    def hold() -> None:  # another writer, holding the lock 1.5 s
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(1.5)
        holder.execute("ROLLBACK")
        holder.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    retried: list[str] = []
    started = time.monotonic()
    written = retrying(
        lambda s: s.execute(
            text(
                "INSERT INTO sources (id, name, kind, verified, enabled, config_hash) "
                "VALUES ('a', 'A', 'api', true, true, 'h') RETURNING id"
            )
        ).scalar(),
        RetryPolicy(budget_s=10, first_delay_s=0.1),
        engine,
        on_retry=retried.append,
    )
    assert written == "a" and time.monotonic() - started >= 1.4
    assert retried and set(retried) == {"database locked"}
    thread.join()
    engine.dispose()


def test_a_write_gives_up_with_the_reason_when_the_budget_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.db.SQLITE_BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "harvester.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as failed:
            retrying(
                lambda s: s.execute(text("DELETE FROM sources")), RetryPolicy(budget_s=0.5, first_delay_s=0.1), engine
            )
        assert failed.value.reason == "database locked"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with transaction(engine) as session:  # nothing half-done: the database takes writes again
        session.execute(text("DELETE FROM sources"))
    engine.dispose()
