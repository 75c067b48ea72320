"""``chm export``: every accepted candidate as a CHM document file, a manifest and the HTTP calls a push
would make. No network: this is the default way to feed the CHM (or hand the files to the Secretariat)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine

from harvester.chm.client import V2013
from harvester.chm.prepare import Prepared, next_step, prepare_all
from storage.db import transaction
from storage.models import ChmSubmission


@dataclass
class ExportSummary:
    out_dir: Path
    documents: int = 0
    invalid: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    planned_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "documents": self.documents,
            "invalid": self.invalid,
            "errors": dict(self.errors),
            "planned_calls": self.planned_calls,
        }


def planned_calls(row: ChmSubmission, schema: str) -> list[dict[str, str]]:
    """The KM API calls ``chm push`` would make for this row now (sign-in excluded)."""
    ident, step = quote(row.identifier, safe=""), next_step(row)
    docs = f"{V2013}/documents/{ident}"
    if step == "submit":
        calls = [
            ("PUT", f"{V2013}/documents/x/validate?schema={schema}"),
            ("PUT", f"{docs}/versions/draft?schema={schema}"),
            ("POST", f"{V2013}/workflows"),
        ]
        if row.pending_step == "workflow":
            calls.insert(0, ("GET", f"{V2013}/workflows?q=<open requests of {row.identifier}>"))
        elif row.status == "publish_requested" and row.workflow_id:
            calls.insert(0, ("DELETE", f"{V2013}/workflows/{row.workflow_id}"))
    elif step == "poll":
        calls = [("GET", f"{V2013}/workflows/{row.workflow_id}")]
    elif step == "withdraw":
        first = (
            [("DELETE", f"{V2013}/workflows/{row.workflow_id}")]
            if row.status == "publish_requested"
            else [("POST", f"{V2013}/workflows")]
            if row.status == "published"
            else []
        )
        calls = [*first, ("DELETE", f"{docs}/versions/draft")]
    else:
        calls = []
    return [{"candidate": str(row.candidate_id), "step": step, "method": m, "path": p} for m, p in calls]


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export(engine: Engine, out_dir: Path, realm: str, candidate_ids: list[int] | None = None) -> ExportSummary:
    """Write ``documents/<identifier>.json`` for each valid document, ``manifest.jsonl`` (candidate,
    schema, identifier, sha256, validation result) and ``push-plan.jsonl`` into ``out_dir``."""
    summary = ExportSummary(out_dir)
    docs_dir = out_dir / "documents"
    docs_dir.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, Any]] = []
    plan: list[dict[str, str]] = []
    with transaction(engine) as session:
        prepared: list[tuple[Prepared, ChmSubmission]] = prepare_all(session, realm, candidate_ids)
        for item, row in prepared:
            entry: dict[str, Any] = {
                "candidate": item.candidate_id,
                "schema": item.schema,
                "identifier": item.identifier,
                "sha256": item.sha256,
                "valid": not item.errors,
                "errors": item.errors,
                "status": row.status,
            }
            if item.errors:
                summary.invalid += 1
                summary.errors.update(e["code"] for e in item.errors)
            else:
                entry["file"] = f"documents/{item.identifier}.json"
                _write_json(out_dir / entry["file"], item.document)
                summary.documents += 1
            manifest.append(entry)
            plan.extend(planned_calls(row, item.schema))
    if plan:
        plan.insert(0, {"candidate": "", "step": "sign-in", "method": "POST", "path": f"{V2013}/authentication/token"})
    summary.planned_calls = len(plan)
    (out_dir / "manifest.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in manifest), encoding="utf-8"
    )
    (out_dir / "push-plan.jsonl").write_text(
        "".join(json.dumps(c, sort_keys=True) + "\n" for c in plan), encoding="utf-8"
    )
    return summary
