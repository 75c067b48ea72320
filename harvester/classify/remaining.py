"""How many relevant records remain unreviewed: the number a curator needs to know when a batch is done.

Two signals, each named where it is shown:

- ``yield curve``: curators screen the queue best-first, so the share of accepts falls as they go.
  The accept/reject sequence so far is fitted with a logistic curve in the screening position
  (``P(accept) = 1 / (1 + exp(-(a + b t)))``, ``t`` = position / (decided + pending), a small ridge
  on ``b``), and the curve is summed over the positions still pending. The 95% interval combines the
  fit's uncertainty (draws from the Laplace approximation of ``(a, b)``) with the Bernoulli spread of
  the outcome. While the fitted accept rate is not falling (``b >= 0``) or fewer than ``MIN_DECISIONS``
  decisions exist, there is no estimate: nothing supports one yet. The sum of the model's own
  probabilities over the pool (the "Quant" rule of Yang, Lewis & Frieder 2021) was measured on the same
  replays and over-estimated many-fold until late in screening (the model is trained on a sample rich in
  accepts), so it is not used.
- ``since last accept``: decisions since the last accept, against a target of ``max(50, 5% of the
  records)`` in a row: the data-driven stopping heuristic of the screening literature (as in the SAFE
  procedure, Boetje & van de Schoot 2024). Needs no fit.

``replay`` checks the estimate on a screening whose truth is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harvester.classify.audit import RecallAudit
from harvester.classify.learn import Doc, RelevanceModel

METHOD = "yield curve"
DESCRIPTION = (
    "logistic fit of the accept rate against screening position, summed over the pending candidates; 95% interval"
)
HEURISTIC = "since last accept"
HEURISTIC_TEXT = "decisions since the last accept; stop after max(50, 5% of the records) in a row"
MIN_DECISIONS = 20
MIN_RUN = 50
RUN_SHARE = 0.05
RIDGE = 1e-2
DRAWS = 500
GRID = 2000
Z95 = 1.96


@dataclass(frozen=True)
class RemainingEstimate:
    """``expected`` is None when the decisions do not support an estimate yet (``why_not`` says why)."""

    method: str
    description: str
    pool: int  # pending records the estimate is over
    decided: int
    expected: float | None = None
    low: float | None = None
    high: float | None = None
    why_not: str = ""

    def describe(self) -> str:
        if self.expected is None:
            return f"no estimate yet: {self.why_not}"
        return (
            f"about {self.expected:.0f} relevant left in {self.pool} pending "
            f"(95% interval {self.low:.0f} to {self.high:.0f})"
        )

    def as_dict(self) -> dict[str, object]:
        def rnd(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {
            "method": self.method,
            "description": self.description,
            "pool": self.pool,
            "decided": self.decided,
            "expected": rnd(self.expected),
            "low": rnd(self.low),
            "high": rnd(self.high),
            "why_not": self.why_not or None,
        }


@dataclass(frozen=True)
class StoppingSignal:
    """The run-of-rejects heuristic, and with ``audit`` the recall audit of what triage excluded: once
    curators decided on audit samples, stopping also needs the audit's lower recall bound to reach
    ``recall_target``."""

    since_last_accept: int
    target: int
    decided: int
    audit: RecallAudit | None = None
    recall_target: float = 0.95

    @property
    def audit_ok(self) -> bool:
        if self.audit is None or self.audit.sampled == 0:
            return True
        return (self.audit.recall_at_least or 0.0) >= self.recall_target

    @property
    def met(self) -> bool:
        return self.decided > 0 and self.since_last_accept >= self.target and self.audit_ok

    def describe(self) -> str:
        state = "stopping point reached" if self.met else "keep screening"
        line = f"{self.since_last_accept} decisions since the last accept (target {self.target} in a row): {state}"
        if self.audit is not None:
            line += f"; recall audit: {self.audit.sentence()}"
            if not self.audit_ok:
                line += f", below the {self.recall_target:.0%} target"
        return line


def stopping_signal(labels_in_order: Sequence[int], total_records: int) -> StoppingSignal:
    """``labels_in_order``: 1 accept / 0 reject, in the order the decisions were taken."""
    since = 0
    for label in reversed(labels_in_order):
        if label:
            break
        since += 1
    return StoppingSignal(since, max(MIN_RUN, math.ceil(RUN_SHARE * total_records)), len(labels_in_order))


def _fit(t: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Ridge-penalised logistic regression of ``y`` on ``(1, t)`` by Newton steps: (coefficients, covariance)."""
    x = np.column_stack([np.ones_like(t), t])
    penalty = np.diag([1e-6, RIDGE])
    share = min(max(y.mean(), 1e-3), 1 - 1e-3)
    theta = np.array([math.log(share / (1 - share)), 0.0])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ theta)))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, x.T @ (y - p) - penalty @ theta)
        theta = theta + step
        if np.abs(step).max() < 1e-8:
            break
    p = 1 / (1 + np.exp(-(x @ theta)))
    return theta, np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None]) + penalty)


