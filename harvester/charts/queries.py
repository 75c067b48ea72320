"""The charts of the dashboard, source and classification pages, built from the database.

Queue size over time needs no history table: every candidate enters at ``created_at`` in the status
its first decision left (its current status when none), and every decision moves it from
``from_status`` to ``to_status`` at ``at``. Moves between pending and filtered by ``classify rescore``
are not decisions, so they show at the candidate's first status until a curator decides.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from harvester.charts.model import Chart, Kind
from harvester.classify.remaining import RemainingEstimate, StoppingSignal, estimate_remaining, stopping_signal
from harvester.health.checks import FILL_FIELDS, not_modified_share
from storage.models import Candidate, CandidateStatus, ClassifierModel, CrawlRun, Decision

SYSTEM_ACTOR = "harvester"  # storage.model_store.SYSTEM_ACTOR: gone-at-source marks are not curator decisions
DECIDED = (CandidateStatus.ACCEPTED.value, CandidateStatus.REJECTED.value)
T = TypeVar("T")
MAX_POINTS = 400
BINS = 20
RUN_COUNTS = ("items", "new", "updated", "not_modified", "errors")


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sample(points: list[Any]) -> list[Any]:
    """At most MAX_POINTS evenly spread points, always keeping the last."""
    if len(points) <= MAX_POINTS:
        return points
    every = -(-len(points) // MAX_POINTS)
    return points[::every] + ([points[-1]] if (len(points) - 1) % every else [])


# ---- dashboard ---------------------------------------------------------------------------------------


def queue_history(session: Session) -> Chart:
    chart = Chart("Queue size by status over time", "time", "candidates", Kind.STEP)
    first_from: dict[int, str | None] = {}
    events: list[tuple[datetime, int, str | None, str]] = []  # (at, order, from, to)
    for cid, at, did, before, after in session.execute(
        select(Decision.candidate_id, Decision.at, Decision.id, Decision.from_status, Decision.to_status).order_by(
            Decision.id
        )
    ):
        first_from.setdefault(cid, before)
        events.append((aware(at), did, before, after))
    for cid, created, status in session.execute(select(Candidate.id, Candidate.created_at, Candidate.status)):
        events.append((aware(created), -1, None, first_from.get(cid) or status))
    events.sort(key=lambda e: (e[0], e[1]))
    counts: Counter[str] = Counter()
    states: list[tuple[datetime, dict[str, int]]] = []
    for at, _, before, after in events:
        if before:
            counts[before] -= 1
        counts[after] += 1
        if states and states[-1][0] == at:
            states[-1] = (at, dict(counts))
        else:
            states.append((at, dict(counts)))
    for status in CandidateStatus:
        series = chart.add_series(status.value)
        for at, state in _sample(states):
            series.add(at, state.get(status.value, 0))
    chart.series = [s for s in chart.series if any(s.y)]
    return chart


def decided_by_source(session: Session) -> dict[str, tuple[int, int]]:
    """``source -> (accepted, decided)`` by current status (decided = accepted + rejected)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for source, status, n in session.execute(
        select(Candidate.source_id, Candidate.status, func.count())
        .where(Candidate.status.in_(DECIDED))
        .group_by(Candidate.source_id, Candidate.status)
    ):
        out[source][1] += n
        if status == CandidateStatus.ACCEPTED.value:
            out[source][0] += n
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def acceptance_rate(session: Session) -> Chart:
    chart = Chart(
        "Acceptance rate per source (accepted / decided)", "source", "acceptance rate", Kind.BAR, y_range=(0, 1)
    )
    series = chart.add_series("accepted / decided")
    for source, (accepted, decided) in decided_by_source(session).items():
        series.add(source, accepted / decided)
    return chart


def _runs(session: Session, source_id: str | None = None, limit: int = 500) -> list[CrawlRun]:
    query = select(CrawlRun).order_by(CrawlRun.id.desc()).limit(limit)
    if source_id:
        query = query.where(CrawlRun.source_id == source_id)
    return list(reversed(session.scalars(query).all()))


def runs_chart(
    runs: Sequence[CrawlRun],
    stat: str = "items",
    title: str = "Candidates per source per run",
    y_label: str = "records in the run",
) -> Chart:
    """One line per source: a stat of each run against the run's start."""
    chart = Chart(title, "run started", y_label)
    by_source: dict[str, Any] = {}
    for run in runs:
        value = _stat(run.stats or {}, stat)
        if value is None:
            continue
        if run.source_id not in by_source:
            by_source[run.source_id] = chart.add_series(run.source_id)
        by_source[run.source_id].add(aware(run.started_at), value)
    return chart


def _stat(stats: dict[str, Any], name: str) -> float | None:
    if name == "not_modified_share":
        return not_modified_share(stats)
    value = stats.get(name)
    return float(value) if isinstance(value, int | float) else None


