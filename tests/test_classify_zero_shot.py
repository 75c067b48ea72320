"""Zero-shot relevance: offline embeddings in the six UN languages, the calibrated score, triage
thresholds for a recall target, and the recall audit's exact binomial bound."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import trafilatura

from harvester.classify import ClassifierInput, classify, zero_shot
from harvester.classify.audit import RecallAudit, clopper_pearson_upper
from harvester.classify.embedding import DIM, embed, embedding_text, encoder, from_bytes, to_bytes
from harvester.classify.routing import EXCLUDE, INCLUDE, POSTPONE, ThresholdError, recall_threshold, thresholds

MANGROVES = {
    "en": "Local communities restore mangrove forests to protect coastal wildlife.",
    "fr": "Les communautés locales restaurent les forêts de mangroves pour protéger la faune côtière.",
    "es": "Las comunidades locales restauran los bosques de manglares para proteger la fauna costera.",
    "ru": "Местные общины восстанавливают мангровые леса, чтобы защитить прибрежную дикую природу.",
    "ar": "تعيد المجتمعات المحلية تأهيل غابات المانغروف لحماية الحياة البرية الساحلية.",
    "zh": "当地社区恢复红树林，以保护沿海野生动物。",
}
UNRELATED = "The central bank raised interest rates by half a point to curb inflation."


def test_embedding_runs_with_every_socket_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    encoder.cache_clear()  # load the weights again, with the network gone
    vectors = embed([*MANGROVES.values(), UNRELATED, ""])
    assert vectors.shape == (8, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:7], axis=1), 1.0, atol=1e-5)
    assert not vectors[7].any()  # empty text: a zero row, not a made-up vector
    english, unrelated = vectors[0], vectors[6]
    for lang, vector in zip(list(MANGROVES)[1:], vectors[1:6], strict=True):
        # a translation lies far closer to the English sentence than an unrelated English one does
        assert float(vector @ english) > float(unrelated @ english) + 0.3, lang


def test_stored_embedding_is_float16_bytes_and_round_trips() -> None:
    vector = embed([MANGROVES["fr"]])[0]
    blob = to_bytes(vector)
    assert len(blob) == DIM * 2
    back = from_bytes(blob)
    assert back is not None and float(back @ vector) > 0.9999
    assert from_bytes(None) is None and from_bytes(b"short") is None


def test_embedding_text_is_cut_on_a_word_boundary() -> None:
    text = embedding_text("Title", "Summary", "word " * 1000, ["kw1", "kw2"])
    assert text.startswith("Title \nkw1 ; kw2 \nSummary \nword word")
    assert len(text) <= 1500 and text.endswith("word")


def test_every_exemplar_is_written_in_the_six_un_languages() -> None:
    data = zero_shot.read_exemplars()
    for side in ("relevant", "irrelevant"):
        assert len(data[side]) >= 10
        for entry in data[side]:
            assert all(entry[lang].strip() for lang in zero_shot.LANGUAGES), entry["id"]


def test_calibration_file_states_how_it_was_fitted() -> None:
    cal = zero_shot.calibration()
    assert cal.meta["features"] == list(zero_shot.FEATURES)
    assert cal.coef[0] > 0 > cal.coef[1] and cal.coef[2] > 0  # closer to CBD exemplars and more (b) evidence: higher
    assert cal.meta["fitted_on"]["command"] == "python -m bench.fit_zero_shot"
    assert cal.meta["cross_validated"]["combined"]["roc_auc"] > cal.meta["cross_validated"]["cbd_relevance"]["roc_auc"]
    percentiles = cal.meta["relevant_percentiles"]
    assert len(percentiles) == 101 and percentiles == sorted(percentiles)
    assert zero_shot.describe()["formula"].startswith("logistic(")


def _page(fixtures_dir: Path, name: str) -> float:
    html = (fixtures_dir / "formats" / "multilingual" / name).read_bytes().decode("utf-8")
    text = trafilatura.extract(html) or ""
    meta = trafilatura.extract_metadata(html)
    title = meta.title if meta and meta.title else ""
    lang = name.rsplit("_", 1)[1].removesuffix(".html")
    rules = classify(ClassifierInput(title=title, text=text, language=lang))
    vector = embed([embedding_text(title, None, text)])
    return float(zero_shot.score(vector, [rules.criteria["cbd_relevance"].score])[0])


def test_real_pages_in_five_languages_triage_by_subject(fixtures_dir: Path) -> None:
    relevant = [
        "elsa-undp_article-elsaR_es.html",
        "elsa-undp_article-elsaR_fr.html",
        "elsa-undp_article-elsaR_ru.html",
        "greenpeace_forests-asia-pacific_en.html",
        "natgeo-uk_wild-goats-island_en.html",
    ]
    news = [
        "tass_moskva-tskad_ru.html",
        "xinhua_drug-supply_zh.html",
        "xinhuanet_wuhan_zh.html",
        "sputnik-arabic_egypt-covid_ar.html",
        "cnn-arabic_syria_ar.html",
        "assabah_sudan_ar.html",
    ]
    scores = {name: _page(fixtures_dir, name) for name in relevant + news}
    cut = thresholds(0.95).exclude_below
    assert min(scores[n] for n in relevant) > max(scores[n] for n in news)
    assert all(scores[n] >= cut for n in relevant), scores  # a 95% recall target keeps them in the queue
    assert all(scores[n] < 0.5 for n in news)  # none would be an "include"


def test_thresholds_follow_the_recall_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARVESTER_PENDING_THRESHOLD", raising=False)
    cuts = [thresholds(t).exclude_below for t in (0.8, 0.9, 0.95, 0.99)]
    assert cuts == sorted(cuts, reverse=True) and len(set(cuts)) == 4  # more recall: a lower cut
    default = thresholds()
    assert (default.recall_target, default.source) == (0.95, "calibration")
    assert (default.triage(0.9), default.triage(default.exclude_below), default.triage(0.0)) == (
        INCLUDE,
        POSTPONE,
        EXCLUDE,
    )
    # the percentile interpolation itself, on a hand-made distribution of relevant records' scores
    assert recall_threshold(0.95, [i / 100 for i in range(101)]) == pytest.approx(0.05)
    assert recall_threshold(0.5, [i / 100 for i in range(101)]) == pytest.approx(0.5)
    with pytest.raises(ThresholdError):
        recall_threshold(1.0, [0.0] * 101)
    monkeypatch.setenv("HARVESTER_PENDING_THRESHOLD", "0.3")
    assert (thresholds().exclude_below, thresholds().source) == (0.3, "HARVESTER_PENDING_THRESHOLD")
    monkeypatch.setenv("HARVESTER_PENDING_THRESHOLD", "high")
    with pytest.raises(ThresholdError, match="not a number between 0 and 1"):
        thresholds()


def _binomial_cdf(r: int, k: int, p: float) -> float:
    return sum(math.comb(k, i) * p**i * (1 - p) ** (k - i) for i in range(r + 1))


@pytest.mark.parametrize(("r", "k"), [(0, 10), (0, 30), (1, 20), (2, 30), (5, 50)])
def test_clopper_pearson_upper_bound_is_exact(r: int, k: int) -> None:
    upper = clopper_pearson_upper(r, k)
    assert _binomial_cdf(r, k, upper) == pytest.approx(0.05, abs=1e-9)  # P(X <= r | p_u) = 5%: exact by definition
    if r == 0:
        assert upper == pytest.approx(1 - 0.05 ** (1 / k), abs=1e-12)  # closed form with no success


def test_clopper_pearson_matches_published_figures() -> None:
    assert clopper_pearson_upper(0, 10) == pytest.approx(0.25887, abs=1e-5)  # "rule of three" territory: 3/10
    assert clopper_pearson_upper(1, 20) == pytest.approx(0.21611, abs=1e-5)
    assert clopper_pearson_upper(3, 3) == 1.0
    with pytest.raises(ValueError):
        clopper_pearson_upper(4, 3)


def test_recall_audit_sentence_with_exact_figures() -> None:
    audit = RecallAudit(excluded=1000, sampled=20, relevant_in_sample=0, relevant_found=50)
    p_u = 1 - 0.05 ** (1 / 20)  # 0.13911
    assert audit.excluded_relevant_share_at_most == pytest.approx(p_u)
    assert audit.recall_at_least == pytest.approx(50 / (50 + 980 * p_u))  # 0.2683
    assert (
        audit.sentence() == "auto-excluded 1000, sampled 20, relevant found 0: recall at least 26.8% with 95% "
        "confidence"
    )
    none_found = RecallAudit(excluded=10, sampled=0, relevant_in_sample=0, relevant_found=0)
    assert none_found.recall_at_least is None and "not measurable" in none_found.sentence()
    assert json.loads(json.dumps(audit.as_dict()))["recall_at_least"] == pytest.approx(0.26833, abs=1e-4)
