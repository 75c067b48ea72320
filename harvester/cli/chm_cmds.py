"""``harvester chm``: export accepted candidates as CHM documents, push them through the KM API."""

from __future__ import annotations

import json
from pathlib import Path

import click
from sqlalchemy import Engine

from harvester.cli.output import json_option, print_json, print_table


@click.group()
def chm() -> None:
    """Feed the CBD Clearing-House: CHM documents of accepted candidates (export, push, status)."""


def _engine() -> Engine:
    from storage.db import get_engine, upgrade

    upgrade()
    return get_engine()


@chm.command("export")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: <data_dir>/chm/export).",
)
@click.option("--candidate", "candidate_ids", type=int, multiple=True, help="Only these candidates.")
@json_option
def export_cmd(out_dir: Path | None, candidate_ids: tuple[int, ...], as_json: bool) -> None:
    """Write one CHM JSON document per accepted candidate, a manifest and the push plan; no network."""
    from harvester.chm.export import export
    from harvester.settings import get_settings

    settings = get_settings()
    summary = export(
        _engine(), out_dir or settings.data_dir / "chm" / "export", settings.chm_realm, list(candidate_ids) or None
    )
    if as_json:
        print_json(summary.as_dict())
        return
    click.echo(
        f"{summary.documents} valid documents, {summary.invalid} invalid, "
        f"{summary.planned_calls} planned KM API calls -> {summary.out_dir}"
    )
    for code, count in sorted(summary.errors.items()):
        click.echo(f"  {code}: {count}")


@chm.command("push")
@click.option("--production", is_flag=True, help="Push to the production CHM (api.cbd.int, realm CHM).")
@click.option("--base-url", help="KM API base URL (default HARVESTER_CHM_API_BASE, the development API).")
@click.option("--realm", help="CHM realm (default HARVESTER_CHM_REALM, CHM-DEV).")
@click.option("--candidate", "candidate_ids", type=int, multiple=True, help="Only these candidates.")
@json_option
def push_cmd(
    production: bool, base_url: str | None, realm: str | None, candidate_ids: tuple[int, ...], as_json: bool
) -> None:
    """Submit accepted candidates: validate, save drafts, request publication, poll open requests."""
    from harvester.chm.push import ChmConfigError, push
    from harvester.settings import get_settings

    try:
        summary = push(
            _engine(),
            get_settings(),
            production=production,
            base_url=base_url,
            realm=realm,
            candidate_ids=list(candidate_ids) or None,
        )
    except ChmConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        print_json(summary.as_dict())
    else:
        click.echo(
            f"{summary.target.base_url} realm {summary.target.realm}: {summary.calls} calls; "
            + ", ".join(f"{k} {v}" for k, v in sorted(summary.statuses.items()))
        )
        for problem in summary.problems:
            kind = "permanent" if problem["permanent"] else "will retry"
            click.echo(f"  candidate {problem['candidate']}: {problem['error']} ({kind})", err=True)
    if any(p["candidate"] is None for p in summary.problems):
        raise SystemExit(1)


@chm.command("status")
@click.option("--realm", help="Only this realm.")
@json_option
def status_cmd(realm: str | None, as_json: bool) -> None:
    """CHM submission state of every accepted candidate: status, attempts, last error."""
    from storage.db import transaction
    from storage.submissions import all_submissions

    engine = _engine()
    with transaction(engine) as session:
        rows = [
            {
                "candidate": r.candidate_id,
                "realm": r.realm,
                "schema": r.schema,
                "identifier": r.identifier,
                "status": r.status,
                "attempts": r.attempts,
                "workflow": r.workflow_id,
                "error": r.error,
                "requested": r.requested_action,
            }
            for r in all_submissions(session, realm)
        ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            ["candidate", "realm", "status", "attempts", "identifier", "error"],
            [[r["candidate"], r["realm"], r["status"], r["attempts"], r["identifier"], r["error"]] for r in rows],
        )


@chm.command("curate")
@click.argument("candidate_id", type=int)
@click.option(
    "--schema",
    type=click.Choice(["resource", "capacityBuildingInitiative", "organization"]),
    default="resource",
    show_default=True,
)
@click.option(
    "--data",
    "data_file",
    type=click.File("r", encoding="utf-8"),
    help="JSON object of CHM fields merged over the mapped document (the extra mandatory data).",
)
@click.option("--as", "actor", default="cli", show_default=True, help="Curator name for the record.")
def curate_cmd(candidate_id: int, schema: str, data_file: click.utils.LazyFile | None, actor: str) -> None:
    """Choose a candidate's CHM schema and supply CHM field values; prints the local validation."""
    from harvester.chm.prepare import input_for, prepare_one
    from storage.db import transaction
    from storage.models import Candidate
    from storage.submissions import SubmissionError, set_curation

    try:
        fields = json.load(data_file) if data_file else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(fields, dict):
        raise click.BadParameter("must be a JSON object of CHM fields", param_hint="--data")
    with transaction(_engine()) as session:
        try:
            set_curation(session, candidate_id, schema, fields, actor)
        except SubmissionError as exc:
            raise click.UsageError(str(exc)) from None
        row = session.get(Candidate, candidate_id)
        assert row is not None
        errors = prepare_one(input_for(session, row)).errors
    click.echo(f"candidate {candidate_id}: CHM schema {schema}; " + ("valid" if not errors else "invalid:"))
    for e in errors:
        click.echo(f"  {e['code']} {e['property']} {e['detail']}".rstrip())


def _request(candidate_id: int, realm: str | None, action: str) -> None:
    from harvester.settings import get_settings
    from storage.db import transaction
    from storage.submissions import SubmissionError, request_action

    with transaction(_engine()) as session:
        try:
            request_action(session, candidate_id, realm or get_settings().chm_realm, action)
        except SubmissionError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(f"candidate {candidate_id}: {action} requested; the next `harvester chm push` carries it out")


@chm.command("repush")
@click.argument("candidate_id", type=int)
@click.option("--realm", help="Realm (default HARVESTER_CHM_REALM).")
def repush_cmd(candidate_id: int, realm: str | None) -> None:
    """Submit a candidate again on the next push, even if its document is unchanged."""
    _request(candidate_id, realm, "repush")


@chm.command("withdraw")
@click.argument("candidate_id", type=int)
@click.option("--realm", help="Realm (default HARVESTER_CHM_REALM).")
def withdraw_cmd(candidate_id: int, realm: str | None) -> None:
    """Withdraw a candidate from the CHM on the next push (cancel its request or unpublish it)."""
    _request(candidate_id, realm, "withdraw")
