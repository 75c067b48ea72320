"""``harvester classify eval --criteria``: each CBD criterion's score against the UNFCCC Climate Initiatives
Platform's own labels (``bench.build_criteria_set``, built at run time from fixtures/unfccc-cip)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bench.build_criteria_set import build
from harvester.cli.main import cli

# Label composition read off the CIP file's Function / Geographical coverage / years / theme columns.
COMPOSITION = {
    "support_type": {1: 213, 0: 24, None: 51},
    "cbd_relevance": {1: 74, 0: 214, None: 0},
    "active": {1: 260, 0: 27, None: 1},
    "international": {1: 279, 0: 3, None: 6},
}


def test_cip_labels_come_from_the_partners_own_fields(fixtures_dir: Path) -> None:
    records = build(fixtures_dir)
    assert len(records) == 288
    for name, expected in COMPOSITION.items():
        got = {value: sum(1 for r in records if r["labels"][name] == value) for value in (1, 0, None)}
        assert got == expected, name
    by_id = {r["id"]: r for r in records}
    # Technical + political dialogue, one country, 2011-2015, no forestry or agriculture theme
    assert by_id["cip:PACMUN project"]["labels"] == {
        "support_type": 1,
        "international": 0,
        "active": 0,
        "cbd_relevance": 0,
    }
    # Capacity building ... funding, global, 2008-2025, forestry and agriculture
    assert by_id["cip:Forest Carbon Partnership Facility (FCPF)"]["labels"] == {
        "support_type": 1,
        "international": 1,
        "active": 1,
        "cbd_relevance": 1,
    }
    # only political dialogue: not one of the X/16 support types
    assert by_id["cip:Breakthrough Energy Coalition"]["labels"]["support_type"] == 0
    assert all(r["as_of"] == "2023-06-11" and "Only one country" not in r["text"] for r in records)


def test_eval_reports_precision_recall_and_auc_per_criterion(fixtures_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "cip-criteria.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in build(fixtures_dir)), encoding="utf-8")
    result = CliRunner().invoke(cli, ["classify", "eval", "--criteria", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 288 and report["unlabelled"] == []
    for name, expected in COMPOSITION.items():
        figures = report["criteria"][name]
        assert (figures["n"], figures["n_positive"]) == (expected[1] + expected[0], expected[1]), name
        assert 0 <= figures["roc_auc"] <= 1
    # The CBD vocabulary tells forestry and agriculture initiatives from energy, transport, finance ones.
    assert report["criteria"]["cbd_relevance"]["roc_auc"] > 0.75

    table = CliRunner().invoke(cli, ["classify", "eval", "--criteria", str(path)])
    assert table.exit_code == 0
    assert table.output.splitlines()[1].split() == [
        "criterion",
        "labelled",
        "positive",
        "met",
        "precision",
        "recall",
        "ROC",
        "AUC",
    ]


def test_a_bad_label_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x", "title": "Forest restoration network", "labels": {"active": 2}}) + "\n")
    result = CliRunner().invoke(cli, ["classify", "eval", "--criteria", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}:1: label of active must be 0, 1 or null, got 2"
