"""Dialect-aware INSERT ... ON CONFLICT, never check-then-insert."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_INSERTS: dict[str, Callable[[Any], Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _dialect_insert(dialect: str) -> Callable[[Any], Any]:
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    return insert


def insert_for(session: Session, table: Any) -> Any:
    return _dialect_insert(dialect_of(session))(table)


def statement_cache(build: Callable[..., Executable]) -> Callable[..., Executable]:
    """``build(insert, *args)`` -> a statement, built once per dialect and ``args`` and then reused: the values
    are bound at execution (``session.execute(stmt, params)``). A statement reused keeps its cache key, which
    SQLAlchemy otherwise derives anew for every row, and that cost more than the insert on the crawl's
    per-page writes."""

    @lru_cache(maxsize=64)
    def cached(dialect: str, *args: Any) -> Executable:
        return build(_dialect_insert(dialect), *args)

    return cached


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name
