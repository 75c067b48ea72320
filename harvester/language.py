"""Language identification: langdetect made deterministic, with the page's lang attribute as fallback."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from langdetect import LangDetectException, detector_factory
from langdetect.detector import Detector
from langdetect.utils.ngram import NGram

MIN_CHARS = 40
# langdetect reads every n-gram of what it is given before sampling them, so a long sample costs time for
# nothing: at 4,000 characters no language or probability differed from its own 10,000-character cap on the
# 6,836 recorded records; at 2,500 the French ELSA page (R code first) fell from 7/7 to 5/7 trials
MAX_SAMPLE_CHARS = 4000
_LANG_TAG = re.compile(r"^([a-zA-Z]{2,3})(?:[-_][a-zA-Z0-9]+)*$")
ZH_CODES = {"zh-cn", "zh-tw"}


_SPACE_RUN = re.compile(" {2,}")
_LATIN = re.compile("[A-z]")  # langdetect's own test: 'A' <= ch <= 'z'
_NON_LATIN = re.compile("[\u0300-\U0010ffff]")  # langdetect means to leave out U+1E00-U+1EFF, but its test never
# does (it compares a block number with a block name), so neither does this


class _NGramTable(dict[int, str]):
    """A ``str.translate`` table of langdetect's ``NGram.normalize``, filled on first use of each character."""

    def __missing__(self, code: int) -> str:
        value = NGram.normalize(chr(code))
        if len(self) < 65_536:
            self[code] = value
        return value


_NGRAM_TABLE = _NGramTable()


class SeededDetector(Detector):  # type: ignore[misc]
    """langdetect's ``Detector`` with its per-character loops (append, cleaning, n-gram extraction) done by
    regular expressions, ``str.translate`` and one inline loop: the same text and the same n-grams in the same
    order, so the same probabilities for a seed, in about half the time. The seed is the detector's own, not
    the factory's shared one."""

    def __init__(self, seed: int) -> None:
        detector_factory.init_factory()
        super().__init__(detector_factory._factory)
        self.seed = seed

    def append(self, text: str) -> None:
        text = NGram.normalize_vi(self.MAIL_RE.sub(" ", self.URL_RE.sub(" ", text)))
        self.text += _SPACE_RUN.sub(" ", text[: self.max_text_length])

    def cleaning_text(self) -> None:
        if len(_LATIN.findall(self.text)) * 2 < len(_NON_LATIN.findall(self.text)):
            self.text = _LATIN.sub("", self.text)

    def _extract_ngrams(self) -> list[str]:
        """The n-grams of each space-separated word, read once per distinct word: langdetect's n-gram buffer
        starts afresh after every space, so a word (with the space after it, when one follows) always gives
        the same n-grams, and most words of a page recur on it and on other pages."""
        known = self.word_lang_prob_map
        memo = _word_grams_memo(known)
        found: list[str] = []
        words = self.text.translate(_NGRAM_TABLE).split(" ")
        last = len(words) - 1
        for i, word in enumerate(words):
            if word:
                key = word + " " if i < last else word
                grams = memo.get(key)
                if grams is None:
                    grams = _word_ngrams(key, known)
                    if len(memo) < WORD_GRAMS_KEPT:
                        memo[key] = grams
                found += grams
        return found

    def _update_lang_prob(self, prob: list[float], word: str | None, alpha: float) -> bool:
        """langdetect's update (each language's probability times ``alpha / BASE_FREQ`` plus the n-gram's
        probability in it), as one comprehension instead of an indexed loop: the same products."""
        lang_prob_map = self.word_lang_prob_map.get(word) if word is not None else None
        if lang_prob_map is None:
            return False
        weight = alpha / self.BASE_FREQ
        prob[:] = [p * (weight + q) for p, q in zip(prob, lang_prob_map, strict=True)]
        return True


WORD_GRAMS_KEPT = 10_000  # distinct words whose n-grams are kept: under 5 MB per process
_word_grams: tuple[object, dict[str, tuple[str, ...]]] = (None, {})


def _word_grams_memo(known: object) -> dict[str, tuple[str, ...]]:
    """The memo of words' n-grams for profile map ``known`` (a new map, from reloaded profiles, starts anew)."""
    global _word_grams
    if _word_grams[0] is not known:
        _word_grams = (known, {})
    return _word_grams[1]


def _word_ngrams(word: str, known: dict[str, list[float]]) -> tuple[str, ...]:
    """langdetect's known n-grams of one normalised ``word`` that follows a space (or starts the text), and
    ends with the space after it if there is one: its per-character buffer, in one inline loop."""
    found: list[str] = []
    grams = " "  # the last three normalised characters; a space resets it
    for ch in word:
        last = grams[-1]
        if last == " ":
            grams = " " + ch
        elif len(grams) >= 3:
            grams = grams[1:] + ch
        else:
            grams += ch
        if ch.isupper() and last.isupper():
            continue  # inside a word in capitals (an acronym): langdetect skips it
        if ch != " " and ch in known:
            found.append(ch)
        if len(grams) >= 2:
            if grams[-2:] in known:
                found.append(grams[-2:])
            if len(grams) == 3 and grams in known:
                found.append(grams)
    return tuple(map(sys.intern, found))  # interned: the memo's words share their n-grams' strings


@dataclass(frozen=True)
class LanguageGuess:
    code: str | None
    probability: float | None
    source: str  # "detected" | "fallback" | "none"


def normalise_lang_tag(tag: str | None) -> str | None:
    """A language tag or name as ISO 639-1: 'en-GB' -> 'en', 'zh-Hans' -> 'zh', 'eng' and 'English' -> 'en'.

    None for anything that is not a language.
    """
    import pycountry

    if not tag or not tag.strip():
        return None
    value = tag.strip()
    match = _LANG_TAG.match(value)
    code = match.group(1).lower() if match else None
    if code and len(code) == 2:
        return code if pycountry.languages.get(alpha_2=code) else None
    try:
        lang = pycountry.languages.lookup(code or value)
    except LookupError:
        return None
    return getattr(lang, "alpha_2", None)


def _has_letters(text: str, count: int) -> bool:
    """At least ``count`` letters in ``text`` (read only as far as needed)."""
    for ch in text:
        if ch.isalpha():
            count -= 1
            if count <= 0:
                return True
    return count <= 0


def detect_language(
    text: str | None, *, seed: int = 0, min_chars: int = MIN_CHARS, fallback: str | None = None
) -> LanguageGuess:
    """Detect the language of ``text``; short or undetectable text falls back to ``fallback``.

    langdetect is random unless seeded; every call seeds its own detector, so results do not depend on
    call order or threads.
    """
    sample = (text or "").strip()
    fallback_code = normalise_lang_tag(fallback)
    if _has_letters(sample[:5000], min_chars):
        try:
            detector = SeededDetector(seed)
            detector.append(sample[:MAX_SAMPLE_CHARS])
            best = detector.get_probabilities()[0]
        except LangDetectException:
            best = None
        if best is not None:
            code = "zh" if best.lang in ZH_CODES else best.lang
            return LanguageGuess(code, round(best.prob, 4), "detected")
    if fallback_code:
        return LanguageGuess(fallback_code, None, "fallback")
    return LanguageGuess(None, None, "none")
