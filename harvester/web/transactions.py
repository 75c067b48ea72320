"""The request's database transaction is committed before its response starts, and a database that
falters answers 503 with ``Retry-After`` instead of 500.

FastAPI runs the code after ``yield`` in a dependency once the response has been sent, so a client
could follow a login redirect before its session row was committed (PostgreSQL showed it: 9 logins of
20 ended back on the login page). ``CommitFirstMiddleware`` commits the session ``db_session`` put in
the request state when the response starts; a commit that fails replaces the response with a 503.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.retry import first_line, transient_reason

RETRY_AFTER_S = 5
STATE_KEY = "db_session"
log = logging.getLogger(__name__)


def unavailable(reason: str) -> Response:
    return PlainTextResponse(
        f"The database is unavailable for a moment ({reason}); please retry.",
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def database_error(request: Request, exc: Exception) -> Response:
    """Exception handler: a transient database error is a 503 with Retry-After; any other is re-raised (500)."""
    reason = transient_reason(exc)
    if reason is None:
        raise exc
    log.warning(
        "%s %s: database unavailable (%s: %s), answered 503", request.method, request.url.path, reason, first_line(exc)
    )
    return unavailable(reason)


class CommitFirstMiddleware:
    """Commit the request's database session before the first byte of its response is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_committed(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                failure = await self._commit(scope)
                if failure is not None:
                    await failure(scope, receive, send)
                    raise _Replaced
            await send(message)

        try:
            await self.app(scope, receive, send_committed)
        except _Replaced:
            return

    @staticmethod
    async def _commit(scope: Scope) -> Response | None:
        session: Any = scope.get("state", {}).get(STATE_KEY)
        if session is None or not session.in_transaction():
            return None
        try:
            await run_in_threadpool(session.commit)
        except DBAPIError as exc:
            await run_in_threadpool(session.rollback)
            reason = transient_reason(exc)
            log.warning("commit before the response failed (%s): %s", reason or "error", first_line(exc))
            if reason is None:
                return PlainTextResponse("Internal server error", status_code=500)
            return unavailable(reason)
        return None


class _Replaced(Exception):
    """The response was replaced by an error response after its commit failed."""
