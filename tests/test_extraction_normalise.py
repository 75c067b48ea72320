"""Tests for harvester.extraction.normalise: countries, dates, amounts and text."""

from __future__ import annotations

import csv
import os
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from harvester.extraction.normalise import (
    ParsedDate,
    clean_list,
    clean_text,
    country_code,
    country_codes,
    parse_amount,
    parse_date,
    parse_year_range,
    split_values,
)

DEFAULT_FIXTURES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
FIXTURES_DIR = Path(os.environ.get("HARVESTER_FIXTURES_DIR", DEFAULT_FIXTURES_DIR))
GEF_EXPORT = FIXTURES_DIR / "gef" / "dump-gef-project-database-export.csv"
GEF_NON_COUNTRY_LABELS = {
    "Global",
    "Regional",
    "Africa",
    "Asia/Pacific",
    "Europe and Central Asia",
    "Latin America and Caribbean",
}
GEF_FORMER_STATES = {"Serbia and Montenegro", "Yugoslavia"}


# --- country_code ------------------------------------------------------------


@pytest.mark.parametrize(("value", "code"), [("KE", "KE"), ("ke", "KE"), (" KE ", "KE"), ("XK", "XK")])
def test_alpha2_codes_pass_through_in_upper_case(value: str, code: str) -> None:
    assert country_code(value) == code


@pytest.mark.parametrize(("value", "code"), [("KEN", "KE"), ("COD", "CD"), ("CIV", "CI"), ("PRK", "KP")])
def test_gcf_iso3_codes_become_alpha2(value: str, code: str) -> None:
    assert country_code(value) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Kenya", "KE"),
        ("Antigua And Barbuda", "AG"),
        ("Congo DR", "CD"),
        ("Democratic Republic of the Congo", "CD"),
        ("Congo, The Democratic Republic of the", "CD"),
        ("Congo", "CG"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("C\u00f4te d\u2019Ivoire", "CI"),
        ("COTE D'IVOIRE", "CI"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("Lao PDR", "LA"),
        ("Tanzania", "TZ"),
        ("Bolivia", "BO"),
        ("Bolivia (Plurinational State of)", "BO"),
        ("Iran", "IR"),
        ("Syria", "SY"),
        ("Russia", "RU"),
        ("Russian Federation", "RU"),
        ("Turkey", "TR"),
        ("Türkiye", "TR"),
        ("Micronesia", "FM"),
        ("Moldova", "MD"),
        ("Korea, Republic of", "KR"),
        ("Republic Of Korea", "KR"),
        ("Korea DPR", "KP"),
        ("Palestine", "PS"),
        ("Palestinian Authority", "PS"),
        ("Kosovo", "XK"),
        ("Eswatini", "SZ"),
        ("Swaziland", "SZ"),
        ("Macedonia", "MK"),
        ("North Macedonia", "MK"),
        ("Cabo Verde", "CV"),
        ("Cape Verde", "CV"),
        ("St. Lucia", "LC"),
        ("Saint Kitts And Nevis", "KN"),
        ("St. Kitts And Nevis", "KN"),
        ("St. Vincent and Grenadines", "VC"),
        ("Bosnia-Herzegovina", "BA"),
        ("Timor Leste", "TL"),
        ("Kyrgyz Republic", "KG"),
        ("Slovak Republic", "SK"),
        ("Czech Republic", "CZ"),
        ("Brunei", "BN"),
        ("Trinidad & Tobago", "TT"),
        ("Gambia, The", "GM"),
        ("United States of America", "US"),
    ],
)
def test_english_name_variants_from_partner_data_resolve(value: str, code: str) -> None:
    assert country_code(value) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Kenya", "KE"),
        ("Kenia", "KE"),
        ("Кения", "KE"),
        ("كينيا", "KE"),
        ("肯尼亚", "KE"),
        ("肯亞", "KE"),
        ("République démocratique du Congo", "CD"),
        ("Costa de Marfil", "CI"),
        ("Estados Unidos", "US"),
        ("Соединённые Штаты Америки", "US"),
        ("Соединенные Штаты Америки", "US"),
        ("الولايات المتحدة", "US"),
        ("美国", "US"),
        ("Turquie", "TR"),
        ("Turquía", "TR"),
        ("Турция", "TR"),
        ("تركيا", "TR"),
        ("土耳其", "TR"),
    ],
)
def test_names_in_the_six_un_languages_resolve(value: str, code: str) -> None:
    assert country_code(value) == code


