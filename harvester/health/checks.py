"""Source health: compare each run with the source's own history and keep alerts about what broke.

Checks (each one an ``AlertKind``), on the latest finished run against the median of up to N
finished runs before it:

- ``zero_items``: the run stored no record at all (new + updated + not_modified = 0);
- ``error_spike``: error rate well above the source's usual rate;
- ``not_modified_collapse``: a source whose records are usually unchanged suddenly has almost none
  unchanged (conditional GET or the content hash stopped working: everything gets rewritten);
- ``item_count_drop`` / ``item_count_jump``: records seen far below / above the median;
- ``field_empty``: a field that used to be filled is empty across the run's candidates (a
  selector or API field drifted). Fill rates come from the candidates whose ``last_run_id`` is the
  run (``field_fill_stats``, stored in the run's stats at run end);
- ``repeated_failures``: the last runs failed or were interrupted;
- ``stuck_run``: a ``running`` row whose heartbeat is older than a threshold;
- ``run_quarantined``: a run held in over-harvest quarantine (``harvester.health.quarantine``) waits for an admin;
- ``store_failed``: the latest ended run could not store some records (the database failed past the
  retries); they are read again by the next crawl, which resolves the alert when it stores everything.

Alerts live in the ``alerts`` table, one open alert per (source, kind, subject); a re-check refreshes
it, a check that no longer finds the condition resolves it.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select, text
from sqlalchemy.orm import Session

from storage.models import Alert, AlertKind, Candidate, CrawlRun, RunStatus
from storage.upsert import insert_for

TEXT_FIELDS = ("title", "summary", "text", "start_date", "end_date", "published")
LIST_FIELDS = ("organisations", "countries", "regions", "keywords")
FILL_FIELDS = TEXT_FIELDS + LIST_FIELDS

METRIC_KINDS = frozenset(
    {
        AlertKind.ZERO_ITEMS,
        AlertKind.ERROR_SPIKE,
        AlertKind.NOT_MODIFIED_COLLAPSE,
        AlertKind.ITEM_COUNT_DROP,
        AlertKind.ITEM_COUNT_JUMP,
        AlertKind.FIELD_EMPTY,
    }
)
TERMINAL = (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.INTERRUPTED)


@dataclass(frozen=True)
class Thresholds:
    history_runs: int = 10
    error_min_count: int = 3
    error_rate_min: float = 0.2
    error_rate_factor: float = 3.0
    count_min_median: float = 10
    count_drop_ratio: float = 0.5
    count_jump_ratio: float = 2.0
    not_modified_median_min: float = 0.5
    not_modified_collapse_ratio: float = 0.25
    field_baseline_min: float = 0.5
    field_empty_max: float = 0.05
    failures_in_a_row: int = 2
    stuck_after: timedelta = timedelta(minutes=30)


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class RunView:
    id: int
    status: str
    stats: dict[str, Any]
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finish_reason: str | None = None

    @classmethod
    def of(cls, run: CrawlRun) -> RunView:
        return cls(
            run.id, run.status, dict(run.stats or {}), aware(run.started_at), aware(run.heartbeat_at), run.finish_reason
        )


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str
    run_id: int | None
    subject: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# -- per-field fill rates ----------------------------------------------------------------------------


def field_fill_stats(session: Session, run_id: int) -> dict[str, Any]:
    """Share of the run's candidates (``last_run_id`` = run) with each field filled, for the run stats."""
    where = and_(Candidate.last_run_id == run_id, Candidate.gone_at_source.is_(False))
    filled = [
        func.coalesce(func.sum(case((and_(col.is_not(None), func.trim(col) != ""), 1), else_=0)), 0)
        for col in (getattr(Candidate, name) for name in TEXT_FIELDS)
    ]
    row = session.execute(select(func.count(), *filled).select_from(Candidate).where(where)).one()
    total, text_counts = int(row[0]), [int(v) for v in row[1:]]
    counts = dict(zip(TEXT_FIELDS, text_counts, strict=True)) | dict.fromkeys(LIST_FIELDS, 0)
    if total:
        for lists in session.execute(select(*(getattr(Candidate, n) for n in LIST_FIELDS)).where(where)):
            for name, value in zip(LIST_FIELDS, lists, strict=True):
                counts[name] += bool(value)
    rates = {name: round(counts[name] / total, 4) if total else 0.0 for name in FILL_FIELDS}
    return {"field_fill": rates, "field_fill_candidates": total}


