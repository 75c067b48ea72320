"""The recall audit's figures: how much of the relevant material auto-exclusion may have lost.

Each scheduled crawl sends a small random sample of what it excluded (``filtered``) to the queue,
flagged as an audit sample (``storage.audit``). With ``N`` candidates excluded, ``k`` of them
sampled and decided by curators and ``r`` of those accepted, the share of relevant records among
the excluded is at most ``p_u``, the one-sided exact binomial (Clopper-Pearson) upper bound of
``r / k`` at the stated confidence; with ``found`` relevant records accepted so far (from the queue
and from the samples), recall is then at least ``found / (found + (N - k) * p_u)`` with that
confidence: the sampled records' relevant ones are already found, the ``N - k`` unsampled may hide
at most ``p_u`` of theirs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CONFIDENCE = 0.95


def clopper_pearson_upper(successes: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """One-sided exact upper bound ``p`` of a binomial proportion: ``P(X <= successes | trials, p) = 1 - confidence``
    (1.0 when ``successes == trials``, and with no trials nothing is known: 1.0)."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if successes >= trials:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, successes + 1, trials - successes))


@dataclass(frozen=True)
class RecallAudit:
    excluded: int  # N: candidates auto-excluded (filtered), the audit samples drawn from them included
    sampled: int  # k: audit samples a curator decided on
    relevant_in_sample: int  # r: audit samples accepted
    relevant_found: int  # every accepted candidate (queue and samples)
    confidence: float = CONFIDENCE

    @property
    def excluded_relevant_share_at_most(self) -> float:
        return clopper_pearson_upper(self.relevant_in_sample, self.sampled, self.confidence)

    @property
    def recall_at_least(self) -> float | None:
        """None until a relevant record was found (nothing to measure recall of)."""
        if self.relevant_found == 0:
            return None
        missed = max(self.excluded - self.sampled, 0) * self.excluded_relevant_share_at_most
        return self.relevant_found / (self.relevant_found + missed)

    def sentence(self) -> str:
        bound = self.recall_at_least
        recall = (
            "recall not measurable yet (no relevant record found)"
            if bound is None
            else f"recall at least {bound:.1%} with {self.confidence:.0%} confidence"
        )
        return (
            f"auto-excluded {self.excluded}, sampled {self.sampled}, relevant found {self.relevant_in_sample}: {recall}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "excluded_relevant_share_at_most": self.excluded_relevant_share_at_most,
            "recall_at_least": self.recall_at_least,
            "sentence": self.sentence(),
        }
