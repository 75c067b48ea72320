"""``harvester sources test``: replay each source's captures through its spider and stages and compare
the extracted fields with the reviewed expected outputs in ``tests/expected/<source>/<capture>.json``."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from harvester.crawl.offline import candidates_from_response
from harvester.items import CandidateItem
from harvester.recordings.fixtures import load_capture
from harvester.recordings.warc import RecordedResponse
from harvester.registry import SourceSpec
from harvester.settings import PROJECT_ROOT

EXPECTED_DIR = PROJECT_ROOT / "tests" / "expected"
COMPARED_FIELDS = (
    "url",
    "title",
    "summary",
    "organisations",
    "countries",
    "regions",
    "keywords",
    "start_date",
    "end_date",
    "published",
    "language",
    "extra",
)
NEW_FILE_RECORDS = 5


def expected_fields(item: CandidateItem) -> dict[str, Any]:
    """The fields a reviewed expected output holds: sorted keys, no empty values."""
    values = {"url": item.canonical_url or item.url, "language": item.language, **item.harvested_fields()}
    return {k: values[k] for k in sorted(COMPARED_FIELDS) if values.get(k) not in (None, "", [], {})}


@dataclass
class FieldTally:
    right: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (sum(self.wrong.values()) or sum(self.missing.values()))


def _items_by_key(spec: SourceSpec, capture_ref: Any, fixtures_root: Path | None) -> dict[str, CandidateItem]:
    capture = load_capture(capture_ref.fixture, capture_ref.url, fixtures_root)
    if spec.kind == "listing" and capture.url in spec.start_urls:
        return {}
    headers = capture.headers()
    if capture_ref.fetched is not None:  # the capture's date picks the parser version it was written for
        headers = [*headers, ("Date", format_datetime(datetime.combine(capture_ref.fetched, time(12), UTC)))]
    result = candidates_from_response(spec, RecordedResponse(capture.url, 200, headers, capture.body))
    return {item.record_key or item.canonical_url or item.url: item for item in result.items}


def expected_path(spec: SourceSpec, fixture: str) -> Path:
    return EXPECTED_DIR / spec.id / (Path(fixture).name.split(".")[0] + ".json")


def check_source(spec: SourceSpec, update: bool = False, fixtures_root: Path | None = None) -> FieldTally:
    tally = FieldTally()
    for capture_ref in spec.replay:
        one = check_capture(spec, capture_ref, update, fixtures_root)
        tally.right += one.right
        tally.wrong += one.wrong
        tally.missing += one.missing
        tally.problems += one.problems
    return tally


def check_capture(
    spec: SourceSpec, capture_ref: Any, update: bool = False, fixtures_root: Path | None = None
) -> FieldTally:
    """One capture against its expected output; each problem names ``source/capture:field``."""
    tally = FieldTally()
    items = _items_by_key(spec, capture_ref, fixtures_root)
    if not items:
        return tally
    where = f"{spec.id}/{Path(capture_ref.fixture).name}"
    path = expected_path(spec, capture_ref.fixture)
    stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if update:
        keys = list(stored["records"]) if stored else list(items)[:NEW_FILE_RECORDS]
        records = {k: expected_fields(items[k]) for k in keys if k in items}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "source": spec.id,
                    "capture": capture_ref.fixture,
                    "url": load_capture(capture_ref.fixture, capture_ref.url, fixtures_root).url,
                    "records": records,
                },
                ensure_ascii=False,
                indent=2,
                sort_keys=True,
            )
            + "\n",
            encoding="utf-8",
        )
        stored = json.loads(path.read_text(encoding="utf-8"))
    if stored is None:
        tally.problems.append(f"{where}: no expected output ({path.relative_to(PROJECT_ROOT)})")
        return tally
    for key, expected in stored["records"].items():
        got = expected_fields(items[key]) if key in items else {}
        if key not in items:
            tally.problems.append(f"{where}: record {key} no longer extracted")
        for name in sorted(set(expected) | set(got)):
            if name not in got:
                tally.missing[name] += 1
                tally.problems.append(f"{where}:{name}: missing in {key}, expected {_short(expected.get(name))}")
            elif name not in expected or got[name] != expected[name]:
                tally.wrong[name] += 1
                tally.problems.append(
                    f"{where}:{name}: {key} = {_short(got.get(name))}, expected {_short(expected.get(name))}"
                )
            else:
                tally.right[name] += 1
    return tally


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