def estimate_remaining(labels_in_order: Sequence[int], pool: int, *, seed: int = 0) -> RemainingEstimate:
    """Relevant records expected among ``pool`` pending ones, from the decisions so far (1 accept, 0 reject)."""
    y = np.asarray(labels_in_order, dtype=float)
    n = len(y)
    base = {"method": METHOD, "description": DESCRIPTION, "pool": pool, "decided": n}
    if pool == 0:
        return RemainingEstimate(**base, expected=0.0, low=0.0, high=0.0)
    if n < MIN_DECISIONS:
        return RemainingEstimate(**base, why_not=f"{n} decisions, the fit needs {MIN_DECISIONS}")
    if y.sum() == 0:
        return RemainingEstimate(**base, why_not="no accept yet")
    total = n + pool
    theta, cov = _fit(np.arange(n) / total, y)
    if theta[1] + Z95 * math.sqrt(cov[1, 1]) >= 0:
        return RemainingEstimate(**base, why_not="the accept rate is not clearly falling yet")
    if pool <= GRID:
        ahead, weight = np.arange(n, total) / total, 1.0
    else:  # midpoint rule: the curve is smooth, so GRID points stand in for a large pool
        ahead, weight = (n + (np.arange(GRID) + 0.5) * pool / GRID) / total, pool / GRID
    draws = np.random.default_rng(seed).multivariate_normal(theta, cov, size=DRAWS)
    p_draws = 1 / (1 + np.exp(-(draws[:, :1] + draws[:, 1:] * ahead[None, :])))
    sums = weight * p_draws.sum(axis=1) + np.sqrt(
        weight * (p_draws * (1 - p_draws)).sum(axis=1)
    ) * np.random.default_rng(seed + 1).standard_normal(DRAWS)
    p = 1 / (1 + np.exp(-(theta[0] + theta[1] * ahead)))
    low, high = np.percentile(sums, [2.5, 97.5])
    return RemainingEstimate(
        **base, expected=float(weight * p.sum()), low=float(np.clip(low, 0, pool)), high=float(np.clip(high, 0, pool))
    )


# ---- checking the estimate on a replayed screening ---------------------------------------------------


@dataclass(frozen=True)
class ReplayPoint:
    screened: int
    found: int
    true_remaining: int
    estimate: RemainingEstimate

    @property
    def error(self) -> float | None:
        return None if self.estimate.expected is None else self.estimate.expected - self.true_remaining

    @property
    def covered(self) -> bool | None:
        e = self.estimate
        return None if e.low is None or e.high is None else e.low <= self.true_remaining <= e.high


def screening_order(docs: Sequence[Doc], labels: Sequence[int], *, step: int = 10, seed: int = 0) -> list[int]:
    """The order curators with a retrained model would read ``docs`` in: 1 relevant + 1 irrelevant seeded
    start, then the ``step`` best-ranked unread records, retraining after each batch (as ``classify
    retrain`` does: a ``RelevanceModel`` on every label so far)."""
    from harvester.classify.learn import Featurizer

    y = np.asarray(labels, dtype=int)
    rng = np.random.default_rng(seed)
    order = [int(rng.choice(np.flatnonzero(y == 1))), int(rng.choice(np.flatnonzero(y == 0)))]
    read = np.zeros(len(y), dtype=bool)
    read[order] = True
    hashed = Featurizer().hashed(docs)
    while not read.all():
        idx, unread = np.flatnonzero(read), np.flatnonzero(~read)
        model = RelevanceModel.train([docs[i] for i in idx], y[idx], hashed=hashed[idx])
        proba = model.classifier.predict_proba(model.featurizer.transform([docs[i] for i in unread], hashed[unread]))[
            :, 1
        ]
        pick = unread[np.argsort(-proba, kind="stable")[:step]]
        read[pick] = True
        order.extend(int(i) for i in pick)
    return order


def replay(labels: Sequence[int], order: Sequence[int], checkpoints: Sequence[int]) -> list[ReplayPoint]:
    """At each checkpoint (records screened, in ``order``), the estimate for the unscreened rest and the truth."""
    seq = [int(labels[i]) for i in order]
    return [
        ReplayPoint(k, sum(seq[:k]), sum(seq[k:]), estimate_remaining(seq[:k], len(seq) - k))
        for k in checkpoints
        if 0 < k <= len(seq)
    ]