# -- pure checks -------------------------------------------------------------------------------------


def records_seen(stats: dict[str, Any]) -> int:
    """Records the run stored or confirmed unchanged (304 pages count their previous records)."""
    return int(stats.get("new", 0) or 0) + int(stats.get("updated", 0) or 0) + int(stats.get("not_modified", 0) or 0)


def error_rate(stats: dict[str, Any]) -> float:
    errors = int(stats.get("errors", 0) or 0)
    return errors / max(int(stats.get("requests", 0) or 0), records_seen(stats), 1)


def not_modified_share(stats: dict[str, Any]) -> float | None:
    seen = records_seen(stats)
    return int(stats.get("not_modified", 0) or 0) / seen if seen else None


def _median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def _fill(run: RunView, name: str) -> float | None:
    fill = run.stats.get("field_fill")
    if not isinstance(fill, dict) or not run.stats.get("field_fill_candidates") or name not in fill:
        return None
    return float(fill[name])


def evaluate_run(
    source_id: str, current: RunView, earlier: Sequence[RunView], t: Thresholds = DEFAULT_THRESHOLDS
) -> list[Finding]:
    """Metric findings for ``current`` (a finished run) against ``earlier`` finished runs, newest first."""
    found: list[Finding] = []
    stats = current.stats
    history = list(earlier[: t.history_runs])
    seen = records_seen(stats)
    seen_median = _median(records_seen(r.stats) for r in history)
    base = {"run": current.id, "history_runs": len(history)}

    if seen == 0 and int(stats.get("items", 0) or 0) == 0:
        against = f" (median of the {len(history)} run(s) before: {seen_median:g})" if history else ""
        found.append(
            Finding(
                AlertKind.ZERO_ITEMS,
                f"run {current.id} on {source_id} finished with no records{against}",
                current.id,
                details=base | {"median": seen_median},
            )
        )
    elif seen_median is not None and seen_median >= t.count_min_median:
        if seen < t.count_drop_ratio * seen_median:
            found.append(
                Finding(
                    AlertKind.ITEM_COUNT_DROP,
                    f"{seen} records on {source_id} in run {current.id}, down from a median of {seen_median:g}",
                    current.id,
                    details=base | {"records": seen, "median": seen_median},
                )
            )
        elif seen > t.count_jump_ratio * seen_median:
            found.append(
                Finding(
                    AlertKind.ITEM_COUNT_JUMP,
                    f"{seen} records on {source_id} in run {current.id}, up from a median of {seen_median:g}",
                    current.id,
                    details=base | {"records": seen, "median": seen_median},
                )
            )

    errors, rate = int(stats.get("errors", 0) or 0), error_rate(stats)
    rate_median = _median(error_rate(r.stats) for r in history) or 0.0
    if errors >= t.error_min_count and rate >= t.error_rate_min and rate >= t.error_rate_factor * rate_median:
        found.append(
            Finding(
                AlertKind.ERROR_SPIKE,
                f"error rate {rate:.0%} ({errors} errors) on {source_id} in "
                f"run {current.id}, usually {rate_median:.0%}",
                current.id,
                details=base | {"errors": errors, "rate": round(rate, 4), "median_rate": round(rate_median, 4)},
            )
        )

    share = not_modified_share(stats)
    share_median = _median(s for s in (not_modified_share(r.stats) for r in history) if s is not None)
    if (
        share is not None
        and share_median is not None
        and share_median >= t.not_modified_median_min
        and share < t.not_modified_collapse_ratio * share_median
    ):
        found.append(
            Finding(
                AlertKind.NOT_MODIFIED_COLLAPSE,
                f"not_modified fell to {share:.0%} of records on "
                f"{source_id} in run {current.id} (usually {share_median:.0%}): conditional requests "
                "or content hashes may have stopped working",
                current.id,
                details=base | {"share": round(share, 4), "median_share": round(share_median, 4)},
            )
        )

    for name in FILL_FIELDS:
        now_fill = _fill(current, name)
        if now_fill is None or now_fill > t.field_empty_max:
            continue
        since, before = current.id, []
        for run in earlier:  # walk back over the streak of runs where the field was already empty
            fill = _fill(run, name)
            if fill is None:
                continue
            if fill <= t.field_empty_max and not before:
                since = run.id
                continue
            before.append(fill)
            if len(before) >= t.history_runs:
                break
        baseline = _median(before)
        if baseline is not None and baseline >= t.field_baseline_min:
            found.append(
                Finding(
                    AlertKind.FIELD_EMPTY,
                    f"field {name} empty on source {source_id} since run {since}",
                    current.id,
                    subject=name,
                    details=base
                    | {
                        "field": name,
                        "fill": now_fill,
                        "baseline_fill": baseline,
                        "since_run": since,
                        "candidates": current.stats.get("field_fill_candidates"),
                    },
                )
            )
    return found


