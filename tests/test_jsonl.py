"""JSON Lines readers split records at line feeds only: U+2028 and friends inside a string are data."""

from __future__ import annotations

import json
from pathlib import Path

from harvester.jsonl import jsonl_lines
from harvester.recordings.fixtures import folder_index


def test_jsonl_lines_split_at_line_feeds_only() -> None:
    text = '{"t": "a\u2028b\u2029c\x85d"}\r\n{"t": 2}\n'
    assert [(n, json.loads(line)["t"]) for n, line in jsonl_lines(text) if line] == [
        (1, "a\u2028b\u2029c\x85d"),
        (2, 2),
    ]


def test_fixture_index_keeps_an_entry_with_u2028_in_its_title(tmp_path: Path) -> None:
    entries = [{"file": "a.html", "title": "Forêts\u2028du Sahel", "lang": "fr"}, {"file": "b.html", "lang": "en"}]
    (tmp_path / "index.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8"
    )
    assert folder_index(tmp_path) == {"a.html": entries[0], "b.html": entries[1]}
