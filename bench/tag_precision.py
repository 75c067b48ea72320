"""Precision of the proposed CBD-subject tags, checked against the GEF export's focal areas.

    python -m bench.tag_precision

Every GEF project (title only: the export has no description) is classified; each CBD subject it
proposes is checked against the project's own ``Focal Areas``, which the GEF assigns and which map
onto CBD subjects without our vocabularies (``CHECKS``): a biome or biodiversity subject is right
when the project is in the Biodiversity focal area (or the focal area that covers that biome),
``CBD-SUBJECT-CC`` when it is in Climate Change, and no CBD subject is right for a Chemicals and
Waste-only project. The cross-cutting cooperation subjects (STTM, KM) cannot be checked this way and
are left out. Prints precision with the per-field cap (``tags.MAX_PER_FIELD``) and without it, and
a JSON line.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from unittest import mock

from harvester.classify import ClassifierInput, classify, tags
from harvester.fixtures import load_capture

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


def measure() -> dict[str, dict[str, float | int]]:
    rows = list(csv.DictReader(io.StringIO(load_capture(GEF).body.decode("utf-8-sig"))))
    out = {}
    for label, cap in (("capped", tags.MAX_PER_FIELD), ("uncapped", 10_000)):
        verdicts: Counter[str] = Counter()
        per_record = []
        with mock.patch.object(tags, "MAX_PER_FIELD", cap):
            for row in rows:
                areas = {a.strip() for a in row["Focal Areas"].split(",") if a.strip()}
                proposed = classify(ClassifierInput(title=row["Title"], language="en")).tags["cbdSubjects"]
                per_record.append(len(proposed))
                for subject in proposed:
                    if subject in CHECKS:
                        verdicts["right" if areas & CHECKS[subject] else "wrong"] += 1
        checked = verdicts["right"] + verdicts["wrong"]
        out[label] = {"records": len(rows), "checked_tags": checked, "right": verdicts["right"],
                      "precision": round(verdicts["right"] / checked, 4) if checked else None,
                      "max_per_record": max(per_record), "records_with_tags": sum(1 for n in per_record if n)}
    return out


def main() -> None:
    result = measure()
    for label, r in result.items():
        print(f"{label:9} {r['checked_tags']:5} checkable CBD-subject tags on {r['records_with_tags']} of "
              f"{r['records']} GEF projects, precision {r['precision']}, at most {r['max_per_record']} per record")
    print(json.dumps({"bench": "tag_precision", **result}))


if __name__ == "__main__":
    main()
