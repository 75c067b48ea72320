"""Request dependencies: database session, current user, role checks, CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from harvester.web.auth import SessionUser, load_session
from harvester.web.security import same_origin, tokens_match
from harvester.web.transactions import STATE_KEY
from storage.db import session_factory
from storage.queue import MAX_KEY

MAX_ID = MAX_KEY  # the largest id an INTEGER key holds on PostgreSQL (and so on both): beyond it a 422, not a 500
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]  # a path id: candidate, run, alert, user
COOKIE = "chm_session"
SECURE_COOKIE = "__Host-chm_session"


class LoginRequired(Exception):
    """Raised for pages: the handler redirects to the login page."""


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if request.url.scheme == "https" else COOKIE


def db_session(request: Request) -> Iterator[Session]:
    """The request's session: committed before the response starts (``transactions.CommitFirstMiddleware``),
    rolled back on an error."""
    factory = request.app.state.session_factory or session_factory()
    with factory() as session:
        setattr(request.state, STATE_KEY, session)
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()  # a response that never started (nothing left to commit otherwise)


SessionDep = Annotated[Session, Depends(db_session)]


def optional_user(request: Request, session: SessionDep) -> SessionUser | None:
    return load_session(session, request.cookies.get(cookie_name(request)))


def current_user(request: Request, user: Annotated[SessionUser | None, Depends(optional_user)]) -> SessionUser:
    if user is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(status_code=401, detail="login required")
        raise LoginRequired
    return user


CurrentUser = Annotated[SessionUser, Depends(current_user)]


def admin_user(user: CurrentUser) -> SessionUser:
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="admins only")
    return user


AdminUser = Annotated[SessionUser, Depends(admin_user)]


def check_csrf(request: Request, user: SessionUser, token: str | None) -> None:
    """Every state-changing request carries the session's CSRF token and comes from this site."""
    if not same_origin(request) or not tokens_match(token or request.headers.get("x-csrf-token"), user.csrf_token):
        raise HTTPException(status_code=403, detail="CSRF check failed: reload the page and try again")
