"""``harvester users add|list|deactivate|activate|reset-password|end-sessions``, ``harvester serve`` and
``harvester decide``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from storage.models import ReasonCode, Role

T = TypeVar("T")


@click.group()
def users() -> None:
    """Review app accounts."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.CURATOR.value, show_default=True)
@click.password_option(envvar="HARVESTER_NEW_USER_PASSWORD", help="Password (prompted, or from the environment).")
def users_add(name: str, role: str, password: str) -> None:
    """Add a curator or admin who can log in to the review app."""
    from harvester.web.auth import AccountActor, AuthError, add_user
    from storage.db import transaction, upgrade

    upgrade()
    try:
        with transaction() as session:
            add_user(session, name, role, password, AccountActor("cli"))
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {name} added as {role}")


AS_OPTION = click.option(
    "--as", "actor", default="cli", show_default=True, help="Who makes the change, as recorded in the account audit."
)


def _account_change(change: Callable[..., T], *args: object) -> T:
    """Run one account function in a transaction; an account problem is a one-line error."""
    from harvester.web.auth import AuthError
    from storage.db import transaction, upgrade

    upgrade()
    try:
        with transaction() as session:
            return change(session, *args)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per account.")
def users_list(as_json: bool) -> None:
    """Accounts with role, active flag, open sessions and last login."""
    import json

    from harvester.web.auth import list_accounts

    for a in _account_change(list_accounts):
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "name": a.name,
                        "role": a.role,
                        "active": a.active,
                        "sessions": a.sessions,
                        "last_login": a.last_login.isoformat() if a.last_login else None,
                    }
                )
            )
        else:
            click.echo(
                f"{a.name:<20} {a.role:<8} {'active' if a.active else 'inactive':<9} "
                f"{a.sessions} session(s)  last login {a.last_login or 'never'}"
            )


@users.command("deactivate")
@click.argument("name")
@AS_OPTION
def users_deactivate(name: str, actor: str) -> None:
    """Stop an account from logging in and end its sessions now (audited; the last admin stays)."""
    from harvester.web.auth import AccountActor, set_active

    _account_change(set_active, name, False, AccountActor(actor))
    click.echo(f"user {name} deactivated; its sessions are ended")


@users.command("activate")
@click.argument("name")
@AS_OPTION
def users_activate(name: str, actor: str) -> None:
    """Let a deactivated account log in again (audited)."""
    from harvester.web.auth import AccountActor, set_active

    _account_change(set_active, name, True, AccountActor(actor))
    click.echo(f"user {name} reactivated")


@users.command("reset-password")
@click.argument("name")
@click.password_option(envvar="HARVESTER_NEW_USER_PASSWORD", help="New password (prompted, or from the environment).")
@AS_OPTION
def users_reset_password(name: str, password: str, actor: str) -> None:
    """Set a new password and end the account's sessions (audited)."""
    from harvester.web.auth import AccountActor, reset_password

    _account_change(reset_password, name, password, AccountActor(actor))
    click.echo(f"user {name} has a new password; its sessions are ended")


@users.command("end-sessions")
@click.argument("name")
@AS_OPTION
def users_end_sessions(name: str, actor: str) -> None:
    """Log an account out everywhere; it can log in again (audited)."""
    from harvester.web.auth import AccountActor, end_sessions

    ended = _account_change(end_sessions, name, AccountActor(actor))
    click.echo(f"user {name}: {ended} session(s) ended")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the review web app and its JSON API (/api/v1).

    Behind a TLS reverse proxy set HARVESTER_FORWARDED_ALLOW_IPS to the proxy's address: its
    X-Forwarded-For/-Proto are then trusted (client address for login throttling, https for the Secure
    cookie); nobody else's are."""
    import uvicorn

    from harvester.settings import get_settings
    from harvester.web.app import create_app
    from storage.db import upgrade

    upgrade()
    trusted = get_settings().forwarded_allow_ips
    click.echo(
        f"review app on http://{host}:{port}/ (Ctrl+C stops)"
        + (f"; trusting proxy headers from {trusted}" if trusted else ""),
        err=True,
    )
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )


@click.command()
@click.argument("candidate_ids", nargs=-1, type=int, required=True)
@click.option("--accept", "action", flag_value="accept", help="Accept the candidates.")
@click.option("--reject", "reason", type=click.Choice([r.value for r in ReasonCode]), help="Reject with this reason.")
@click.option("--defer", "action", flag_value="defer", help="Defer the candidates.")
@click.option("--note", help="A note kept with each decision.")
@click.option("--as", "actor", default="cli", show_default=True, help="Who decides (a user name).")
def decide(
    candidate_ids: tuple[int, ...], action: str | None, reason: str | None, note: str | None, actor: str
) -> None:
    """Accept, reject or defer candidates from the command line, audited like the app's decisions."""
    from sqlalchemy import select

    from storage.db import transaction
    from storage.decisions import Actor, DecisionError
    from storage.decisions import decide as apply_decision
    from storage.models import User

    if reason:
        action = "reject" if action is None else "conflict"
    if action not in ("accept", "reject", "defer"):
        raise click.UsageError("give exactly one of --accept, --reject REASON, --defer")
    try:
        with transaction() as session:
            user_id = session.scalar(select(User.id).where(User.name == actor))
            for candidate_id in candidate_ids:
                apply_decision(session, candidate_id, action, Actor(actor, user_id), reason=reason, note=note)
    except DecisionError as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from None
    click.echo(f"{action}: {len(candidate_ids)} candidate(s)")
