"""``chm push``: the submission state machine over the KM API.

Per record: sign-in (once, refreshed) -> server validate -> draft save -> publishing request
(``publishReferenceRecord``) -> later runs poll the request. State is committed before and after every
remote call that changes something (``pending_step``), so a push killed at any point and run again
neither duplicates a draft or request nor loses where a record is: a re-saved draft overwrites the
same identifier, and an interrupted request is looked up before a new one is started.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from harvester.chm.client import (
    PRODUCTION_BASE,
    PRODUCTION_REALM,
    Credentials,
    KmClient,
    KmError,
    PermanentKmError,
    TransientKmError,
)
from harvester.chm.prepare import next_step, prepare_all
from harvester.settings import Settings
from storage.db import transaction
from storage.models import ChmStatus, ChmSubmission
from storage.runs import now
from storage.submissions import SERVER_PREFIX

REQUEST_TYPE = "publishReferenceRecord"
DELETE_TYPE, DELETE_VERSION = "deleteRecord", "0.4"


class ChmConfigError(ValueError):
    """A push that must not start: missing credentials, production without ``--production``."""


@dataclass(frozen=True)
class Target:
    base_url: str
    realm: str


@dataclass
class PushSummary:
    target: Target
    steps: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.target.base_url,
            "realm": self.target.realm,
            "steps": dict(self.steps),
            "statuses": dict(self.statuses),
            "problems": self.problems,
            "calls": self.calls,
        }


def resolve_target(
    settings: Settings, *, production: bool = False, base_url: str | None = None, realm: str | None = None
) -> Target:
    if production:
        return Target(PRODUCTION_BASE, PRODUCTION_REALM)
    target = Target((base_url or settings.chm_api_base).rstrip("/"), realm or settings.chm_realm)
    if (
        urlsplit(target.base_url).hostname == urlsplit(PRODUCTION_BASE).hostname
        or target.realm.upper() == PRODUCTION_REALM
    ):
        raise ChmConfigError(f"{target.base_url} realm {target.realm} is the production CHM: pass --production")
    return target


def client_for(settings: Settings, target: Target) -> KmClient:
    if not settings.chm_email or settings.chm_password is None:
        raise ChmConfigError("set HARVESTER_CHM_EMAIL and HARVESTER_CHM_PASSWORD (a CBD account) to push")
    return KmClient(
        target.base_url,
        target.realm,
        Credentials(settings.chm_email, settings.chm_password.get_secret_value()),
        auth_scheme=settings.chm_auth_scheme,
        timeout=settings.chm_timeout,
        max_attempts=settings.chm_max_attempts,
        backoff=settings.chm_retry_backoff,
    )


class _Pusher:
    def __init__(self, engine: Engine, client: KmClient, summary: PushSummary) -> None:
        self.engine, self.client, self.summary = engine, client, summary

    def update(self, row_id: int, **values: Any) -> ChmSubmission:
        with transaction(self.engine) as session:
            row = session.get(ChmSubmission, row_id, with_for_update=True)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now()
            session.flush()
            session.expunge(row)
            return row

    def run(self, row_id: int, step: str) -> None:
        row = self.update(row_id, last_attempt_at=now())
        try:
            {"submit": self.submit, "poll": self.poll, "withdraw": self.withdraw}[step](row)
        except PermanentKmError as exc:
            self.update(
                row_id,
                status=ChmStatus.FAILED,
                permanent_error=True,
                errors=exc.errors,
                error=str(exc),
                pending_step=None,
            )  # refused, so nothing was created remotely
            self.summary.problems.append({"candidate": row.candidate_id, "error": str(exc), "permanent": True})
        except TransientKmError as exc:
            self.update(row_id, status=ChmStatus.FAILED, permanent_error=False, error=str(exc))
            self.summary.problems.append({"candidate": row.candidate_id, "error": str(exc), "permanent": False})

    def submit(self, row: ChmSubmission) -> None:
        row = self.update(row.id, attempts=row.attempts + 1)
        doc, digest = row.payload or {}, row.payload_hash
        if row.pending_step == "workflow":
            found = self.client.open_workflows(row.identifier)
            if found:
                self.requested(row, found[0])
                return
        elif row.status == ChmStatus.PUBLISH_REQUESTED and row.workflow_id:
            self.client.cancel_workflow(row.workflow_id)  # an edited record replaces its open request
            row = self.update(row.id, workflow_id=None)
        errors = self.client.validate(row.schema, doc)
        if errors:
            self.update(
                row.id,
                status=ChmStatus.INVALID,
                errors=errors,
                permanent_error=True,
                pending_step=None,
                requested_action=None,
                error=SERVER_PREFIX + "; ".join(f"{e['code']} {e['property']}" for e in errors),
            )
            return
        self.update(row.id, pending_step="draft")
        draft = self.client.save_draft(row.identifier, row.schema, doc)
        row = self.update(
            row.id,
            status=ChmStatus.DRAFT_SAVED,
            document_id=_str(draft.get("documentID")),
            pushed_hash=digest,
            pending_step="workflow",
        )
        self.requested(row, self.start_request(row, draft))

    def start_request(self, row: ChmSubmission, draft: dict[str, Any]) -> dict[str, Any]:
        """POST the publishing request, never blindly twice: after a failed try, look for it first."""
        info = f"Submitted by CHM Harvester, candidate {row.candidate_id}"
        failure: TransientKmError | None = None
        for attempt in range(self.client.max_attempts):
            if attempt:
                self.client.sleep(self.client.backoff * 2 ** (attempt - 1))
                found = self.client.open_workflows(row.identifier)
                if found:
                    return found[0]
            try:
                return self.client.start_workflow(REQUEST_TYPE, draft, row.identifier, info)
            except TransientKmError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def requested(self, row: ChmSubmission, workflow: dict[str, Any]) -> None:
        self.update(
            row.id,
            status=ChmStatus.PUBLISH_REQUESTED,
            workflow_id=_str(workflow.get("_id")),
            pending_step=None,
            requested_action=None,
            errors=[],
            error=None,
            permanent_error=False,
        )

    def poll(self, row: ChmSubmission) -> None:
        workflow = self.client.workflow(row.workflow_id or "")
        if workflow is None:
            self.update(
                row.id,
                status=ChmStatus.FAILED,
                permanent_error=False,
                error=f"publishing request {row.workflow_id} not found; it will be submitted again",
            )
            return
        state = str(workflow.get("state", "")).lower()
        if state == "running":
            return
        if state == "completed" and _action(workflow) != "reject":
            self.update(row.id, status=ChmStatus.PUBLISHED, error=None)
        else:
            reason = _reason(workflow) or f"request ended in state {state!r}"
            self.update(
                row.id,
                status=ChmStatus.REJECTED,
                error=reason,
                errors=[{"code": "rejected", "property": "", "detail": reason}],
            )

    def withdraw(self, row: ChmSubmission) -> None:
        if row.status == ChmStatus.PUBLISH_REQUESTED and row.workflow_id:
            self.client.cancel_workflow(row.workflow_id)
        elif row.status == ChmStatus.PUBLISHED:
            self.client.start_workflow(
                DELETE_TYPE,
                {"documentID": row.document_id},
                row.identifier,
                f"Withdrawn by a CHM Harvester admin, candidate {row.candidate_id}",
                version=DELETE_VERSION,
            )
        self.client.delete_draft(row.identifier)
        self.update(row.id, status=ChmStatus.WITHDRAWN, requested_action=None, pending_step=None, error=None)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _action(workflow: dict[str, Any]) -> str | None:
    """The approver's decision: ``result.action`` or the last activity's ([I] shape not seen live)."""
    result = workflow.get("result")
    if isinstance(result, dict) and result.get("action"):
        return str(result["action"])
    for activity in reversed(workflow.get("activities") or []):
        found = (activity.get("result") or {}).get("action") if isinstance(activity, dict) else None
        if found:
            return str(found)
    return None


def _reason(workflow: dict[str, Any]) -> str | None:
    for activity in reversed(workflow.get("activities") or []):
        if isinstance(activity, dict) and isinstance(activity.get("result"), dict) and activity["result"].get("reason"):
            return str(activity["result"]["reason"])
    return None


def push(
    engine: Engine,
    settings: Settings,
    *,
    production: bool = False,
    base_url: str | None = None,
    realm: str | None = None,
    candidate_ids: list[int] | None = None,
    client: KmClient | None = None,
) -> PushSummary:
    """Bring every accepted candidate's CHM document to the target realm; return what happened."""
    target = resolve_target(settings, production=production, base_url=base_url, realm=realm)
    client = client or client_for(settings, target)
    summary = PushSummary(target)
    with transaction(engine) as session:
        work = [(row.id, next_step(row)) for _, row in prepare_all(session, target.realm, candidate_ids)]
    pusher = _Pusher(engine, client, summary)
    for row_id, step in work:
        summary.steps[step] += 1
        if step != "skip":
            try:
                pusher.run(row_id, step)
            except KmError as exc:  # sign-in failures reach here: stop, the rows keep their state
                summary.problems.append({"candidate": None, "error": str(exc), "permanent": True})
                break
    with transaction(engine) as session:
        for row_id, _ in work:
            row = session.get(ChmSubmission, row_id)
            if row is not None:
                summary.statuses[row.status] += 1
    summary.calls = client.calls
    return summary
