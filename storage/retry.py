"""Write transactions that outlast a faltering database: transient errors are retried with back-off.

A transient error is one a later attempt on a fresh connection can get past: the connection dropped
(PostgreSQL restarted or stopped, a network cut), the server refusing connections while it starts,
SQLite's "database is locked" past the busy timeout, a full disk. SQLAlchemy invalidates a broken
connection and the pool pings before reuse (``pool_pre_ping``), so each attempt reconnects. Anything
else (a constraint, a bug) is raised at once. When the budget is spent, ``StoreError`` says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from storage.db import transaction

T = TypeVar("T")
log = logging.getLogger("harvester.storage")

# (reason, fragments of the driver's message in lower case), first match wins
_MESSAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "disk full",
        (
            "database or disk is full",
            "disk is full",
            "no space left",
            "could not extend file",
            "could not write",
            "disk full",
        ),
    ),
    ("database locked", ("database is locked", "database table is locked", "database schema is locked")),
    ("disk I/O error", ("disk i/o error", "unable to open database file", "readonly database")),
    (
        "database unreachable",
        (
            "connection refused",
            "could not connect",
            "the database system is starting up",
            "the database system is shutting down",
            "the database system is in recovery",
            "no such file or directory",
            "connection timed out",
            "name or service not known",
        ),
    ),
    (
        "connection lost",
        (
            "terminating connection",
            "server closed the connection",
            "connection is closed",
            "connection already closed",
            "consuming input failed",
            "could not receive data",
            "could not send data",
            "connection reset",
            "broken pipe",
            "the connection is lost",
            "ssl connection has been closed",
            "lost synchronization",
        ),
    ),
    ("conflict", ("deadlock detected", "could not serialize access")),
)
# PostgreSQL SQLSTATE classes: connection exception, insufficient resources, operator intervention
_SQLSTATE_PREFIXES = {"08": "connection lost", "53": "disk full", "57": "database unreachable", "40": "conflict"}


class StoreError(RuntimeError):
    """A write that still failed when the retry budget was spent; ``reason`` is short and stable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class RetryPolicy:
    """Retry for up to ``budget_s`` seconds, waiting ``first_delay_s`` then twice as long each time
    (at most ``max_delay_s``). A budget of 0 tries once."""

    budget_s: float = 60.0
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        from harvester.settings import get_settings

        s = get_settings()
        return cls(s.db_retry_seconds, s.db_retry_backoff, max(s.db_retry_backoff, 10.0))

    def at_least(self, budget_s: float) -> RetryPolicy:
        return RetryPolicy(max(self.budget_s, budget_s), self.first_delay_s, self.max_delay_s)


def transient_reason(exc: BaseException) -> str | None:
    """Why this database error may pass on a fresh connection ("connection lost", "database locked",
    "disk full", ...), or None when retrying cannot help."""
    if not isinstance(exc, DBAPIError):
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate and sqlstate[:2] in _SQLSTATE_PREFIXES:
        return _SQLSTATE_PREFIXES[sqlstate[:2]]
    message = str(exc.orig if exc.orig is not None else exc).lower()
    for reason, fragments in _MESSAGES:
        if any(f in message for f in fragments):
            return reason
    if exc.connection_invalidated:
        return "connection lost"
    return None


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def retrying(
    work: Callable[[Session], T],
    policy: RetryPolicy,
    engine: Engine | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> T:
    """Run ``work`` in one write transaction, again on a fresh connection after a transient error, until
    it commits or the budget is spent (then ``StoreError``). ``work`` must not change anything outside
    the session it is given unless it undoes that itself: a failed attempt is rolled back."""
    deadline = time.monotonic() + policy.budget_s
    delay = policy.first_delay_s
    while True:
        try:
            with transaction(engine) as session:
                return work(session)
        except DBAPIError as exc:
            reason = transient_reason(exc)
            if reason is None:
                raise
            if time.monotonic() + delay > deadline:
                raise StoreError(reason, first_line(exc)) from exc
            log.warning("database write failed (%s: %s); retrying in %.1f s", reason, first_line(exc), delay)
            if on_retry is not None:
                on_retry(reason)
            time.sleep(delay)
            delay = min(delay * 2, policy.max_delay_s)
