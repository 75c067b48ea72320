"""Term matching (harvester.classify.matching): word boundaries in spaced scripts, substrings in unspaced ones,
wildcards, and spans into the original text."""

from __future__ import annotations

import pytest

from harvester.classify.matching import FoldedText, Matcher

TERMS = [
    ("capacity building", "a", 1.0),
    ("capacity", "b", 1.0),
    ("workshop*", "c", 1.0),
    ("кени~", "d", 1.0),
    ("since {year}", "e", 1.0),
    ("{year}年以来", "f", 1.0),
    ("生物多样性", "g", 1.0),
    ("1st call", "h", 1.0),
    ("c-level", "i", 1.0),
]


@pytest.mark.parametrize(
    "text, found",
    [
        ("capacity building and capacity", [("capacity building", 0), ("capacity", 22)]),
        ("incapacity buildings, capacity-", [("capacity", 22)]),
        ("two workshops in кении since 2019", [("workshops", 4), ("кении", 17), ("since 2019", 23)]),
        ("x2019年以来 2019年以来 中国生物多样性保护", [("2019年以来", 9), ("生物多样性", 19)]),
        ("the 1st call; 21st call", [("1st call", 4)]),
        ("C-Level cc-level", [("C-Level", 0)]),
    ],
)
def test_terms_match_on_word_boundaries_in_spaced_scripts_and_as_substrings_in_unspaced_ones(
    text: str, found: list[tuple[str, int]]
) -> None:
    ft = FoldedText(text)
    assert [(ft.text[m.start : m.end], m.start) for m in ft.find(Matcher(TERMS))] == found


def test_the_longest_term_wins_where_terms_overlap_and_every_sense_of_a_term_counts() -> None:
    matcher = Matcher(
        [
            ("marine protected area*", "marine", 1.0),
            ("marine protected area*", "protected", 0.5),
            ("marine", "marine", 0.3),
        ]
    )
    ft = FoldedText("Marine Protected Areas and marine life")
    found = [(ft.text[m.start : m.end], m.term.senses) for m in ft.find(matcher)]
    assert found == [("Marine Protected Areas", (("marine", 1.0), ("protected", 0.5))), ("marine", (("marine", 0.3),))]


def test_a_term_opening_with_a_wildcard_matches_the_rest_of_a_word() -> None:
    ft = FoldedText("capacity-building, rebuilding")
    assert [ft.text[m.start : m.end] for m in ft.find(Matcher([("*building", "a", 1.0), ("capacity", "b", 1.0)]))] == [
        "capacity",
        "building",
        "rebuilding",
    ]
