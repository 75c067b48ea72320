"""Language identification: langdetect made deterministic, with the page's lang attribute as fallback."""

from __future__ import annotations

import re
from dataclasses import dataclass
from threading import Lock

from langdetect import DetectorFactory, LangDetectException, detect_langs

MIN_CHARS = 40
# langdetect reads every n-gram of what it is given before sampling them, so a long sample costs time for
# nothing: at 4,000 characters no language or probability differed from its own 10,000-character cap on the
# 6,836 recorded records; at 2,500 the French ELSA page (R code first) fell from 7/7 to 5/7 trials
MAX_SAMPLE_CHARS = 4000
_lock = Lock()
_LANG_TAG = re.compile(r"^([a-zA-Z]{2,3})(?:[-_][a-zA-Z0-9]+)*$")
ZH_CODES = {"zh-cn", "zh-tw"}


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


def detect_language(text: str | None, *, seed: int = 0, min_chars: int = MIN_CHARS,
                    fallback: str | None = None) -> LanguageGuess:
    """Detect the language of ``text``; short or undetectable text falls back to ``fallback``.

    langdetect is random unless seeded; the seed is set under a lock for every call so results
    do not depend on call order.
    """
    sample = (text or "").strip()
    letters = sum(ch.isalpha() for ch in sample[:5000])
    fallback_code = normalise_lang_tag(fallback)
    if letters >= min_chars:
        try:
            with _lock:
                DetectorFactory.seed = seed
                best = detect_langs(sample[:MAX_SAMPLE_CHARS])[0]
        except LangDetectException:
            best = None
        if best is not None:
            code = "zh" if best.lang in ZH_CODES else best.lang
            return LanguageGuess(code, round(best.prob, 4), "detected")
    if fallback_code:
        return LanguageGuess(fallback_code, None, "fallback")
    return LanguageGuess(None, None, "none")