def failure_findings(source_id: str, runs: Sequence[RunView], t: Thresholds = DEFAULT_THRESHOLDS) -> list[Finding]:
    """``runs``: terminal runs, newest first."""
    streak: list[RunView] = []
    for run in runs:
        if run.status == RunStatus.FINISHED:
            break
        streak.append(run)
    if len(streak) < t.failures_in_a_row:
        return []
    last, first = streak[0], streak[-1]
    return [
        Finding(
            AlertKind.REPEATED_FAILURES,
            f"{len(streak)} runs in a row failed or were interrupted on {source_id} since run {first.id} "
            f"(last: {last.status}, {last.finish_reason or 'no reason'}); still scheduled, with back-off",
            last.id,
            details={"failures": len(streak), "since_run": first.id, "last_reason": last.finish_reason},
        )
    ]


def store_failure_findings(source_id: str, runs: Sequence[RunView]) -> list[Finding]:
    """``runs``: terminal runs, newest first; the newest one lost records or page writes to the database."""
    if not runs:
        return []
    last = runs[0]
    records = int(last.stats.get("store_failed", 0) or 0)
    writes = int(last.stats.get("store_failed_writes", 0) or 0)
    unrecorded = last.status == RunStatus.FAILED and "not stored" in (last.finish_reason or "")
    if not (records or writes or unrecorded):
        return []
    reasons = ", ".join(sorted(last.stats.get("store_failed_reasons") or {})) or "database error"
    what = f"{records} records" if records else f"{writes} page or window writes" if writes else "records"
    return [
        Finding(
            AlertKind.STORE_FAILED,
            f"run {last.id} on {source_id} could not store {what} ({reasons}): run failed; the next crawl "
            "reads them again",
            last.id,
            details={
                "run": last.id,
                "records_not_stored": records,
                "writes_failed": writes,
                "reasons": last.stats.get("store_failed_reasons") or {},
                "finish_reason": last.finish_reason,
            },
        )
    ]


