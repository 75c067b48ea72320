"""Language identification (harvester.language): the seeded detector reads text exactly as langdetect's own
``Detector`` does, so every language and probability stays what langdetect gives for the same seed."""

from __future__ import annotations

import threading

import pytest
import trafilatura
from langdetect import DetectorFactory, detector_factory
from langdetect.detector import Detector

from harvester.language import MAX_SAMPLE_CHARS, SeededDetector, detect_language
from harvester.recordings.fixtures import fixtures_dir

EDGE_CASES = [
    "The UNDP-GEF   project on ADAPTATION in the Pacific (SIDS) — see https://www.undp.org and info@undp.org",
    "  leading spaces, CAPITAL WORDS AND aCrOnYmS like GEF, FAO, IUCN   ",
    "Les écosystèmes marins et côtiers du Sénégal: gestion intégrée des zones côtières",
    "Tiếng Việt có dấu: bảo tồn đa dạng sinh học và phát triển bền vững",
    "ỆỆỆ ẠẠẠẠ ỄỄỄ ab ỪỪỪ",  # Latin Extended Additional counts as non-Latin in langdetect's cleaning
    "保护生物多样性 and some English words mixed into 中文 text about 生态系统",
    "حماية التنوع البيولوجي في المناطق الساحلية mixed with Latin GEF words",
    "Сохранение биоразнообразия в России и СНГ",
    "ひらがなとカタカナ、漢字の混じった日本語の文章です",
    "GEF funds the GEF project of GEF",  # one word read with and without the space after it
    "a text that ends with spaces and punctuation. ",
]


def recorded_texts() -> list[str]:
    folder = fixtures_dir() / "formats" / "multilingual"
    texts = [
        trafilatura.extract(path.read_bytes().decode("utf-8", errors="replace"))
        for path in sorted(folder.glob("*.html"))
    ]
    return [t for t in texts if t]


def stock(text: str, seed: int) -> Detector:
    detector_factory.init_factory()
    DetectorFactory.seed = seed
    try:
        detector = detector_factory._factory.create()
    finally:
        DetectorFactory.seed = None
    detector.append(text)
    return detector


def assert_same_reading(text: str, seed: int = 0) -> None:
    ours, theirs = SeededDetector(seed), stock(text, seed)
    ours.append(text)
    assert ours.text == theirs.text
    ours.cleaning_text()
    theirs.cleaning_text()
    assert ours.text == theirs.text
    assert ours._extract_ngrams() == theirs._extract_ngrams()
    fresh_ours, fresh_theirs = SeededDetector(seed), stock(text, seed)
    fresh_ours.append(text)
    assert [(p.lang, p.prob) for p in fresh_ours.get_probabilities()] == [
        (p.lang, p.prob) for p in fresh_theirs.get_probabilities()
    ]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_the_seeded_detector_reads_text_as_langdetect_does(text: str) -> None:
    assert_same_reading(text)


def test_the_seeded_detector_gives_langdetects_probabilities_on_every_recorded_multilingual_page() -> None:
    texts = recorded_texts()
    assert len(texts) >= 10
    for seed, text in enumerate(texts):
        assert_same_reading(text[:MAX_SAMPLE_CHARS], seed)


def test_detection_in_threads_gives_what_one_thread_gives() -> None:
    texts = recorded_texts()
    alone = [detect_language(t, seed=3) for t in texts]
    together: dict[int, object] = {}

    def run(i: int) -> None:
        together[i] = detect_language(texts[i], seed=3)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [together[i] for i in range(len(texts))] == alone
    assert {g.code for g in alone} >= {"en", "fr", "es", "ru", "zh", "ar"}