@pytest.mark.parametrize(
    "value",
    ["Global", "Regional", "Africa", "Asia/Pacific", "", "   ", "Atlantis", "Korea", "Central", "Costa"],
)
def test_non_countries_and_ambiguous_names_give_none(value: str) -> None:
    assert country_code(value) is None


@pytest.mark.parametrize("value", ["Serbia and Montenegro", "Yugoslavia"])
def test_former_states_have_no_current_code(value: str) -> None:
    assert country_code(value) is None


def test_fuzzy_search_accepts_only_a_single_confident_match() -> None:
    assert country_code("Timor") == "TL"
    assert country_code("Trinidad") is None
    assert country_code("America") is None


# --- country_codes -----------------------------------------------------------


def test_gef_comma_list_splits_into_codes_and_leftovers() -> None:
    assert country_codes("Algeria, Antigua And Barbuda, Global", split=",") == (["AG", "DZ"], ["Global"])


def test_names_with_commas_are_rejoined_when_only_the_joined_form_is_a_country() -> None:
    value = "Korea, Republic of, Congo, The Democratic Republic of the, Kenya, Regional"
    assert country_codes(value, split=",") == (["CD", "KE", "KR"], ["Regional"])


def test_pieces_that_resolve_alone_are_not_rejoined() -> None:
    assert country_codes("Congo, Kenya", split=",") == (["CG", "KE"], [])


def test_codes_are_sorted_unique_and_leftovers_keep_order_without_repeats() -> None:
    values = ["KEN", "Global", "Kenya", "Tanzania, United Republic of", "Regional", "global", " "]
    assert country_codes(values) == (["KE", "TZ"], ["Global", "Regional"])


def test_values_are_resolved_whole_without_split() -> None:
    assert country_codes(["Korea, Republic of", "Kenya\nUganda"]) == (["KR"], ["Kenya\nUganda"])


def test_country_codes_of_nothing_is_empty() -> None:
    assert country_codes([]) == ([], [])
    assert country_codes("", split=",") == ([], [])


def test_gef_export_country_names_resolve() -> None:
    assert FIXTURES_DIR.is_dir(), (
        f"fixtures folder {FIXTURES_DIR} is missing; set HARVESTER_FIXTURES_DIR to the shared fixtures"
    )
    assert GEF_EXPORT.is_file(), f"GEF export {GEF_EXPORT} is missing from the fixtures"
    with GEF_EXPORT.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = {name for row in rows for name in split_values(row["Countries"], ",")}
    known = GEF_NON_COUNTRY_LABELS | GEF_FORMER_STATES
    unresolved = sorted(name for name in names if name not in known and country_code(name) is None)
    assert len(names) > 150
    assert len(unresolved) <= len(names) * 0.01, f"unresolved GEF country names: {unresolved}"
    assert all(country_code(name) is None for name in known & names)
    leftovers = {left for row in rows for left in country_codes(row["Countries"], split=",")[1]}
    assert leftovers <= known | set(unresolved)


# --- parse_date --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "iso", "precision"),
    [
        ("2017-03-10T00:00:00.000Z", "2017-03-10", "day"),
        ("2024-10-23T08:37:24+00:00", "2024-10-23", "day"),
        ("2019-03-10", "2019-03-10", "day"),
        ("2019-12", "2019-12", "month"),
        ("24/05/2019 11:05:38", "2019-05-24", "day"),
        ("12 March 2019", "2019-03-12", "day"),
        ("March 2019", "2019-03", "month"),
        ("2019", "2019", "year"),
        (2023, "2023", "year"),
        ("2019/07/10", "2019-07-10", "day"),
        ("Q1 2019", "2019", "year"),
    ],
)
def test_dates_keep_the_precision_the_source_gave(value: str | int, iso: str, precision: str) -> None:
    assert parse_date(value) == ParsedDate(iso, precision)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("12 mars 2019", "2019-03-12"),
        ("12 de marzo de 2019", "2019-03-12"),
        ("12 марта 2019", "2019-03-12"),
        ("12 مارس 2019", "2019-03-12"),
        ("2019年3月12日", "2019-03-12"),
    ],
)
def test_written_dates_in_un_languages_parse(value: str, iso: str) -> None:
    assert parse_date(value) == ParsedDate(iso, "day")


def test_month_name_in_french_gives_month_precision() -> None:
    assert parse_date("mars 2019") == ParsedDate("2019-03", "month")


def test_languages_argument_limits_detection() -> None:
    assert parse_date("12 mars 2019", languages=["fr"]) == ParsedDate("2019-03-12", "day")
    assert parse_date("12 mars 2019", languages=["ru"]) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "0000-00-00",
        "31/02/2024",
        "2024-02-30",
        "2019-13-01",
        "ongoing",
        "yesterday",
        "March",
        "1899",
        "2101",
        1899,
        True,
        "2019-03-10 garbage",
        "not a date at all",
    ],
)
def test_invalid_dates_give_none(value: str | int | None) -> None:
    assert parse_date(value) is None