def candidates_per_run(session: Session) -> Chart:
    return runs_chart(_runs(session))


def run_duration(session: Session) -> Chart:
    return runs_chart(_runs(session), "duration_s", "Crawl duration per run", "seconds")


def not_modified(session: Session) -> Chart:
    chart = runs_chart(
        _runs(session), "not_modified_share", "Not-modified share per run", "not_modified / records seen"
    )
    chart.y_range = (0, 1.05)
    return chart


def _histogram(scores: Sequence[float]) -> list[int]:
    counts = [0] * BINS
    for score in scores:
        counts[min(BINS - 1, max(0, int(score * BINS)))] += 1
    return counts


def score_distribution(session: Session) -> Chart:
    chart = Chart(
        "Score distribution by status (share of each status)",
        "score (bin start)",
        "share of the status's candidates",
        Kind.STEP,
    )
    for status in (CandidateStatus.PENDING.value, *DECIDED):
        scores = session.scalars(
            select(Candidate.score).where(Candidate.status == status, Candidate.score.is_not(None))
        ).all()
        if not scores:
            continue
        series = chart.add_series(f"{status} ({len(scores)})")
        for i, n in enumerate(_histogram(scores)):
            series.add(round(i / BINS, 3), n / len(scores))
    return chart


# ---- one source --------------------------------------------------------------------------------------


def source_run_counts(session: Session, source_id: str) -> Chart:
    chart = Chart(f"{source_id}: records per run", "run #", "records")
    runs = _runs(session, source_id)
    for name in RUN_COUNTS:
        series = chart.add_series(name)
        for run in runs:
            value = _stat(run.stats or {}, name)
            if value is not None:
                series.add(run.id, value)
    return chart


def source_field_fill(session: Session, source_id: str) -> Chart:
    chart = Chart(
        f"{source_id}: field fill rate per run (a drop is selector drift)",
        "run #",
        "share of the run's candidates",
        y_range=(0, 1.05),
    )
    runs = [r for r in _runs(session, source_id) if isinstance((r.stats or {}).get("field_fill"), dict)]
    for name in FILL_FIELDS:
        points = [(r.id, r.stats["field_fill"][name]) for r in runs if name in r.stats["field_fill"]]
        if any(v for _, v in points):  # fields the source never fills stay out of the legend
            series = chart.add_series(name)
            for x, y in points:
                series.add(x, y)
    return chart


def next_scheduled_run(session: Session, source_id: str) -> tuple[datetime | None, str]:
    """(when, how it is known): the scheduler's job store, else the registry's cron expression."""
    from harvester.registry import load_registry
    from schedules.jobs import cron_trigger
    from schedules.scheduler import CRAWL_PREFIX
    from storage.models import SchedulerJob

    stored = session.scalar(select(SchedulerJob.next_run_time).where(SchedulerJob.id == f"{CRAWL_PREFIX}{source_id}"))
    if stored is not None:
        return datetime.fromtimestamp(stored, UTC), "scheduler job store"
    spec = load_registry().get(source_id)
    if spec is None:
        return None, "not in the registry"
    if not spec.enabled:
        return None, "disabled in the registry"
    if spec.omit_from_schedule:
        return None, f"not scheduled: {spec.omit_from_schedule}"
    try:
        fire = cron_trigger(spec.schedule).get_next_fire_time(None, datetime.now(UTC))
    except ValueError as exc:
        return None, f"bad cron expression: {exc}"
    return fire, f"cron {spec.schedule} (the scheduler has no job stored yet)"


# ---- classification ----------------------------------------------------------------------------------


def decision_sequence(session: Session) -> list[int]:
    """Curator accepts (1) and rejects (0) in the order taken; an undo removes the decision it undid."""
    labels: list[int] = []
    last: dict[int, int] = {}
    for cid, before, after in session.execute(
        select(Decision.candidate_id, Decision.from_status, Decision.to_status)
        .where(Decision.actor != SYSTEM_ACTOR)
        .order_by(Decision.id)
    ):
        if after in DECIDED and before not in DECIDED:
            last[cid] = len(labels)
            labels.append(int(after == CandidateStatus.ACCEPTED.value))
        elif before in DECIDED and after not in DECIDED and cid in last:
            labels[last.pop(cid)] = -1
        elif before in DECIDED and after in DECIDED and cid in last:  # accept changed to reject or back
            labels[last[cid]] = int(after == CandidateStatus.ACCEPTED.value)
    return [label for label in labels if label >= 0]