def stuck_findings(
    source_id: str, running: Sequence[RunView], now: datetime, t: Thresholds = DEFAULT_THRESHOLDS
) -> list[Finding]:
    found = []
    for run in running:
        beat = run.heartbeat_at or run.started_at
        if beat is None or now - beat <= t.stuck_after:
            continue
        minutes = int((now - beat).total_seconds() // 60)
        found.append(
            Finding(
                AlertKind.STUCK_RUN,
                f"run {run.id} on {source_id} has had no heartbeat for {minutes} min "
                f"(started {run.started_at.isoformat(timespec='minutes') if run.started_at else '?'})",
                run.id,
                details={"run": run.id, "minutes_without_heartbeat": minutes},
            )
        )
    return found


def quarantine_findings(session: Session, source_id: str) -> list[Finding]:
    """One alert per run held in over-harvest quarantine, until an admin releases or discards it."""
    held = session.scalars(
        select(CrawlRun).where(CrawlRun.source_id == source_id, CrawlRun.quarantine == "held").order_by(CrawlRun.id)
    )
    return [
        Finding(
            AlertKind.RUN_QUARANTINED,
            f"run {run.id} on {source_id} is held in over-harvest quarantine "
            f"({(run.quarantine_details or {}).get('reason', 'too many new records')}): release or discard it",
            run.id,
            subject=f"run {run.id}",
            details={"run": run.id, **(run.quarantine_details or {})},
        )
        for run in held
    ]


# -- alerts table ------------------------------------------------------------------------------------


@dataclass
class HealthReport:
    source_id: str
    opened: list[Alert] = field(default_factory=list)
    still_open: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


def open_alert(session: Session, source_id: str, finding: Finding, now: datetime | None = None) -> tuple[Alert, bool]:
    """Open the alert, or refresh the open one of the same (source, kind, subject). Returns (alert, new)."""
    now = now or datetime.now(UTC)
    stmt = (
        insert_for(session, Alert)
        .values(
            source_id=source_id,
            run_id=finding.run_id,
            kind=str(finding.kind),
            subject=finding.subject,
            message=finding.message,
            details=finding.details,
            created_at=now,
            last_seen_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["source_id", "kind", "subject"], index_where=text("resolved_at IS NULL")
        )
    )
    new_id = session.execute(stmt.returning(Alert.id)).scalar_one_or_none()
    if new_id is not None:
        return session.get_one(Alert, new_id), True
    alert = session.scalars(
        select(Alert).where(
            Alert.source_id == source_id,
            Alert.kind == str(finding.kind),
            Alert.subject == finding.subject,
            Alert.resolved_at.is_(None),
        )
    ).one()
    alert.last_seen_at = now
    return alert, False


def resolve_alerts(
    session: Session,
    source_id: str,
    kinds: Iterable[str],
    keep: Collection[tuple[str, str]] = (),
    subject: str | None = None,
    now: datetime | None = None,
) -> list[Alert]:
    """Resolve open alerts of ``kinds`` (optionally one subject) except the (kind, subject) pairs in ``keep``."""
    now = now or datetime.now(UTC)
    query = select(Alert).where(
        Alert.source_id == source_id, Alert.kind.in_([str(k) for k in kinds]), Alert.resolved_at.is_(None)
    )
    if subject is not None:
        query = query.where(Alert.subject == subject)
    resolved = [a for a in session.scalars(query) if (a.kind, a.subject) not in keep]
    for alert in resolved:
        alert.resolved_at = now
    return resolved


def check_source(
    session: Session, source_id: str, now: datetime | None = None, t: Thresholds = DEFAULT_THRESHOLDS
) -> HealthReport:
    """Run every check for one source and bring its alerts up to date."""
    now = now or datetime.now(UTC)
    recent = [
        RunView.of(r)
        for r in session.scalars(
            select(CrawlRun)
            .where(CrawlRun.source_id == source_id, CrawlRun.status.in_([s.value for s in TERMINAL]))
            .order_by(CrawlRun.id.desc())
            .limit(5 * t.history_runs + 1)
        )
    ]
    running = [
        RunView.of(r)
        for r in session.scalars(
            select(CrawlRun).where(CrawlRun.source_id == source_id, CrawlRun.status == RunStatus.RUNNING)
        )
    ]
    finished = [r for r in recent if r.status == RunStatus.FINISHED]
    findings: list[Finding] = []
    evaluated: set[str] = {AlertKind.REPEATED_FAILURES, AlertKind.STUCK_RUN, AlertKind.STORE_FAILED}
    if finished:
        findings += evaluate_run(source_id, finished[0], finished[1:], t)
        evaluated |= METRIC_KINDS
    findings += failure_findings(source_id, recent, t)
    findings += store_failure_findings(source_id, recent)
    findings += stuck_findings(source_id, running, now, t)
    findings += quarantine_findings(session, source_id)
    evaluated.add(AlertKind.RUN_QUARANTINED)

    report = HealthReport(source_id)
    for finding in findings:
        alert, new = open_alert(session, source_id, finding, now)
        (report.opened if new else report.still_open).append(alert)
    keep = {(str(f.kind), f.subject) for f in findings}
    report.resolved = resolve_alerts(session, source_id, evaluated, keep, now=now)
    session.flush()
    return report


def check_sources(
    session: Session, source_ids: Iterable[str], now: datetime | None = None, t: Thresholds = DEFAULT_THRESHOLDS
) -> list[HealthReport]:
    return [check_source(session, source_id, now, t) for source_id in source_ids]


def alerts(session: Session, source_id: str | None = None, include_resolved: bool = False) -> list[Alert]:
    query = select(Alert).order_by(Alert.source_id, Alert.created_at, Alert.id)
    if source_id:
        query = query.where(Alert.source_id == source_id)
    if not include_resolved:
        query = query.where(Alert.resolved_at.is_(None))
    return list(session.scalars(query))


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "source": alert.source_id,
        "kind": alert.kind,
        "subject": alert.subject or None,
        "run": alert.run_id,
        "message": alert.message,
        "details": alert.details,
        "created": aware(alert.created_at),
        "last_seen": aware(alert.last_seen_at),
        "resolved": aware(alert.resolved_at),
    }