def test_unknown_language_code_gives_none_instead_of_raising() -> None:
    assert parse_date("12 March 2019", languages=["xx-not-a-language"]) is None


def test_parsed_date_is_frozen() -> None:
    parsed = ParsedDate("2019", "year")
    with pytest.raises(FrozenInstanceError):
        parsed.iso = "2020"  # type: ignore[misc]


# --- parse_year_range --------------------------------------------------------

Y2019, Y2023 = ParsedDate("2019", "year"), ParsedDate("2023", "year")


@pytest.mark.parametrize("value", ["2019-2023", "2019 \u2013 2023", "2019 to 2023", "2019\u20142023", " 2019 / 2023 "])
def test_year_ranges_give_start_and_end_years(value: str) -> None:
    assert parse_year_range(value) == (Y2019, Y2023)


@pytest.mark.parametrize("value", ["2019", "2019 - ongoing", "2019-present", "2019 to present", "2019 \u2013"])
def test_single_year_or_open_end_gives_no_end(value: str) -> None:
    assert parse_year_range(value) == (Y2019, None)


@pytest.mark.parametrize("value", ["", "ongoing", "sometime", "1800-1850"])
def test_unparseable_year_ranges_give_nothing(value: str) -> None:
    assert parse_year_range(value) == (None, None)


def test_end_before_start_is_dropped() -> None:
    assert parse_year_range("2023-2019") == (Y2023, None)


# --- parse_amount ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        ("1,233,000", 1233000.0),
        ("2,208,105", 2208105.0),
        ("USD 2.5 million", 2500000.0),
        ("US$ 1.2bn", 1200000000.0),
        ("2.5 million USD", 2500000.0),
        ("$1,000", 1000.0),
        ("1,233,000.50", 1233000.5),
        ("1.233.000,50", 1233000.5),
        ("1 233 000", 1233000.0),
        ("€ 2,5 Mio.", 2500000.0),
        ("6240000", 6240000.0),
        (6240000, 6240000.0),
        (3.5, 3.5),
    ],
)
def test_amounts_parse_to_floats(value: str | int | float, amount: float) -> None:
    assert parse_amount(value) == amount


@pytest.mark.parametrize("value", ["", None, "N/A", "USD", "Phase 2", "2019-2023", float("nan"), True])
def test_non_amounts_give_none(value: str | float | None) -> None:
    assert parse_amount(value) is None


# --- clean_text, clean_list, split_values -----------------------------------


def test_plain_text_is_collapsed_and_stripped() -> None:
    value = "Project Title: \tLebanon\u2019s   First\x00 Report  \r\n\r\n\r\n\r\n  Next\x07 line  "
    assert clean_text(value) == "Project Title: Lebanon\u2019s First Report\n\nNext line"


def test_text_is_nfc_normalised() -> None:
    assert clean_text("Cafe\u0301") == "Caf\u00e9"


def test_html_becomes_text_with_newlines_between_blocks() -> None:
    value = "<p>Hello <b>world</b></p><p>Second\n  para</p><ul><li>a</li><li>b</li></ul>x<br>y"
    assert clean_text(value) == "Hello world\n\nSecond para\n\na\n\nb\n\nx\ny"


def test_html_scripts_comments_and_entities_are_handled() -> None:
    value = "<!-- note --><script>x()</script><div>Tom &amp; Jerry</div>after"
    assert clean_text(value) == "Tom & Jerry\nafter"


def test_angle_brackets_without_tags_are_kept() -> None:
    assert clean_text("a < b and c > d") == "a < b and c > d"


@pytest.mark.parametrize("value", [None, "", "   \n\t ", "\x00\x07", "<p></p>"])
def test_empty_text_gives_none(value: str | None) -> None:
    assert clean_text(value) is None


def test_clean_list_drops_empties_and_case_insensitive_repeats() -> None:
    values = [" UNDP ", "undp", None, "", "<b>FAO</b>", "Global", "FAO"]
    assert clean_list(values) == ["UNDP", "FAO", "Global"]


def test_split_values_strips_and_drops_empty_pieces() -> None:
    assert split_values(" a, b,, c ,", ",") == ["a", "b", "c"]
    assert split_values("Climate Change; Biodiversity", ";") == ["Climate Change", "Biodiversity"]
    assert split_values(None, ",") == []
    assert split_values("", ",") == []
