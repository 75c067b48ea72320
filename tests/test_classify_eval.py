"""``harvester classify eval``: ranking figures checked by hand on a tiny set, the same figures per
language, a bad file refused in one line, and the active-learning simulation on real records."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harvester.classify import ClassifierInput, classify
from harvester.classify.evaluate import LabelledSetError, read_labelled
from harvester.classify.learn import figures, ranked, recall_at, screened_for, wss
from harvester.cli import cli

# Ten records, labels and language given. Their rules scores rank them (checked in the test):
# r1 > r2 > r3 > n1 > r4 > n4 > n5 > n2 = n3 = n7, i.e. by rank: 1 1 1 0 1 0 0 0 0 0.
TINY = [
    ("n2", "Quarterly earnings call of a shoe retailer", "Revenue grew in the third quarter.", 0, "en"),
    ("r4", "Community mangrove nursery in Mombasa", "Local women plant mangrove seedlings along the creek.", 1, "en"),
    (
        "n1",
        "Biodiversity offsets in a mining company's annual report",
        "The company mentions biodiversity once in its annual report.",
        0,
        "en",
    ),
    (
        "r1",
        "Regional training workshop on access and benefit-sharing and traditional knowledge for Pacific "
        "island countries",
        "A capacity-building programme of the Secretariat of the Convention on Biological Diversity with Fiji, "
        "Samoa and Tonga: courses on the Nagoya Protocol, biodiversity conservation and technology transfer.",
        1,
        "en",
    ),
    ("n3", "Recette du gâteau au citron", "Mélanger la farine, le sucre et les œufs.", 0, "fr"),
    ("n5", "Annual report of a bank", "The bank reports profits.", 0, "en"),
    (
        "r2",
        "Réseau régional de formation sur les espèces exotiques envahissantes",
        "Programme de renforcement des capacités pour la conservation de la biodiversité au Sénégal, au Mali et au "
        "Niger, avec ateliers et transfert de technologie.",
        1,
        "fr",
    ),
    ("n7", "Train timetable changes", "Trains leave at new times.", 0, "en"),
    (
        "r3",
        "Seed bank partnership",
        "Conservation of crop wild relatives and plant genetic resources in gene banks.",
        1,
        "en",
    ),
    ("n4", "Informe anual de una empresa minera", "La empresa menciona la biodiversidad en su informe anual.", 0, "es"),
]
RANKED = ["r1", "r2", "r3", "n1", "r4", "n4", "n5"]  # then n2, n3, n7 tied at 0


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "tiny.jsonl",
        [{"id": i, "title": t, "text": x, "label": y, "lang": lang} for i, t, x, y, lang in TINY],
    )


def test_tiny_set_ranks_as_the_hand_computation_assumes() -> None:
    scores = {i: classify(ClassifierInput(title=t, text=x, language=lang)).score for i, t, x, _, lang in TINY}
    ranked = sorted(scores, key=lambda i: -scores[i])
    assert ranked[:7] == RANKED
    assert scores["n4"] > scores["n5"] > scores["n2"] == scores["n3"] == scores["n7"] == 0.0


def test_eval_prints_hand_computed_figures(tiny: Path) -> None:
    result = CliRunner().invoke(cli, ["classify", "eval", str(tiny), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["n"], data["n_relevant"], data["budget"]) == (10, 4, 1)
    assert data["languages"] == {"en": 7, "fr": 2, "es": 1}
    rules = data["rankers"]["rules"]["all"]
    # By rank: 1 1 1 0 1 0 0 0 0 0. ROC AUC: pairs (relevant above irrelevant) / (4 x 6):
    # r1, r2, r3 beat all 6, r4 beats n4, n5, n2, n3, n7 -> 23/24.
    assert rules["roc_auc"] == pytest.approx(23 / 24)
    # Average precision: precision at each relevant rank (1, 2, 3, 5) -> (1 + 1 + 1 + 4/5) / 4.
    assert rules["average_precision"] == pytest.approx(0.95)
    # Budget 10% of 10 = 1 record: 1 of 4 relevant found.
    assert rules["recall_at_budget"] == pytest.approx(0.25)
    # 95% recall of 4 needs all 4: read 5 of 10 -> WSS@95 = (10 - 5)/10 - 0.05.
    assert rules["screened_for_95"] == 5
    assert rules["wss_95"] == pytest.approx(0.45)

    by_language = data["rankers"]["rules"]["by_language"]
    en = by_language["en"]  # r1 r3 n1 r4 n5 n2 n7: 3 relevant, 4 irrelevant
    assert en["roc_auc"] == pytest.approx(11 / 12)  # r1, r3 beat 4; r4 beats n5, n2, n7
    assert en["average_precision"] == pytest.approx((1 + 1 + 3 / 4) / 3)  # relevant at ranks 1, 2, 4
    assert (en["budget"], en["recall_at_budget"]) == (1, pytest.approx(1 / 3))
    assert en["wss_95"] == pytest.approx((7 - 4) / 7 - 0.05)
    fr = by_language["fr"]  # r2 above n3
    assert (fr["roc_auc"], fr["average_precision"], fr["recall_at_budget"]) == (1.0, 1.0, 1.0)
    assert fr["wss_95"] == pytest.approx((2 - 1) / 2 - 0.05)
    es = by_language["es"]  # one irrelevant record: nothing to rank
    assert (es["roc_auc"], es["average_precision"], es["recall_at_budget"], es["wss_95"]) == (None, None, None, None)
    assert data["rankers"]["model"]["folds"] == 4  # 4 relevant: at most 4 folds
    assert list(data["rankers"]) == ["zero_shot", "rules", "model"]
    assert data["rankers"]["zero_shot"]["how"].startswith("logistic(")


def test_eval_budget_option_and_table(tiny: Path) -> None:
    result = CliRunner().invoke(cli, ["classify", "eval", str(tiny), "--budget", "3", "--json"])
    assert json.loads(result.output)["rankers"]["rules"]["all"]["recall_at_budget"] == pytest.approx(0.75)
    table = CliRunner().invoke(cli, ["classify", "eval", str(tiny), "--budget", "3"])
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0] == f"{tiny}: 10 records, 4 relevant (40.0%); languages: en 7, fr 2, es 1"
    assert lines[1].split() == [
        "ranker",
        "subset",
        "n",
        "relevant",
        "ROC",
        "AUC",
        "avg",
        "prec",
        "recall@budget",
        "WSS@95",
        "read",
        "for",
        "95%",
    ]
    assert lines[2].split()[:2] == ["zero_shot", "all"]
    assert lines[3].split() == ["rules", "all", "10", "4", "0.958", "0.950", "0.750", "@3", "0.450", "5"]


def test_figures_by_hand_on_a_fixed_ranking() -> None:
    labels = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0]
    scores = [1.0 - i / 10 for i in range(10)]
    f = figures(labels, scores)
    # relevant at ranks 1, 3, 4, 7: irrelevant below each: 6, 5, 5, 3 of 6 -> 19/24
    assert f["roc_auc"] == pytest.approx(19 / 24)
    assert f["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 7) / 4)
    assert (f["budget"], f["recall_at_budget"]) == (1, 0.25)
    assert (f["screened_for_95"], f["wss_95"]) == (7, pytest.approx(0.25))
    assert recall_at(labels, scores, 4) == 0.75
    assert screened_for(labels, scores, 0.5) == 3
    assert wss(labels, scores, 1.0) == pytest.approx(0.3)


def test_ties_are_broken_by_a_seeded_shuffle_not_by_file_order() -> None:
    labels = [0] * 99 + [1]
    tied = [0.5] * 100
    assert screened_for(labels, tied, 1.0) == screened_for(labels, tied, 1.0)  # seeded: reproducible
    assert screened_for(labels, tied, 1.0) < 100  # the relevant record listed last is not read last
    order = ranked(tied, seed=0)
    assert sorted(order.tolist()) == list(range(100)) and order.tolist() != list(range(100))
    positions = [int(np.flatnonzero(ranked(tied, seed=s) == 99)[0]) for s in range(200)]
    assert 35 < sum(positions) / len(positions) < 65  # on average in the middle of the tie, as random reading
    assert ranked([0.1, 0.9, 0.5]).tolist() == [1, 2, 0]  # distinct scores: by score only


def test_eval_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"id": 1, "title": "a", "label": 1}, {"id": 2, "title": "b", "label": 0}, {"id": 3, "title": "c", "label": 2}],
    )
    result = CliRunner().invoke(cli, ["classify", "eval", str(bad)])
    assert result.exit_code == 2
    assert result.output == f"error: {bad}:3: label must be 0 or 1, got 2\n"
    one_class = write_jsonl(tmp_path / "one.jsonl", [{"id": i, "title": "t", "label": 1} for i in range(3)])
    result = CliRunner().invoke(cli, ["classify", "eval", str(one_class)])
    assert result.exit_code == 2
    assert "needs both relevant (1) and irrelevant (0) records" in result.output


def test_a_line_with_u2028_inside_a_string_is_one_record(tmp_path: Path) -> None:
    # JSON allows U+2028/U+2029/U+0085 unescaped in strings; str.splitlines() cut such a line in two
    rows = [
        {"id": "a", "title": "Mangroves\u2028of the Gulf", "text": "Line\u2029two\x85three", "label": 1, "lang": "en"},
        {"id": "b", "title": "Shoe retailer", "label": 0, "lang": "en"},
    ]
    path = write_jsonl(tmp_path / "u2028.jsonl", rows)
    assert "\u2028" in path.read_text(encoding="utf-8")  # written raw, not escaped
    records = read_labelled(path)
    assert [(r.id, r.title, r.text) for r in records] == [
        ("a", "Mangroves\u2028of the Gulf", "Line\u2029two\x85three"),
        ("b", "Shoe retailer", ""),
    ]
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert [r.title for r in read_labelled(crlf)] == ["Mangroves\u2028of the Gulf", "Shoe retailer"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(path.read_text(encoding="utf-8") + '{"id": "c", "title": "cut\n', encoding="utf-8")
    with pytest.raises(LabelledSetError, match=r"broken.jsonl:3: not JSON"):
        read_labelled(broken)


def test_simulation_on_real_records_finds_every_relevant_one(tmp_path: Path) -> None:
    from bench.build_labelled_set import build

    records = build(n_gef_relevant=60, seed=0)[:240]  # shuffled: GEF titles and case studies
    path = write_jsonl(
        tmp_path / "real.jsonl",
        [{k: r[k] for k in ("id", "title", "text", "url", "label", "lang") if k in r} for r in records],
    )
    result = CliRunner().invoke(cli, ["classify", "eval", str(path), "--simulate", "--step", "5", "--json"])
    assert result.exit_code == 0, result.output
    sim = json.loads(result.output)["simulation"]
    n, n_rel = len(records), sum(r["label"] for r in records)
    assert (sim["n"], sim["n_relevant"], sim["step"]) == (n, n_rel, 5)
    curve = sim["recall_curve"]
    assert curve[0] == [2, round(1 / n_rel, 4)]  # the seeded start: 1 relevant + 1 irrelevant
    assert curve[-1][1] == 1.0
    assert all(b[0] - a[0] == 5 or b == curve[-1] for a, b in pairwise(curve))
    assert all(a[1] <= b[1] for a, b in pairwise(curve))
    assert sim["screened_for_100"] <= curve[-1][0] <= n
    assert sim["wss_95"] == pytest.approx((n - sim["screened_for_95"]) / n - 0.05)
    assert sim["wss_95"] > 0.2  # far better than reading in random order (WSS 0)
    again = CliRunner().invoke(cli, ["classify", "eval", str(path), "--simulate", "--step", "5", "--json"])
    assert json.loads(again.output)["simulation"] == sim  # seeded: the same replay every time
