"""Accounts, server-side sessions, CSRF tokens and login throttling.

Throttling must slow guessing without letting anyone lock a curator out. Failed logins are counted per
(client, account) pair: the first few are free, then each further one doubles the wait before the next try
(up to 15 minutes), so guessing from one place crawls while the curator, logging in from their own
client, is never held back by someone else's failures. A client also has a budget across accounts: failing
for several names (spraying) or many times in 15 minutes holds that client, not the accounts. Waits are
short and counted from the last failure; nothing is ever locked for good.

Account changes by an admin (deactivate, reactivate, reset a password, end sessions) end the account's
sessions where it matters and are recorded in ``account_events``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.models import AccountEvent, LoginAttempt, Role, User, WebSession
from storage.runs import now

HASHER = PasswordHasher()
IDLE_TIMEOUT = timedelta(hours=8)
ABSOLUTE_TIMEOUT = timedelta(days=7)
FAILURE_WINDOW = timedelta(minutes=15)
PAIR_FREE_FAILURES = 3  # failures of one client on one account before any wait
MAX_WAIT = timedelta(minutes=15)
CLIENT_MAX_NAMES = 5  # distinct account names one client may fail on within the window (spraying)
CLIENT_MAX_FAILURES = 30  # failed logins one client may make within the window, whatever the names
MIN_PASSWORD = 10


class AuthError(ValueError):
    """A login, session or account problem with a message safe to show."""


class Throttled(AuthError):
    """Too many failed logins from this client (for this account, or overall); try again after ``wait``."""

    def __init__(self, message: str, wait: timedelta) -> None:
        super().__init__(message)
        self.wait = wait

    @property
    def retry_after(self) -> int:
        return max(1, int(-(-self.wait.total_seconds() // 1)))


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


def add_user(session: Session, name: str, role: str, password: str, by: AccountActor | None = None) -> User:
    """A new active account (argon2-hashed password); audited when ``by`` names who added it."""
    if role not in {r.value for r in Role}:
        raise AuthError(f"role must be one of: {', '.join(r.value for r in Role)}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must have at least {MIN_PASSWORD} characters")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise AuthError(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=HASHER.hash(password), active=True)
    session.add(user)
    session.flush()
    if by is not None:
        _audit(session, by, user, "added", f"role {role}")
    return user


def pair_delay(failures: int) -> timedelta:
    """The wait after ``failures`` recent failures of one client on one account: none for the first few, then
    1 s, 2 s, 4 s ... up to 15 minutes."""
    if failures < PAIR_FREE_FAILURES:
        return timedelta(0)
    return min(MAX_WAIT, timedelta(seconds=2 ** min(failures - PAIR_FREE_FAILURES, 20)))


def throttle_wait(session: Session, name: str, client: str | None) -> Throttled | None:
    """Why and how long this client must wait before trying ``name`` again, or None."""
    current = now()
    since = current - FAILURE_WINDOW
    fails = select(LoginAttempt.name, LoginAttempt.at).where(
        LoginAttempt.client.is_not_distinct_from(client), LoginAttempt.success.is_(False), LoginAttempt.at > since
    )
    last_ok = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.client.is_not_distinct_from(client),
            LoginAttempt.name == name,
            LoginAttempt.success.is_(True),
            LoginAttempt.at > since,
        )
    )
    pair = [
        _aware(at)
        for n, at in session.execute(fails.where(LoginAttempt.name == name))
        if last_ok is None or _aware(at) > _aware(last_ok)
    ]
    if pair and (wait := max(pair) + pair_delay(len(pair)) - current) > timedelta(0):
        return Throttled(f"too many failed logins for this account from here; try again in {_say(wait)}", wait)
    attempts = session.execute(fails.order_by(LoginAttempt.at)).all()
    names = {n for n, _ in attempts}
    if len(attempts) >= CLIENT_MAX_FAILURES or len(names - {name}) >= CLIENT_MAX_NAMES:
        wait = _aware(attempts[0].at) + FAILURE_WINDOW - current
        return Throttled(f"too many failed logins from here; try again in {_say(wait)}", wait)
    return None


def _say(wait: timedelta) -> str:
    seconds = max(1, int(-(-wait.total_seconds() // 1)))
    return f"{seconds} seconds" if seconds < 120 else f"{-(-seconds // 60)} minutes"


def login(session: Session, name: str, password: str, client: str | None) -> str:
    """Check the password and open a new session; returns the cookie token (only its hash is stored).

    A throttled client is refused before the password is looked at (``Throttled``), so a guess made while
    waiting tells nothing."""
    name, client = name[:100], (client or "")[:100] or None
    if (throttled := throttle_wait(session, name, client)) is not None:
        raise throttled
    user = session.scalar(select(User).where(User.name == name, User.active.is_(True)))
    ok = False
    if user is not None and user.password_hash:
        try:
            ok = HASHER.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        HASHER.hash(password)  # same cost whether or not the user exists
    session.add(LoginAttempt(name=name, client=client, success=ok, at=now()))
    if not ok or user is None:
        raise AuthError("wrong user name or password")
    token = secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32)))
    return token


def load_session(session: Session, token: str | None) -> SessionUser | None:
    if not token:
        return None
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
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


# ---- accounts an admin runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountActor:
    """Who changes an account: an admin in the app, or the operator at the command line (``user_id`` None)."""

    name: str
    user_id: int | None = None


@dataclass(frozen=True)
class AccountRow:
    id: int
    name: str
    role: str
    active: bool
    sessions: int
    last_login: datetime | None


def _user(session: Session, name_or_id: str | int) -> User:
    where = User.id == name_or_id if isinstance(name_or_id, int) else User.name == name_or_id
    user = session.scalar(select(User).where(where).with_for_update())
    if user is None:
        raise AuthError(f"no user {name_or_id!r}")
    return user


def _audit(session: Session, by: AccountActor, user: User, action: str, detail: str | None = None) -> None:
    session.add(AccountEvent(actor=by.name, actor_id=by.user_id, user_id=user.id, action=action, detail=detail))


def _revoke_all(session: Session, user: User) -> int:
    result = session.execute(
        update(WebSession).where(WebSession.user_id == user.id, WebSession.revoked.is_(False)).values(revoked=True)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def list_accounts(session: Session) -> list[AccountRow]:
    """Every account with its open sessions and last successful login."""
    cutoff = now() - ABSOLUTE_TIMEOUT
    sessions = dict(
        session.execute(
            select(WebSession.user_id, func.count())
            .where(WebSession.revoked.is_(False), WebSession.created_at > cutoff)
            .group_by(WebSession.user_id)
        ).all()
    )
    last = dict(
        session.execute(
            select(LoginAttempt.name, func.max(LoginAttempt.at))
            .where(LoginAttempt.success.is_(True))
            .group_by(LoginAttempt.name)
        ).all()
    )
    return [
        AccountRow(u.id, u.name, u.role, u.active, sessions.get(u.id, 0), last.get(u.name))
        for u in session.scalars(select(User).order_by(User.name))
    ]


def set_active(session: Session, name_or_id: str | int, active: bool, by: AccountActor) -> User:
    """Deactivate (the account can no longer log in and its sessions end at once) or reactivate an account.
    Nobody deactivates themselves, and the last active admin stays."""
    user = _user(session, name_or_id)
    if user.active == active:
        return user
    if not active:
        if by.user_id == user.id:
            raise AuthError("you cannot deactivate your own account")
        if (
            user.role == Role.ADMIN
            and (
                session.scalar(
                    select(func.count()).select_from(User).where(User.role == Role.ADMIN.value, User.active.is_(True))
                )
                or 0
            )
            <= 1
        ):
            raise AuthError(f"{user.name} is the last active admin")
        ended = _revoke_all(session, user)
        _audit(session, by, user, "deactivated", f"{ended} session(s) ended")
    else:
        _audit(session, by, user, "reactivated")
    user.active = active
    return user


def reset_password(session: Session, name_or_id: str | int, password: str, by: AccountActor) -> User:
    """Set a new password (argon2) and end the account's sessions: whoever knew the old one is out."""
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must have at least {MIN_PASSWORD} characters")
    user = _user(session, name_or_id)
    user.password_hash = HASHER.hash(password)
    ended = _revoke_all(session, user)
    _audit(session, by, user, "password_reset", f"{ended} session(s) ended")
    return user


def end_sessions(session: Session, name_or_id: str | int, by: AccountActor) -> int:
    """Log the account out everywhere; it can log in again. Returns how many sessions were open."""
    user = _user(session, name_or_id)
    ended = _revoke_all(session, user)
    _audit(session, by, user, "sessions_ended", f"{ended} session(s) ended")
    return ended


def account_events(session: Session, limit: int = 100) -> list[tuple[AccountEvent, str]]:
    """The newest account changes with the name of the account changed."""
    return [
        (event, name)
        for event, name in session.execute(
            select(AccountEvent, User.name)
            .join(User, User.id == AccountEvent.user_id)
            .order_by(AccountEvent.id.desc())
            .limit(limit)
        )
    ]
