# ruff: noqa: RUF002  (Cyrillic, Arabic and full-width examples are intended here)
"""Fold text for matching while keeping a map back to the original character offsets.

Folding is per character, so every folded character knows the original offset it came from:

- lower-case; accents and other combining marks removed (``é`` -> ``e``, ``ё`` -> ``е``, Arabic
  harakat, shadda and hamza carriers: ``أ``/``إ``/``آ`` -> ``ا``, ``ؤ`` -> ``و``, ``ئ`` -> ``ي``);
- Arabic ``ة`` -> ``ه``, ``ى`` -> ``ي``; tatweel removed;
- full-width forms to their plain form (``（`` -> ``(``), curly quotes to ``'``;
- hyphens and dashes become spaces and every whitespace run becomes one space, so
  ``capacity-building``, ``capacity building`` and ``capacity\\nbuilding`` fold alike.

The same function folds vocabulary terms, so a term matches whatever accents or case the text uses.
``fold_char`` defines folding; ``fold`` and ``fold_text`` apply it with ``str.translate`` (each character's
fold is computed once and kept in a table), so a page is folded at C speed, not in a Python loop.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_SPACE = " "
_DASHES = set("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")
_QUOTES = {"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u2032": "'", "\u00b4": "'", "`": "'"}
_ARABIC = {"\u0629": "\u0647", "\u0649": "\u064a", "\u0671": "\u0627"}
_DELETE = {"\u0640", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\ufeff", "\u00ad"}


@lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """The folded form of one character: ``""`` (dropped), ``" "`` or exactly one character."""
    if ch in _DELETE:
        return ""
    if ch.isspace() or ch in _DASHES:
        return _SPACE
    if ch in _QUOTES:
        return _QUOTES[ch]
    if ch in _ARABIC:
        return _ARABIC[ch]
    cat = unicodedata.category(ch)
    if cat in ("Mn", "Me", "Cf"):
        return ""
    if ord(ch) >= 0xFF01 and ord(ch) <= 0xFF5E:  # full-width ASCII
        ch = chr(ord(ch) - 0xFEE0)
        if ch in _DASHES:
            return _SPACE
    decomposed = unicodedata.normalize("NFD", ch)
    if len(decomposed) > 1 and all(unicodedata.category(c) == "Mn" for c in decomposed[1:]):
        ch = decomposed[0]
    ch = _ARABIC.get(ch, ch)
    low = ch.lower()
    return low if len(low) == 1 else ch


_DROPPED = "\x00"  # stands for a dropped character in the aligned translation (never a fold of its own)
_TABLE_LIMIT = 65_536  # characters remembered per table: a page of rare code points cannot grow it without end
_CHANGED_RUN = re.compile("[ \x00]{2,}|\x00|^ ")  # where folded text stops being aligned with the original
_SPACE_RUN = re.compile(" {2,}")


class _FoldTable(dict[int, str]):
    """A ``str.translate`` table of ``fold_char``, filled on first use of each character; ``dropped`` is what
    a dropped character becomes (``""`` to delete it, ``_DROPPED`` to keep the translation aligned)."""

    def __init__(self, dropped: str) -> None:
        super().__init__()
        self.dropped = dropped

    def __missing__(self, code: int) -> str:
        value = fold_char(chr(code)) or self.dropped
        if len(self) < _TABLE_LIMIT:
            self[code] = value
        return value


_FOLDED = _FoldTable("")
_ALIGNED = _FoldTable(_DROPPED)


def fold_text(text: str) -> str:
    """``fold(text)[0]`` without the offsets."""
    return _SPACE_RUN.sub(_SPACE, text.translate(_FOLDED)).lstrip(_SPACE)


def fold(text: str) -> tuple[str, list[int] | None]:
    """Return ``(folded, index)``: ``index[i]`` is the offset in ``text`` of folded character ``i``.

    ``index`` is ``None`` when folding kept every character in place (ASCII text without leading
    whitespace, runs of whitespace or dashes), meaning offsets are the same in both strings.
    """
    if (
        text.isascii()
        and not text.startswith(_SPACE)
        and "  " not in text
        and not any(c in text for c in "-`\t\n\r\x0b\x0c")
    ):
        return text.lower(), None
    if _DROPPED in text:
        return _fold_by_character(text)
    aligned = text.translate(_ALIGNED)  # one character per character: dropped ones as _DROPPED
    out: list[str] = []
    index: list[int] = []
    kept = 0
    for run in _CHANGED_RUN.finditer(aligned):
        start, end = run.span()
        out.append(aligned[kept:start])
        index.extend(range(kept, start))
        space = aligned.find(_SPACE, start, end) if start else -1  # leading whitespace is dropped
        if space >= 0:
            out.append(_SPACE)
            index.append(space)
        kept = end
    out.append(aligned[kept:])
    index.extend(range(kept, len(aligned)))
    return "".join(out), index


def _fold_by_character(text: str) -> tuple[str, list[int]]:
    out: list[str] = []
    index: list[int] = []
    prev_space = True  # drop leading whitespace
    for i, ch in enumerate(text):
        f = fold_char(ch)
        if not f:
            continue
        if f == _SPACE:
            if prev_space:
                continue
            prev_space = True
        else:
            prev_space = False
        out.append(f)
        index.append(i)
    return "".join(out), index


def fold_term(term: str) -> str:
    """Fold a vocabulary term exactly as text is folded (and trim it)."""
    return fold_text(term).strip()


def original_span(index: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """Map a ``[start, end)`` span of folded text back to the original text."""
    if index is None:
        return start, end
    return index[start], index[end - 1] + 1


def is_unspaced_script(ch: str) -> bool:
    """True for characters of scripts matched without word boundaries (Arabic, CJK, kana, Thai)."""
    o = ord(ch)
    return (
        0x0600 <= o <= 0x08FF  # Arabic, Arabic Supplement, Arabic Extended-A
        or 0xFB50 <= o <= 0xFEFF  # Arabic presentation forms
        or 0x2E80 <= o <= 0x9FFF  # CJK radicals, kana, CJK unified ideographs
        or 0xF900 <= o <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= o <= 0x2FA1F  # CJK extensions
        or 0x0E00 <= o <= 0x0E7F  # Thai
    )