def recall_curve(session: Session) -> Chart:
    chart = Chart("Relevant found vs records screened", "records screened (accept or reject)", "accepted so far")
    labels = decision_sequence(session)
    if not labels:
        return chart
    points, total = [(0, 0)], 0
    for i, label in enumerate(labels, 1):
        total += label
        points.append((i, total))
    found = chart.add_series("curators, in the order decided")
    for x, y in _sample(points):
        found.add(x, y)
    random = chart.add_series("random order (expected)", reference=True)
    random.add(0, 0)
    random.add(len(labels), total)
    return chart


def model_versions(session: Session) -> Chart:
    chart = Chart("Model versions: cross-validated figures", "trained", "figure", y_range=(0, 1.05))
    rows = session.execute(
        select(ClassifierModel.version, ClassifierModel.created_at, ClassifierModel.metrics).order_by(
            ClassifierModel.id
        )
    ).all()
    for label, ranker, key in (
        ("model ROC AUC", "model", "roc_auc"),
        ("model average precision", "model", "average_precision"),
        ("model WSS@95", "model", "wss_95"),
        ("rules ROC AUC", "rules", "roc_auc"),
    ):
        series = chart.add_series(label)
        for _, created, metrics in rows:
            value = ((metrics or {}).get(ranker) or {}).get(key)
            if isinstance(value, int | float):
                series.add(aware(created), float(value))
    return chart


def score_histogram(session: Session) -> Chart:
    chart = Chart("Score histogram by scorer", "score (bin start)", "candidates", Kind.STEP)
    by_scorer: dict[str, list[float]] = defaultdict(list)
    for version, score in session.execute(
        select(Candidate.classifier_version, Candidate.score).where(Candidate.score.is_not(None))
    ):
        by_scorer[version or "unknown"].append(score)
    for version, scores in sorted(by_scorer.items(), key=lambda kv: -len(kv[1]))[:6]:
        series = chart.add_series(f"{version} ({len(scores)})")
        for i, n in enumerate(_histogram(scores)):
            series.add(round(i / BINS, 3), n)
    return chart


_REMAINING_CACHE: dict[tuple[str, int | None, int], tuple[RemainingEstimate, StoppingSignal]] = {}


def remaining(session: Session) -> tuple[RemainingEstimate, StoppingSignal]:
    """The remaining-relevant estimate for the pending queue and the stopping heuristic.

    Every queue page shows it, so it is cached per database until a decision is taken or the pending
    count changes (the newest decision id and the pending count are two cheap indexed reads)."""
    pending = (
        session.scalar(
            select(func.count()).select_from(Candidate).where(Candidate.status == CandidateStatus.PENDING.value)
        )
        or 0
    )
    key = (str(session.get_bind().url), session.scalar(select(func.max(Decision.id))), pending)
    if (hit := _REMAINING_CACHE.get(key)) is not None:
        return hit
    from dataclasses import replace

    from harvester.settings import get_settings
    from storage.audit import recall_audit

    labels = decision_sequence(session)
    stopping = replace(
        stopping_signal(labels, len(labels) + pending),
        audit=recall_audit(session),
        recall_target=get_settings().recall_target,
    )
    result = estimate_remaining(labels, pending), stopping
    if len(_REMAINING_CACHE) >= 16:
        _REMAINING_CACHE.clear()
    _REMAINING_CACHE[key] = result
    return result


_CHART_CACHE: dict[tuple[Any, ...], Any] = {}
CHART_CACHE_SIZE = 256


def data_state(session: Session) -> tuple[Any, ...]:
    """What every chart is drawn from, in a few cheap reads: a decision, a new or re-scored candidate, a run
    that starts or finishes, or a new model changes it. Charts are cached per state (``cached``)."""
    return (
        str(session.get_bind().url),
        session.scalar(select(func.max(Decision.id))),
        *session.execute(select(func.max(Candidate.id), func.count(), func.max(Candidate.updated_at))).one(),
        *session.execute(select(func.max(CrawlRun.id), func.max(CrawlRun.finished_at))).one(),
        session.scalar(select(func.max(ClassifierModel.id))),
    )


def cached(state: tuple[Any, ...], what: tuple[Any, ...], make: Callable[[], T]) -> T:
    """``make()`` once per data state and ``what`` (a chart name, its arguments, a format)."""
    key = (state, *what)
    if key in _CHART_CACHE:
        return cast(T, _CHART_CACHE[key])
    value = make()
    if len(_CHART_CACHE) >= CHART_CACHE_SIZE:
        _CHART_CACHE.clear()
    _CHART_CACHE[key] = value
    return value


DASHBOARD = {
    "queue-history": queue_history,
    "candidates-per-run": candidates_per_run,
    "acceptance-rate": acceptance_rate,
    "score-distribution": score_distribution,
    "run-duration": run_duration,
    "not-modified": not_modified,
}
SOURCE = {"run-counts": source_run_counts, "field-fill": source_field_fill}
CLASSIFICATION = {"recall-curve": recall_curve, "model-versions": model_versions, "score-histogram": score_histogram}
