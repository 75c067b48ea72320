"""The learned re-ranker: curator decisions -> a relevance probability for every candidate.

Features: TF-IDF of character 2-5-grams inside word boundaries (``char_wb``), hashed into
2^18 columns (no vocabulary to store, works the same for every script and language, robust to
inflection and OCR noise), the four rule criterion scores (a)-(d) so the model starts from
what the rules know, and the stored multilingual sentence embedding (``embedding``) so a decision
on a record in one language moves its translations and paraphrases too. Classifier: L2 logistic
regression with balanced class weights (curators reject more than they accept). Pure logic: the
database side is ``storage.model_store``.

``cross_validated`` gives out-of-fold probabilities for honest figures; ``simulate`` replays
active learning the way ASReview's simulation mode does.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from harvester.classify.model import CRITERIA, Classification

KIND = "char-tfidf+rules+embedding/logreg"
MAX_TEXT_CHARS = 5_000
N_FEATURES = 2**18
NGRAMS = (2, 5)
C = 4.0
RULE_WEIGHT = 1.0
EMBEDDING_WEIGHT = 1.0
SEED = 0


@dataclass(frozen=True)
class Doc:
    """One record as the model sees it."""

    text: str
    rules: tuple[float, ...]  # criterion scores in CRITERIA order
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)  # unit vector or None


def model_text(
    title: str | None = None,
    summary: str | None = None,
    text: str | None = None,
    keywords: Iterable[str] = (),
    organisations: Iterable[str] = (),
) -> str:
    """Title, keywords, organisations, summary and text, at most MAX_TEXT_CHARS characters."""
    parts = [
        title or "",
        " ; ".join(k for k in keywords if isinstance(k, str)),
        " ; ".join(o for o in organisations if isinstance(o, str)),
        summary or "",
        text or "",
    ]
    return "\n".join(p for p in parts if p)[:MAX_TEXT_CHARS]


def rule_scores(criteria: Classification | Mapping[str, Any] | None) -> tuple[float, ...]:
    """The criterion scores of a ``Classification`` or of stored criteria JSON (missing -> 0)."""
    if isinstance(criteria, Classification):
        return tuple(float(criteria.criteria[name].score) for name in CRITERIA)
    out = []
    for name in CRITERIA:
        value = (criteria or {}).get(name)
        score = value.get("score") if isinstance(value, Mapping) else value
        out.append(float(score) if isinstance(score, int | float) else 0.0)
    return tuple(out)


def _embeddings(docs: Sequence[Doc]) -> np.ndarray:
    from harvester.classify.embedding import DIM

    out = np.zeros((len(docs), DIM), dtype=np.float32)
    for i, d in enumerate(docs):
        if d.embedding is not None:
            out[i] = d.embedding
    return out


class Featurizer:
    """Hashed char n-gram TF-IDF + weighted rule scores + weighted embedding. ``fit`` learns only the
    IDF weights."""

    def __init__(
        self,
        n_features: int = N_FEATURES,
        ngrams: tuple[int, int] = NGRAMS,
        rule_weight: float = RULE_WEIGHT,
        embedding_weight: float = EMBEDDING_WEIGHT,
    ) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

        self.rule_weight = rule_weight
        self.embedding_weight = embedding_weight
        self.hasher = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=ngrams,
            n_features=n_features,
            alternate_sign=False,
            norm=None,
            lowercase=True,
            strip_accents="unicode",
            dtype=np.float32,
        )
        self.tfidf = TfidfTransformer(sublinear_tf=True)

    def hashed(self, docs: Sequence[Doc]) -> sparse.csr_matrix:
        """Raw n-gram counts (stateless: hash once, fit and transform many times)."""
        return self.hasher.transform([d.text for d in docs])

    def fit(self, docs: Sequence[Doc], hashed: sparse.csr_matrix | None = None) -> Featurizer:
        self.tfidf.fit(self.hashed(docs) if hashed is None else hashed)
        return self

    def transform(self, docs: Sequence[Doc], hashed: sparse.csr_matrix | None = None) -> sparse.csr_matrix:
        text = self.tfidf.transform(self.hashed(docs) if hashed is None else hashed)
        rules = sparse.csr_matrix(
            np.array([d.rules for d in docs], dtype=np.float32).reshape(len(docs), -1) * self.rule_weight
        )
        blocks = [text, rules]
        if self.weight_of_embedding:
            blocks.append(sparse.csr_matrix(_embeddings(docs) * self.weight_of_embedding))
        return sparse.hstack(blocks, format="csr")

    @property
    def weight_of_embedding(self) -> float:
        """0 for models saved before embeddings were features (they have no such block)."""
        return getattr(self, "embedding_weight", 0.0)


def _classifier(c: float = C) -> Any:
    from sklearn.linear_model import LogisticRegression

    # liblinear's dual solver: far fewer samples than hashed features, so ~20x faster than the primal
    return LogisticRegression(
        C=c, class_weight="balanced", solver="liblinear", dual=True, max_iter=1000, random_state=SEED
    )


@dataclass
class RelevanceModel:
    """Fitted featurizer + classifier. ``version`` is set when the model is saved."""

    featurizer: Featurizer
    classifier: Any
    version: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def train(
        cls, docs: Sequence[Doc], labels: Sequence[int], c: float = C, hashed: sparse.csr_matrix | None = None
    ) -> RelevanceModel:
        y = np.asarray(labels, dtype=int)
        if len(set(y.tolist())) < 2:
            raise ValueError("training needs both relevant and irrelevant examples")
        featurizer = Featurizer()
        hashed = featurizer.hashed(docs) if hashed is None else hashed
        featurizer.fit(docs, hashed)
        classifier = _classifier(c).fit(featurizer.transform(docs, hashed), y)
        return cls(featurizer, classifier, meta={"kind": KIND, "n_train": len(y), "n_relevant": int(y.sum())})

    def predict(self, docs: Sequence[Doc]) -> np.ndarray:
        """Probability of relevance of each doc: the logistic of ``w . x + b``, computed directly on
        the two feature blocks (no stacking, no per-call validation: the crawl calls it per item)."""
        if not docs:
            return np.zeros(0)
        text = self.featurizer.tfidf.transform(self.featurizer.hashed(docs))
        coef = self.classifier.coef_[0]
        width = text.shape[1]
        rules = np.array([d.rules for d in docs], dtype=np.float64).reshape(len(docs), -1)
        n_rules = rules.shape[1]
        z = (
            text @ coef[:width]
            + (rules * self.featurizer.rule_weight) @ coef[width : width + n_rules]
            + self.classifier.intercept_[0]
        )
        if self.featurizer.weight_of_embedding:
            z = z + (_embeddings(docs) * self.featurizer.weight_of_embedding) @ coef[width + n_rules :]
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64).ravel()))

    def dumps(self) -> bytes:
        import joblib

        buf = io.BytesIO()
        joblib.dump(self, buf, compress=3)
        return buf.getvalue()

    @staticmethod
    def loads(blob: bytes) -> RelevanceModel:
        """Unpickle a model. Only ever call this on blobs this project wrote to its own database:
        unpickling runs code."""
        import joblib

        model = joblib.load(io.BytesIO(blob))
        if not isinstance(model, RelevanceModel):
            raise TypeError(f"not a relevance model: {type(model).__name__}")
        return model


# ---- figures -------------------------------------------------------------------------------------


def ranked(scores: Sequence[float], seed: int = SEED) -> np.ndarray:
    """Indices by descending score; ties in a seeded random order (never the file's: a labelled set
    sorted by label would otherwise flatter a ranker that gives many records the same score)."""
    s = np.asarray(scores, dtype=float)
    shuffled = np.random.default_rng(seed).permutation(len(s))
    return shuffled[np.argsort(-s[shuffled], kind="stable")]


def recall_at(labels: Sequence[int], scores: Sequence[float], budget: int) -> float | None:
    """Share of the relevant records found in the ``budget`` best-ranked ones."""
    y = np.asarray(labels, dtype=int)
    if y.sum() == 0:
        return None
    return float(y[ranked(scores)][: max(budget, 0)].sum() / y.sum())


def screened_for(labels: Sequence[int], scores: Sequence[float], recall: float = 0.95) -> int | None:
    """How many best-ranked records a curator reads to reach ``recall``."""
    y = np.asarray(labels, dtype=int)
    if y.sum() == 0:
        return None
    found = np.cumsum(y[ranked(scores)])
    return int(np.argmax(found >= recall * y.sum() - 1e-9)) + 1


def wss(labels: Sequence[int], scores: Sequence[float], recall: float = 0.95) -> float | None:
    """Work saved over sampling at ``recall`` (Cohen et al. 2006): ``(N - n)/N - (1 - recall)`` where
    ``n`` records are read, in ranked order, until ``recall`` of the relevant ones are found."""
    n = screened_for(labels, scores, recall)
    if n is None:
        return None
    total = len(labels)
    return (total - n) / total - (1 - recall)


def figures(labels: Sequence[int], scores: Sequence[float], budget: int | None = None) -> dict[str, Any]:
    """ROC AUC, average precision, recall at a review budget (default 10% of N), WSS@95."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    n, n_rel = len(y), int(y.sum())
    budget = default_budget(n) if budget is None else budget
    both = 0 < n_rel < n
    return {
        "n": n,
        "n_relevant": n_rel,
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "average_precision": float(average_precision_score(y, s)) if both else None,
        "budget": budget,
        "recall_at_budget": recall_at(y, s, budget),
        "screened_for_95": screened_for(y, s, 0.95),
        "wss_95": wss(y, s, 0.95),
    }


