"""The database side of classification: learned model versions trained on curator decisions,
and rescoring the queue with the current model (near-duplicate clusters: ``storage.clusters``).

- ``retrain``: accepted (1) and rejected (0) candidates train a ``RelevanceModel``; a reject with
  reason ``duplicate`` says nothing about relevance and is left out. Fewer than ``MIN_DECISIONS``
  usable decisions, or fewer than ``MIN_PER_CLASS`` of either kind, raise ``NotEnoughDecisions``
  and the current model (or the rules alone) keeps ranking. The new row holds the version id, the
  training-set composition and cross-validated figures of the model and of the rules.
- ``rescore``: pending and filtered candidates get the current model's score (the rules' overall
  score when there is no model) and its version in ``classifier_version``. Status moves between
  pending and filtered by the threshold, but only for candidates no curator has decided on;
  accepted, rejected and deferred candidates are never touched. Updates are guarded by the status
  in their WHERE clause, so a curator decision taken meanwhile always wins.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, defer, undefer

from harvester.classify import VERSION as RULES_VERSION
from harvester.classify import zero_shot
from harvester.classify.criteria import overall
from harvester.classify.embedding import embed, embedding_text, from_bytes, to_bytes
from harvester.classify.learn import KIND, Doc, RelevanceModel, cross_validated, figures, model_text, rule_scores
from harvester.classify.model import CRITERIA
from harvester.classify.routing import route
from storage.db import session_factory, transaction
from storage.models import Candidate, CandidateStatus, ClassifierModel, Decision, ReasonCode

SYSTEM_ACTOR = "harvester"  # decisions by this actor (gone at source) are not curator decisions
MIN_DECISIONS = 20
MIN_PER_CLASS = 2
CV_FOLDS = 5
BATCH = 500
ROUTABLE = (CandidateStatus.PENDING.value, CandidateStatus.FILTERED.value)
_candidates = Candidate.__table__  # Core updates: routing and clusters are not curator edits (no version bump)


class NotEnoughDecisions(ValueError):
    """Too few curator decisions to train a model."""


class ModelUnavailable(ValueError):
    """The stored model cannot be used here (trained with another scikit-learn)."""


def library_version() -> str:
    import sklearn

    return f"scikit-learn {sklearn.__version__}"


def candidate_doc(c: Any) -> Doc:
    """The model's view of a candidate row (ORM object or row with the same attributes), with its
    stored embedding (None for rows harvested before embeddings were stored: see ``embedded``)."""
    return Doc(
        model_text(c.title, c.summary, c.text, c.keywords or (), c.organisations or ()),
        rule_scores(c.criteria),
        from_bytes(getattr(c, "embedding", None)),
    )


def embedded(rows: Sequence[Any], docs: list[Doc]) -> dict[int, bytes]:
    """Embed, once, the docs whose rows have no stored embedding (harvested before they were stored);
    the docs get their vectors, the returned ``{candidate id: bytes}`` is for storing them."""
    missing = [i for i, d in enumerate(docs) if d.embedding is None]
    if not missing:
        return {}
    vectors = embed(
        [embedding_text(rows[i].title, rows[i].summary, rows[i].text, rows[i].keywords or ()) for i in missing]
    )
    out = {}
    for i, vector in zip(missing, vectors, strict=True):
        docs[i] = replace(docs[i], embedding=vector)
        out[rows[i].id] = to_bytes(vector)
    return out


def rules_score(doc: Doc) -> float:
    return overall(dict(zip(CRITERIA, doc.rules, strict=True)))


def zero_shot_scores(docs: Sequence[Doc]) -> list[float]:
    """The calibrated zero-shot probability of each doc (docs without an embedding count as empty text)."""
    return zero_shot.score_docs(docs)


# ---- training ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    candidate_id: int
    doc: Doc
    label: int
    reason: str | None


def training_examples(session: Session) -> tuple[list[Example], int]:
    """(accepted and rejected candidates as examples, number of duplicate-rejects left out)."""
    reasons: dict[int, str | None] = {}
    for cid, reason in session.execute(
        select(Decision.candidate_id, Decision.reason_code)
        .where(Decision.to_status == CandidateStatus.REJECTED.value)
        .order_by(Decision.id)
    ):
        reasons[cid] = reason
    examples, skipped = [], 0
    rows = session.scalars(
        select(Candidate)
        .options(undefer(Candidate.embedding))
        .where(Candidate.status.in_([CandidateStatus.ACCEPTED.value, CandidateStatus.REJECTED.value]))
        .order_by(Candidate.id)
    )
    for c in rows:
        label = int(c.status == CandidateStatus.ACCEPTED.value)
        reason = None if label else reasons.get(c.id)
        if reason == ReasonCode.DUPLICATE.value:
            skipped += 1
            continue
        examples.append(Example(c.id, candidate_doc(c), label, reason))
    return examples, skipped


def new_version(now: datetime | None = None) -> str:
    return f"lr-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def retrain(
    engine: Engine | None = None, *, min_decisions: int = MIN_DECISIONS, folds: int = CV_FOLDS
) -> ClassifierModel:
    """Train on every usable decision, evaluate by cross-validation, store the new version.

    Reads in one short session and writes in one short transaction: training holds no lock
    (a SQLite transaction here is a write lock from its first statement).
    """
    with session_factory(engine)() as session:
        examples, skipped = training_examples(session)
    labels = [e.label for e in examples]
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    if len(examples) < min_decisions or n_pos < MIN_PER_CLASS or n_neg < MIN_PER_CLASS:
        left_out = f", {skipped} duplicate rejects left out" if skipped else ""
        raise NotEnoughDecisions(
            f"not enough curator decisions to train: {len(examples)} usable ({n_pos} accepted, {n_neg} rejected"
            f"{left_out}); retrain needs at least {min_decisions}, with at least {MIN_PER_CLASS} accepts and "
            f"{MIN_PER_CLASS} rejects. The rules keep ranking the queue until then."
        )
    docs = [e.doc for e in examples]
    out_of_fold = cross_validated(docs, labels, folds)
    metrics = {
        "n_accepted": n_pos,
        "n_rejected": n_neg,
        "duplicate_rejects_left_out": skipped,
        "reject_reasons": dict(Counter(e.reason or "none" for e in examples if not e.label)),
        "cv_folds": min(folds, n_pos, n_neg),
        "model": figures(labels, out_of_fold),
        "rules": figures(labels, [rules_score(d) for d in docs]),
        "zero_shot": figures(labels, zero_shot_scores(docs)),
        "rules_version": RULES_VERSION,
    }
    model = RelevanceModel.train(docs, labels)
    model.version = new_version()
    row = ClassifierModel(
        version=model.version,
        kind=KIND,
        n_train=len(examples),
        metrics=metrics,
        library_version=library_version(),
        blob=model.dumps(),
    )
    with transaction(engine) as session:
        session.add(row)
    return row


def list_models(session: Session) -> list[ClassifierModel]:
    return list(
        session.scalars(
            select(ClassifierModel).options(defer(ClassifierModel.blob)).order_by(ClassifierModel.id.desc())
        )
    )


def latest_model(session: Session) -> RelevanceModel | None:
    """The newest stored model, or ``None`` when none was trained yet (the rules rank)."""
    row = session.scalars(select(ClassifierModel).order_by(ClassifierModel.id.desc()).limit(1)).one_or_none()
    if row is None:
        return None
    if row.library_version != library_version():
        raise ModelUnavailable(
            f"model {row.version} was trained with {row.library_version}, this installation "
            f"has {library_version()}: run `harvester classify retrain`"
        )
    model = RelevanceModel.loads(row.blob)
    model.version = row.version
    return model


# ---- rescoring ---------------------------------------------------------------------------------------


@dataclass
class RescoreReport:
    version: str
    threshold: float
    scored: int = 0
    to_pending: int = 0
    to_filtered: int = 0
    kept_by_curator: int = 0  # would have moved, but a curator decided on them
    by_status: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def curator_decided(session: Session, ids: Sequence[int]) -> set[int]:
    return set(
        session.scalars(
            select(Decision.candidate_id)
            .where(Decision.candidate_id.in_(ids), Decision.actor != SYSTEM_ACTOR)
            .distinct()
        )
    )


def rescore(
    engine: Engine | None = None,
    *,
    threshold: float,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> RescoreReport:
    """Re-score pending and filtered candidates with the current model (or the rules)."""
    with session_factory(engine)() as session:
        model = latest_model(session)
        ids = list(session.scalars(select(Candidate.id).where(Candidate.status.in_(ROUTABLE)).order_by(Candidate.id)))
    report = RescoreReport(version=model.version if model and model.version else zero_shot.VERSION, threshold=threshold)
    for start in range(0, len(ids), batch):
        _rescore_batch(engine, ids[start : start + batch], model, report)
        if progress:
            progress(min(start + batch, len(ids)), len(ids))
    with session_factory(engine)() as session:
        report.by_status = {
            s: n for s, n in session.execute(select(Candidate.status, func.count()).group_by(Candidate.status))
        }
    return report


def _rescore_batch(
    engine: Engine | None, ids: Sequence[int], model: RelevanceModel | None, report: RescoreReport
) -> None:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(
                Candidate.id,
                Candidate.title,
                Candidate.summary,
                Candidate.text,
                Candidate.keywords,
                Candidate.organisations,
                Candidate.criteria,
                Candidate.status,
                Candidate.embedding,
            ).where(Candidate.id.in_(ids), Candidate.status.in_(ROUTABLE))
        ).all()
    if not rows:
        return
    docs = [candidate_doc(r) for r in rows]
    new_embeddings = embedded(rows, docs)
    scores = model.predict(docs) if model else zero_shot_scores(docs)  # outside any transaction
    with transaction(engine) as session:
        pinned = curator_decided(session, [r.id for r in rows])
        params = []
        for r, score in zip(rows, scores, strict=True):
            status = route(float(score), report.threshold)
            if status != r.status:
                if r.id in pinned:
                    status = r.status
                    report.kept_by_curator += 1
                elif status == CandidateStatus.PENDING.value:
                    report.to_pending += 1
                else:
                    report.to_filtered += 1
            params.append({"cid": r.id, "new_score": round(float(score), 4), "new_status": status})
        if new_embeddings:
            session.connection().execute(
                update(_candidates).where(_candidates.c.id == bindparam("cid")).values(embedding=bindparam("vec")),
                [{"cid": cid, "vec": vec} for cid, vec in new_embeddings.items()],
            )
        # the status guard: a curator decision taken since the read wins
        session.connection().execute(
            update(_candidates)
            .where(
                _candidates.c.id == bindparam("cid"),  # no IN (...): executemany
                or_(*(_candidates.c.status == s for s in ROUTABLE)),
            )
            .values(score=bindparam("new_score"), status=bindparam("new_status"), classifier_version=report.version),
            params,
        )
    report.scored += len(params)
