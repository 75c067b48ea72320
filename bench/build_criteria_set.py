"""Build a per-criterion labelled set from the UNFCCC Climate Initiatives Platform file, for
``harvester classify eval --criteria``.

    python -m bench.build_criteria_set [--out FILE]

Written at run time (default ``<HARVESTER_DATA_DIR>/cache/labelled/cip-criteria.jsonl``, never
committed) from ``unfccc-cip/dump-initiatives-20230611.csv`` in the shared fixtures folder. Each of
the 288 initiatives gives a title (its name) and a text (description, objectives, activities); the
labels come from the platform's own labelled fields, which are left out of the text:

- ``support_type``: "Function of initiative" includes Capacity building (X/16 capacity-building and
  training), Technical dialogue (workshops and seminars) or Implementation (other implementation)
  -> 1; only Political dialogue and/or Funding -> 0; no function given -> no label.
- ``international``: "Geographical coverage" is "Only one country" -> 0; Global, a world region or
  a group of countries (SIDS, LDC) -> 1; no coverage given -> no label.
- ``active`` (active and long-term) as of the capture date, 2023-06-11: started in 2021 or earlier
  and no end year, or an end year of 2023 or later -> 1; ended before 2023, or started after 2021
  (not yet long-term) -> 0; no starting year -> no label.
- ``cbd_relevance``: the Forestry or Agriculture theme flag is set -> 1, otherwise 0. A partial
  label: CBD relevance also covers marine, inland waters, protected areas, ... which the platform's
  climate themes do not name, so some relevant initiatives are labelled 0.

Prints the composition; the last line is JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from harvester.recordings.fixtures import fixtures_dir
from harvester.settings import get_settings

CIP = "unfccc-cip/dump-initiatives-20230611.csv"
AS_OF = "2023-06-11"
SUPPORT_FUNCTIONS = {"Capacity building", "Technical dialogue", "Implementation"}
OTHER_FUNCTIONS = {"Political dialogue", "Funding"}
CBD_THEMES = ("Forestry", "Agriculture")
TEXT_COLUMNS = ("Description", "Objectives", "Activities")


def default_path() -> Path:
    return get_settings().data_dir / "cache" / "labelled" / "cip-criteria.jsonl"


def _values(cell: str) -> list[str]:
    return [v.strip() for v in cell.split(",") if v.strip()]


def labels(row: dict[str, str]) -> dict[str, int | None]:
    """The four criterion labels of one CIP row (``None``: the row says nothing about it)."""
    functions = set(_values(row["Function of initiative"]))
    unknown = functions - SUPPORT_FUNCTIONS - OTHER_FUNCTIONS
    if unknown:
        raise ValueError(f"unmapped function(s) {sorted(unknown)} in {row['Name of initiative']!r}")
    coverage = _values(row["Geographical coverage"])
    start, end = row["Starting year"].strip(), row["End year"].strip()
    if not start:
        active = None
    elif end:
        active = int(int(end) >= 2023 and int(start) <= 2021)
    else:
        active = int(int(start) <= 2021)
    return {
        "support_type": int(bool(functions & SUPPORT_FUNCTIONS)) if functions else None,
        "international": int(coverage != ["Only one country"]) if coverage else None,
        "active": active,
        "cbd_relevance": int(any(row[t].strip().lower() == "yes" for t in CBD_THEMES)),
    }


def build(fixtures: Path | None = None) -> list[dict[str, Any]]:
    body = (fixtures_dir(fixtures) / CIP).read_text(encoding="utf-8-sig")
    records = []
    for row in csv.DictReader(io.StringIO(body, newline="")):
        row = {k.strip(): v for k, v in row.items()}
        text = "\n\n".join(row[c].strip() for c in TEXT_COLUMNS if row[c].strip())
        records.append(
            {
                "id": f"cip:{row['Name of initiative'].strip()}",
                "title": row["Name of initiative"].strip(),
                "text": text,
                "lang": "en",
                "as_of": AS_OF,
                "labels": labels(row),
            }
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="JSONL file to write (default: in the cache)")
    args = parser.parse_args()
    out = args.out or default_path()
    records = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    composition = {
        name: Counter(r["labels"][name] for r in records)
        for name in ("support_type", "cbd_relevance", "active", "international")
    }
    print(f"{'criterion':15} {'1':>5} {'0':>5} {'no label':>9}")
    for name, c in composition.items():
        print(f"{name:15} {c[1]:>5} {c[0]:>5} {c[None]:>9}")
    print(f"wrote {len(records)} records to {out}")
    print(
        json.dumps(
            {
                "path": str(out),
                "n": len(records),
                "labels": {n: {str(k): v for k, v in c.items()} for n, c in composition.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
