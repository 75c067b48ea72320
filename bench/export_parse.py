"""Export parsing speed and memory: the ``export`` kind's reader + field mapping on the largest
recorded export (GEF, 5,892 rows), against plain ``csv.DictReader`` on the same bytes in the same run.

    python -m bench.export_parse [--repeat 5] [--rows 100000]

``--rows`` also measures a synthetic export of that many rows built by repeating the real file's
rows with fresh IDs, to show memory stays flat while streaming. Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable

from harvester.extraction.item import extract_item
from harvester.extraction.records import record_identity
from harvester.extraction.structured import iter_export
from harvester.items import CandidateItem
from harvester.recordings.fixtures import load_capture
from harvester.registry import load_registry


def harvester_rows(body: bytes) -> int:
    spec = load_registry()["gef_projects"]
    assert spec.export is not None
    count = 0
    for row in iter_export(body, spec.export):
        key, url = record_identity(row, spec.record, spec.start_urls[0])
        extract_item(CandidateItem("gef_projects", url, spec.start_urls[0], record_key=key, raw=row), spec)
        count += 1
    return count


def baseline_rows(body: bytes) -> int:
    return sum(1 for _ in csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def measure(fn: Callable[[bytes], int], body: bytes, repeat: int) -> tuple[float, int, float]:
    times, rows = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows = fn(body)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn(body)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), rows, peak / 2**20


def synthetic(body: bytes, rows: int) -> bytes:
    """The real rows repeated with new IDs up to ``rows`` rows (realistic cells, bigger file)."""
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
    original = list(reader)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [])
    writer.writeheader()
    for i in range(rows):
        row = dict(original[i % len(original)])
        row["ID"] = str(100000 + i)
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    body = load_capture("gef/dump-gef-project-database-export.csv").body
    results = {}
    print(f"{'case':40} {'rows':>8} {'median s':>9} {'rows/s':>9} {'peak MiB':>9}")
    cases = [
        ("gef export: csv.DictReader (baseline)", baseline_rows, body),
        ("gef export: export kind + field mapping", harvester_rows, body),
    ]
    if args.rows:
        big = synthetic(body, args.rows)
        cases.append((f"synthetic {args.rows} rows: export kind", harvester_rows, big))
    for name, fn, data in cases:
        seconds, rows, peak = measure(fn, data, args.repeat if len(data) < 10_000_000 else 1)
        results[name] = {
            "rows": rows,
            "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds),
            "peak_mib": round(peak, 1),
            "body_mib": round(len(data) / 2**20, 1),
        }
        print(f"{name:40} {rows:>8} {seconds:>9.3f} {rows / seconds:>9.0f} {peak:>9.1f}")
    base = results["gef export: csv.DictReader (baseline)"]["rows_per_s"]
    ours = results["gef export: export kind + field mapping"]["rows_per_s"]
    results["ratio_vs_baseline"] = round(ours / base, 3)
    results["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"export kind runs at {ours / base:.2%} of plain csv.DictReader speed")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
