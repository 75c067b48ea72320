"""Precision of the proposed CBD-subject tags, checked against the GEF export's focal areas.

    python -m bench.tag_precision

Every GEF project (title only: the export has no description) is classified; each CBD subject it
proposes is checked against the project's own ``Focal Areas``, which the GEF assigns and which map
onto CBD subjects without our vocabularies (``CHECKS``): a biome or biodiversity subject is right
when the project is in the Biodiversity focal area (or the focal area that covers that biome),
``CBD-SUBJECT-CC`` when it is in Climate Change, and no CBD subject is right for a Chemicals and
Waste-only project. The cross-cutting cooperation subjects (STTM, KM) cannot be checked this way and
are left out. Prints precision overall and per subject, and a JSON line.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

from harvester.classify import ClassifierInput, classify
from harvester.recordings.fixtures import load_capture

GEF = "gef/dump-gef-project-database-export.csv"
BIODIVERSITY = "Biodiversity"
CHECKS: dict[str, set[str]] = {  # CBD subject -> the GEF focal areas that make it right
    "CBD-SUBJECT-CC": {"Climate Change"},
    "CBD-SUBJECT-WTR": {BIODIVERSITY, "International Waters"},
    "CBD-SUBJECT-MAR": {BIODIVERSITY, "International Waters"},
    "CBD-SUBJECT-DSHL": {BIODIVERSITY, "Land Degradation"},
    "CBD-SUBJECT-AGR": {BIODIVERSITY, "Land Degradation"},
    "CBD-SUBJECT-FOR": {BIODIVERSITY, "Land Degradation", "Climate Change"},
    **{f"CBD-SUBJECT-{s}": {BIODIVERSITY} for s in ("PA", "IAS", "ABS", "CPB", "MNT", "ISL", "GSPC", "ILC", "SWM")},
}


def measure() -> dict[str, object]:
    rows = list(csv.DictReader(io.StringIO(load_capture(GEF).body.decode("utf-8-sig"))))
    verdicts: Counter[tuple[str, bool]] = Counter()
    per_record = []
    for row in rows:
        areas = {a.strip() for a in row["Focal Areas"].split(",") if a.strip()}
        proposed = classify(ClassifierInput(title=row["Title"], language="en")).tags["cbdSubjects"]
        per_record.append(len(proposed))
        for subject in proposed:
            if subject in CHECKS:
                verdicts[(subject, bool(areas & CHECKS[subject]))] += 1
    right = sum(n for (_, ok), n in verdicts.items() if ok)
    checked = sum(verdicts.values())
    subjects = sorted({s for s, _ in verdicts})
    return {
        "records": len(rows),
        "records_with_tags": sum(1 for n in per_record if n),
        "max_per_record": max(per_record),
        "checked_tags": checked,
        "right": right,
        "precision": round(right / checked, 4) if checked else None,
        "by_subject": {s: {"right": verdicts[(s, True)], "wrong": verdicts[(s, False)]} for s in subjects},
    }


def main() -> None:
    r = measure()
    print(
        f"{r['checked_tags']} checkable CBD-subject tags on {r['records_with_tags']} of {r['records']} GEF "
        f"projects, precision {r['precision']}, at most {r['max_per_record']} per record"
    )
    for subject, v in r["by_subject"].items():  # type: ignore[union-attr]
        print(f"  {subject:20} right {v['right']:4}  wrong {v['wrong']:4}")
    print(json.dumps({"bench": "tag_precision", **r}))


if __name__ == "__main__":
    main()
