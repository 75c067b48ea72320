"""``harvester users add``, ``harvester serve`` and ``harvester decide``."""

from __future__ import annotations

import click

from storage.models import ReasonCode, Role


@click.group()
def users() -> None:
    """Review app accounts."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.CURATOR.value, show_default=True)
@click.password_option(envvar="HARVESTER_NEW_USER_PASSWORD", help="Password (prompted, or from the environment).")
def users_add(name: str, role: str, password: str) -> None:
    """Add a curator or admin who can log in to the review app."""
    from harvester.web.auth import AuthError, add_user
    from storage.db import transaction, upgrade

    upgrade()
    try:
        with transaction() as session:
            add_user(session, name, role, password)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {name} added as {role}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the review web app and its JSON API (/api/v1)."""
    import uvicorn

    from harvester.web.app import create_app
    from storage.db import upgrade

    upgrade()
    click.echo(f"review app on http://{host}:{port}/ (Ctrl+C stops)", err=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", proxy_headers=False)


@click.command()
@click.argument("candidate_ids", nargs=-1, type=int, required=True)
@click.option("--accept", "action", flag_value="accept", help="Accept the candidates.")
@click.option("--reject", "reason", type=click.Choice([r.value for r in ReasonCode]), help="Reject with this reason.")
@click.option("--defer", "action", flag_value="defer", help="Defer the candidates.")
@click.option("--note", help="A note kept with each decision.")
@click.option("--as", "actor", default="cli", show_default=True, help="Who decides (a user name).")
def decide(candidate_ids: tuple[int, ...], action: str | None, reason: str | None, note: str | None,
           actor: str) -> None:
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
