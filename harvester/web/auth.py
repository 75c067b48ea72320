"""Accounts, server-side sessions, CSRF tokens and login throttling."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.models import LoginAttempt, Role, User, WebSession
from storage.runs import now

HASHER = PasswordHasher()
IDLE_TIMEOUT = timedelta(hours=8)
ABSOLUTE_TIMEOUT = timedelta(days=7)
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 10


class AuthError(ValueError):
    """A login, session or account problem with a message safe to show."""


@dataclass(frozen=True)
class SessionUser:
    id: int
    name: str
    role: str
    csrf_token: str
    session_id: int

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, name: str, role: str, password: str) -> User:
    if role not in {r.value for r in Role}:
        raise AuthError(f"role must be one of: {', '.join(r.value for r in Role)}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must have at least {MIN_PASSWORD} characters")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise AuthError(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=HASHER.hash(password), active=True)
    session.add(user)
    session.flush()
    return user


def throttled(session: Session, name: str) -> bool:
    since = now() - FAILURE_WINDOW
    failures = session.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.name == name, LoginAttempt.success.is_(False), LoginAttempt.at > since)) or 0
    return failures >= MAX_FAILURES


def login(session: Session, name: str, password: str, client: str | None) -> str:
    """Check the password and open a new session; returns the cookie token (only its hash is stored)."""
    if throttled(session, name):
        raise AuthError("too many failed logins; try again in 15 minutes")
    user = session.scalar(select(User).where(User.name == name, User.active.is_(True)))
    ok = False
    if user is not None and user.password_hash:
        try:
            ok = HASHER.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        HASHER.hash(password)  # same cost whether or not the user exists
    session.add(LoginAttempt(name=name[:100], client=client, success=ok))
    if not ok or user is None:
        raise AuthError("wrong user name or password")
    token = secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32)))
    return token


def load_session(session: Session, token: str | None) -> SessionUser | None:
    if not token:
        return None
    row = session.execute(
        select(WebSession, User).join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _digest(token), WebSession.revoked.is_(False), User.active.is_(True))
    ).one_or_none()
    if row is None:
        return None
    web, user = row
    current = now()
    created, seen = _aware(web.created_at), _aware(web.last_seen)
    if current - created > ABSOLUTE_TIMEOUT or current - seen > IDLE_TIMEOUT:
        web.revoked = True
        return None
    web.last_seen = current
    return SessionUser(user.id, user.name, user.role, web.csrf_token, web.id)


def logout(session: Session, token: str | None) -> None:
    if token:
        session.execute(update(WebSession).where(WebSession.token_hash == _digest(token)).values(revoked=True))


def _aware(value):  # type: ignore[no-untyped-def]
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