def default_budget(n: int) -> int:
    return max(1, round(0.1 * n))


def cross_validated(docs: Sequence[Doc], labels: Sequence[int], folds: int = 5, seed: int = SEED) -> np.ndarray:
    """Out-of-fold probabilities: every doc scored by a model that never saw it."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels, dtype=int)
    minority = int(min(y.sum(), len(y) - y.sum()))
    k = min(folds, minority)
    if k < 2:
        raise ValueError("cross-validation needs at least 2 relevant and 2 irrelevant examples")
    out = np.zeros(len(y))
    hashed = Featurizer().hashed(docs)
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        model = RelevanceModel.train([docs[i] for i in train], y[train], hashed=hashed[train])
        test_docs = [docs[i] for i in test]
        out[test] = model.classifier.predict_proba(model.featurizer.transform(test_docs, hashed[test]))[:, 1]
    return out


# ---- active-learning simulation ----------------------------------------------------------------------


@dataclass
class Simulation:
    """One replay: ``curve`` holds (records screened, recall) after every batch."""

    n: int
    n_relevant: int
    step: int
    prior: list[int]  # indices of the starting labels
    curve: list[tuple[int, float]]
    screened_for_95: int | None
    wss_95: float | None
    screened_for_100: int | None
    wss_100: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_relevant": self.n_relevant,
            "step": self.step,
            "prior": self.prior,
            "screened_for_95": self.screened_for_95,
            "wss_95": self.wss_95,
            "screened_for_100": self.screened_for_100,
            "wss_100": self.wss_100,
            "recall_curve": [[n, round(r, 4)] for n, r in self.curve],
        }


def simulate(
    docs: Sequence[Doc],
    labels: Sequence[int],
    *,
    step: int = 10,
    n_prior_relevant: int = 1,
    n_prior_irrelevant: int = 1,
    seed: int = SEED,
    progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Replay screening with active learning, as ASReview's simulate does.

    Start from ``n_prior_relevant`` relevant and ``n_prior_irrelevant`` irrelevant records drawn
    with ``seed``; then repeatedly train on every label so far, "read" the ``step`` best-ranked
    unread records (their true labels are revealed) and retrain, until every relevant record is
    found. Features (IDF weights) are fitted once on all texts, labels unused, as ASReview does;
    the docs' embeddings are features too. The prior records count as read. The curve starts with
    the prior.
    """
    y = np.asarray(labels, dtype=int)
    n, n_rel = len(y), int(y.sum())
    if n_rel < n_prior_relevant or n - n_rel < n_prior_irrelevant:
        raise ValueError("the labelled set has too few relevant or irrelevant records for the prior")
    rng = np.random.default_rng(seed)
    prior = [int(i) for i in rng.choice(np.flatnonzero(y == 1), n_prior_relevant, replace=False)]
    prior += [int(i) for i in rng.choice(np.flatnonzero(y == 0), n_prior_irrelevant, replace=False)]
    features = Featurizer().fit(docs).transform(docs)
    read = np.zeros(n, dtype=bool)
    read[prior] = True
    order = list(prior)
    curve = [(len(order), float(y[order].sum() / n_rel))]
    while y[order].sum() < n_rel:
        idx = np.flatnonzero(read)
        classifier = _classifier().fit(features[idx], y[idx])
        unread = np.flatnonzero(~read)
        proba = classifier.predict_proba(features[unread])[:, 1]
        pick = unread[np.argsort(-proba, kind="stable")[:step]]
        read[pick] = True
        order.extend(int(i) for i in pick)
        curve.append((len(order), float(y[order].sum() / n_rel)))
        if progress:
            progress(len(order), n)
    found = np.cumsum(y[order])
    n95 = int(np.argmax(found >= 0.95 * n_rel - 1e-9)) + 1
    n100 = int(np.argmax(found >= n_rel)) + 1
    return Simulation(
        n=n,
        n_relevant=n_rel,
        step=step,
        prior=prior,
        curve=curve,
        screened_for_95=n95,
        wss_95=(n - n95) / n - 0.05,
        screened_for_100=n100,
        wss_100=(n - n100) / n,
    )
