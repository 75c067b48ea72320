"""Folding (harvester.classify.folding): the table-driven ``fold`` and ``fold_text`` give exactly what folding
each character by ``fold_char`` gives, with offsets that point back into the original text."""

from __future__ import annotations

import pytest

from harvester.classify.folding import _fold_by_character, fold, fold_char, fold_text, original_span
from harvester.recordings.fixtures import fixtures_dir

EDGE_CASES = [
    "",
    " ",
    "   leading and trailing   ",
    "\u200b  zero width before spaces",
    "a\u200b b",
    "a \u200b b",
    "a\u200b\u200bb",
    "capacity-building, capacity\u2013building and capacity\n\nbuilding",
    "tab\tand\r\nnewlines\x0b\x0c",
    "Écosystèmes, ÉLÉVAGE et forêts",
    "e\u0301cosyste\u0300me (decomposed accents)",
    "\u0627\u0644\u0652\u0645\u064e\u062f\u0650\u064a\u0646\u064e\u0629\u064f \u0640\u0640 \u0623\u0625\u0622",
    "\uff08full\uff0dwidth\uff09 \uff21\uff22\uff23",
    "curly \u2018quotes\u2019 and `backticks`",
    "ёлка Ёж",
    "soft\u00adhyphen",
    "\u200b",
    "x\x00y  z",
    "\u0301 leading combining mark",
    "ends with a space ",
    "ends with a drop\u200b",
]


def recorded_texts() -> list[str]:
    folder = fixtures_dir() / "formats" / "multilingual"
    return [path.read_bytes().decode("utf-8", errors="replace") for path in sorted(folder.glob("*.html"))]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_fold_gives_the_per_character_folding_with_offsets_into_the_original(text: str) -> None:
    folded, index = fold(text)
    expected, expected_index = _fold_by_character(text)
    assert folded == expected
    if index is not None:
        assert index == expected_index
    assert fold_text(text) == expected


def test_fold_matches_the_per_character_folding_on_every_recorded_multilingual_page() -> None:
    texts = recorded_texts()
    assert len(texts) >= 10
    for text in texts:
        folded, index = fold(text)
        expected, expected_index = _fold_by_character(text)
        assert folded == expected and index == expected_index
        assert fold_text(text) == expected


def test_an_offset_span_of_folded_text_slices_the_original_words() -> None:
    text = "  Les  ÉCOSYSTÈMES\n\nmarins\u2013côtiers"
    folded, index = fold(text)
    assert folded == "les ecosystemes marins cotiers"
    start = folded.index("ecosystemes")
    s, e = original_span(index, start, start + len("ecosystemes"))
    assert text[s:e] == "ÉCOSYSTÈMES"
    s, e = original_span(index, folded.index("cotiers"), len(folded))
    assert text[s:e] == "côtiers"


def test_a_page_of_rare_characters_does_not_grow_the_fold_table_without_end() -> None:
    rare = "".join(chr(c) for c in range(0x20000, 0x20000 + 70_000))
    assert fold_text(rare) == "".join(fold_char(c) for c in rare)
    from harvester.classify import folding

    assert len(folding._FOLDED) <= folding._TABLE_LIMIT
