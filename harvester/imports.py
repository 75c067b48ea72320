"""Partner files imported as a run of their own (``harvester import``, the ``file`` source kind).

Partners that offer no API still send files. A file is read whole with the source's declarative
``record`` mapping (the readers and rules of the ``export`` kind), and every record goes through the
crawl's CPU stages (extract, language, hashes, classify) before anything is written: a file that
cannot be read, a record without its key, a key given twice or a record with no text is refused
in one line and nothing is stored. Then one transaction registers the source, opens the run, upserts
each record by its key, links near-duplicates (against harvested records too), marks records missing
from the file as gone only when the operator says the file is complete, and closes the run with its
stats: a failure anywhere rolls all of it back.

Nothing here poses as a replay of the partner's site: such a source is never ``verified``, the run's
trigger is ``import`` (``replay`` false), and each candidate's provenance names the file, its sha256,
the capture date its publisher states and the record's position. A record whose content did not
change is only marked as seen (no new version, no provenance rewrite), so re-importing a file
changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from harvester.extraction.records import record_identity
from harvester.extraction.structured import StructuredBodyError, iter_export
from harvester.items import CandidateItem
from harvester.registry import SourceKind, SourceSpec

IMPORT_TRIGGER = "import"
_IN_CHUNK = 500


class FileImportError(ValueError):
    """A file that cannot be imported; the message names the file and, where it applies, the record."""


@dataclass(frozen=True)
class ImportFile:
    """One file to import and the capture date its publisher states (``None``: not stated)."""

    path: Path
    captured: date | None = None


@dataclass
class ImportResult:
    run_id: int
    stats: dict[str, Any] = field(default_factory=dict)


def registry_files(spec: SourceSpec, fixtures_root: Path | None = None) -> list[ImportFile]:
    """The file the registry entry names under the fixtures folder, with its stated capture date."""
    from harvester.recordings.fixtures import fixtures_dir

    if spec.file is None or spec.file.fixture is None:
        raise FileImportError(f"source {spec.id!r} names no file of its own: give the FILE to import")
    return [ImportFile(fixtures_dir(fixtures_root) / spec.file.fixture, spec.file.captured)]


def file_provenance(name: str, sha256: str, captured: date | None, number: int) -> dict[str, str]:
    """What every imported candidate says about where it came from."""
    return {
        "file": name,
        "file_sha256": sha256,
        "file_captured": captured.isoformat() if captured else "not stated",
        "file_record": str(number),
    }


def read_file_records(
    spec: SourceSpec, source: ImportFile, seed: int = 0, model: Any = None
) -> tuple[dict[str, Any], list[CandidateItem]]:
    """Every record of one file as a finished candidate item (stages run), and the file's summary.

    Raises ``FileImportError`` on the first problem: nothing of a bad file is kept."""
    from harvester.stages import run_cpu_stages

    assert spec.file is not None
    path, name = source.path, source.path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileImportError(f"{path}: cannot read: {exc.strerror}") from None
    if not data.strip():
        raise FileImportError(f"{path}: file is empty")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        rows = list(iter_export(data, spec.file))
    except StructuredBodyError as exc:
        raise FileImportError(f"{path}: not a readable {spec.file.format.upper()} file: {exc}") from None
    if not rows:
        raise FileImportError(f"{path}: no records")
    items: list[CandidateItem] = []
    for number, row in enumerate(rows, start=1):
        key, url = record_identity(row, spec.record, spec.start_urls[0])
        if spec.record.key and key is None:
            raise FileImportError(f"{path}: record {number} has no {spec.record.key!r} (the record key)")
        item = CandidateItem(source_id=spec.id, url=url, fetched_url=f"file:{name}", record_key=key, raw=row)
        outcome = run_cpu_stages(item, spec, seed, model)
        if outcome.error:
            raise FileImportError(f"{path}: record {number} ({key or url}): {outcome.error.split(': ', 1)[-1]}")
        item.raw = None
        item.provenance.update(file_provenance(name, sha256, source.captured, number))
        items.append(item)
    summary = {
        "file": name,
        "sha256": sha256,
        "captured": source.captured.isoformat() if source.captured else None,
        "format": spec.file.format,
        "records": len(items),
    }
    return summary, items


def _unique(items: list[CandidateItem]) -> None:
    """Refuse a key given twice (in one file or across the files of one import)."""
    seen: dict[str, str] = {}
    for item in items:
        assert item.canonical_url is not None
        where = f"{item.provenance['file']} record {item.provenance['file_record']}"
        first = seen.setdefault(item.canonical_url, where)
        if first != where:
            raise FileImportError(f"{where} repeats the record key {item.record_key or item.url!r} of {first}")


def _load_model() -> Any:
    from storage.db import session_factory
    from storage.model_store import ModelUnavailable, latest_model

    try:
        with session_factory()() as session:
            return latest_model(session)
    except ModelUnavailable:
        return None


def import_files(
    spec: SourceSpec,
    sources: Sequence[ImportFile],
    *,
    complete: bool = False,
    threshold: float | None = None,
    seed: int = 0,
    trigger: str = IMPORT_TRIGGER,
) -> ImportResult:
    """Import ``sources`` (together one run of ``spec``); ``complete``: they hold every record the
    partner has, so stored records missing from them are gone at the source."""
    from harvester.classify.routing import pending_threshold

    if spec.kind != SourceKind.FILE or spec.file is None:
        raise FileImportError(f"source {spec.id!r} is of kind {spec.kind.value!r}: only file sources are imported")
    if not sources:
        raise FileImportError("no file to import")
    started = time.monotonic()
    threshold = pending_threshold(0.35) if threshold is None else threshold
    model = _load_model()
    files, items = [], []
    for source in sources:
        summary, file_items = read_file_records(spec, source, seed, model)
        files.append(summary)
        items.extend(file_items)
    _unique(items)
    classifier = model.version if model is not None else "rules"
    stats = _store(spec, items, files, complete, threshold, trigger, classifier, started)
    return ImportResult(stats.pop("run_id"), stats)


def _store(
    spec: SourceSpec,
    items: list[CandidateItem],
    files: list[dict[str, Any]],
    complete: bool,
    threshold: float,
    trigger: str,
    classifier: str,
    started: float,
) -> dict[str, Any]:
    """Store the run in one transaction; ``started``: ``time.monotonic()`` when the import began."""
    import json

    from harvester.dedupe import record_hash
    from harvester.health.checks import field_fill_stats
    from storage.clusters import FingerprintCache, link_duplicates
    from storage.db import transaction
    from storage.models import Candidate, CandidateStatus, RunStatus
    from storage.queue import Outcome, mark_gone, upsert_candidate
    from storage.runs import ensure_source, finish_run, start_run

    counts = dict.fromkeys(("new", "new_pending", "new_filtered", "updated", "not_modified", "gone", "clustered"), 0)
    cache = FingerprintCache()
    with transaction() as session:
        ensure_source(
            session,
            spec.id,
            spec.name,
            spec.kind.value,
            spec.verified,
            spec.enabled,
            record_hash(json.loads(spec.model_dump_json())),
        )
        run_id = start_run(session, spec.id, trigger, replay=False).id
        stored = _stored_hashes(session, spec.id)
        unchanged: list[str] = []
        for item in items:
            url = item.canonical_url
            assert url is not None and item.record_hash is not None
            if stored.get(url) == (item.record_hash, False):
                unchanged.append(url)
                continue
            status = CandidateStatus.PENDING if (item.score or 0) >= threshold else CandidateStatus.FILTERED
            result = upsert_candidate(
                session,
                source_id=spec.id,
                url=url,
                record_hash=item.record_hash,
                run_id=run_id,
                initial_status=status,
                values=_values(item),
            )
            counts[result.outcome.value] += 1
            if result.outcome is Outcome.NEW:
                counts[f"new_{status.value}"] += 1
            if result.outcome is not Outcome.NOT_MODIFIED and link_duplicates(
                session, result.candidate_id, new=result.outcome is Outcome.NEW, cache=cache
            ):
                counts["clustered"] += 1
        for start in range(0, len(unchanged), _IN_CHUNK):  # seen again; a Core update bumps no version
            session.execute(
                update(Candidate)
                .where(Candidate.source_id == spec.id, Candidate.url.in_(unchanged[start : start + _IN_CHUNK]))
                .values(last_run_id=run_id)
            )
        counts["not_modified"] += len(unchanged)
        if complete:
            seen = {item.canonical_url for item in items}
            missing = sorted(url for url, (_, gone) in stored.items() if not gone and url not in seen)
            names = ", ".join(f["file"] for f in files)
            counts["gone"] = mark_gone(session, spec.id, missing, f"not in the complete file {names}", run_id)
        stats: dict[str, Any] = {
            "requests": 0,
            "responses_by_status": {},
            "items": len(items),
            "dropped": 0,
            "errors": 0,
            "pages_parsed": len(files),
            "pages_not_modified": 0,
            **{k: v for k, v in counts.items() if k != "clustered"},
            "dedupe_clustered": counts["clustered"],
            "classifier": classifier,
            "import": {"files": files, "complete": complete},
        }
        session.flush()
        stats |= field_fill_stats(session, run_id)
        stats["duration_s"] = round(time.monotonic() - started, 3)
        finish_run(session, run_id, RunStatus.FINISHED, "finished", stats)
    return {"run_id": run_id, **stats}


def _values(item: CandidateItem) -> dict[str, Any]:
    """The columns an upsert writes: the store stage's, less the fetched-page bookkeeping a file has none of."""
    return {
        **item.harvested_fields(),
        "record_key": item.record_key,
        "fetched_url": item.fetched_url,
        "provenance": item.provenance,
        "language": item.language,
        "language_prob": item.language_prob,
        "criteria": {k: v.as_dict() for k, v in item.criteria.items()},
        "score": item.score,
        "tags": item.tags,
        "classifier_version": item.classifier_version,
        "text_hash": item.text_hash,
    }


def _stored_hashes(session: Session, source_id: str) -> dict[str, tuple[str | None, bool]]:
    from storage.models import Candidate

    rows = session.execute(
        select(Candidate.url, Candidate.record_hash, Candidate.gone_at_source).where(Candidate.source_id == source_id)
    )
    return {url: (digest, bool(gone)) for url, digest, gone in rows}
