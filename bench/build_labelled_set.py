"""Build a labelled CBD-relevance set from the recorded public captures, for ``harvester classify eval``.

    python -m bench.build_labelled_set [--out FILE] [--gef-relevant N] [--seed S]

Written at run time into the cache (default ``<HARVESTER_DATA_DIR>/cache/labelled/cbd-relevance.jsonl``,
never committed); the captures are read from the shared fixtures folder, never copied. Labels come
from each publisher's own thematic tagging, which is not part of the text given to the rankers:

- GEF Project Database export (``gef/dump-gef-project-database-export.csv``): title only (the
  export has no description), one row per distinct title (generic titles such as "Minamata Initial
  Assessment" repeat for dozens of countries and would sit on both sides of a cross-validation
  fold). Relevant: ``Focal Areas`` includes Biodiversity (a seeded sample of ``--gef-relevant``
  rows); irrelevant: every row whose focal areas are Chemicals and Waste only.
- Climate-ADAPT case-study export (``climate-adapt/dump-case-studies-search-export.csv.gz``):
  title + description (EU banner removed; the keyword and sector columns are not used). Relevant:
  ``Sectors`` includes "Biodiversity protection"; irrelevant: every other case study.
- AdapteCCA case-study feed (``climate-adapt/feed-adaptecca-cases-en-2019.xml``): title + the
  free-text fields (HTML stripped). Relevant: ``field_sectors`` includes Biodiversity; items
  without sectors are left out, and so are items that are near-duplicates of a Climate-ADAPT case
  study (``harvester.classify.duplicates``), so one case cannot sit on both sides of a fold.

Languages are detected (seeded langdetect; English, the sites' page language, when the text is
too short). Records are shuffled with ``--seed`` so ties keep no
source order. Prints the composition; the last line is JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from harvester.classify.duplicates import DupRecord, clusters, normalise_words
from harvester.language import detect_language
from harvester.recordings.fixtures import load_capture
from harvester.settings import get_settings

GEF = "gef/dump-gef-project-database-export.csv"
CLIMATE_ADAPT = "climate-adapt/dump-case-studies-search-export.csv.gz"
ADAPTECCA = "climate-adapt/feed-adaptecca-cases-en-2019.xml"
EU_BANNER = re.compile(
    r"^All official European Union website addresses are in the europa\.eu domain\.\s*"
    r"See all EU institutions and bodies\s*"
)
ADAPTECCA_TEXT = (
    "field_information",
    "field_challenges",
    "field_objectives",
    "field_solutions",
    "field_measures",
    "field_adaptation",
    "field_stakeholder",
    "field_implementation",
)


def default_path() -> Path:
    return get_settings().data_dir / "cache" / "labelled" / "cbd-relevance.jsonl"


def gef_records(n_relevant: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = list(csv.DictReader(io.StringIO(load_capture(GEF).body.decode("utf-8-sig"))))
    relevant, irrelevant = [], []
    seen: set[str] = set()
    for row in rows:
        areas = {a.strip() for a in row["Focal Areas"].split(",") if a.strip()}
        title = re.sub(r"^Project Title:\s*", "", row["Title"]).strip()
        key = " ".join(normalise_words(title))
        if key in seen:  # one row per title: repeated titles on both sides of a fold would flatter the model
            continue
        seen.add(key)
        record = {
            "id": f"gef:{row['ID']}",
            "title": title,
            "text": "",
            "url": f"https://www.thegef.org/projects-operations/projects/{row['ID']}",
            "source": "gef",
        }
        if "Biodiversity" in areas:
            relevant.append({**record, "label": 1})
        elif areas == {"Chemicals and Waste"}:
            irrelevant.append({**record, "label": 0})
    return rng.sample(relevant, min(n_relevant, len(relevant))) + irrelevant


def climate_adapt_records() -> list[dict[str, Any]]:
    rows = csv.DictReader(io.StringIO(load_capture(CLIMATE_ADAPT).body.decode("utf-8-sig")))
    out = []
    for row in rows:
        sectors = {s.strip() for s in row["Sectors"].split(",")}
        out.append(
            {
                "id": f"climate-adapt:{row['About'].rstrip('/').rsplit('/', 1)[-1]}",
                "title": row["Title"].strip(),
                "text": EU_BANNER.sub("", row["Description"]).strip(),
                "url": row["About"],
                "label": int("Biodiversity protection" in sectors),
                "source": "climate-adapt",
            }
        )
    return out


def _html_text(fragment: str) -> str:
    if not fragment.strip():
        return ""
    return " ".join(lxml_html.fromstring(f"<div>{fragment}</div>").text_content().split())


def adaptecca_records() -> list[dict[str, Any]]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(load_capture(ADAPTECCA).body, parser)
    out = []
    for item in root.iter("item"):

        def field(name: str, item: Any = item) -> str:
            return (item.findtext(name) or "").strip()

        sectors = {s.strip().lower() for s in field("field_sectors").split(",") if s.strip()}
        if not sectors:
            continue
        text = "\n".join(t for t in (_html_text(field(n)) for n in ADAPTECCA_TEXT) if t)
        out.append(
            {
                "id": f"adaptecca:{field('item_id')}",
                "title": field("field_title"),
                "text": text,
                "label": int("biodiversity" in sectors),
                "source": "adaptecca",
            }
        )
    return out


def without_duplicates(keep: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``extra`` records that are not near-duplicates of a ``keep`` record."""
    records = [DupRecord(r["id"], r["source"], r.get("url"), r["title"], (), (), r["text"]) for r in keep + extra]
    clustered = clusters(records)
    kept_clusters = {clustered[r["id"]] for r in keep if r["id"] in clustered}
    return [r for r in extra if clustered.get(r["id"]) not in kept_clusters]


def build(n_gef_relevant: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cases = climate_adapt_records()
    records = gef_records(n_gef_relevant, rng) + cases + without_duplicates(cases, adaptecca_records())
    for r in records:
        # the exports' pages are English: that is the fallback for text too short to detect, as in a crawl
        r["lang"] = detect_language(f"{r['title']}\n{r['text'][:2000]}", seed=0, fallback="en").code or "und"
    rng.shuffle(records)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="JSONL file to write (default: in the cache)")
    parser.add_argument("--gef-relevant", type=int, default=200, help="GEF Biodiversity rows to sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = args.out or default_path()
    records = build(args.gef_relevant, args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(
                json.dumps(
                    {k: r[k] for k in ("id", "title", "text", "url", "label", "lang") if k in r}, ensure_ascii=False
                )
                + "\n"
            )
    composition = Counter((r["source"], r["label"]) for r in records)
    print(f"{'source':16} {'relevant':>9} {'irrelevant':>11}")
    for source in ("gef", "climate-adapt", "adaptecca"):
        print(f"{source:16} {composition[(source, 1)]:>9} {composition[(source, 0)]:>11}")
    languages = Counter(r["lang"] for r in records)
    print(f"wrote {len(records)} records to {out}; languages: {dict(languages.most_common())}")
    print(
        json.dumps(
            {
                "path": str(out),
                "n": len(records),
                "n_relevant": sum(r["label"] for r in records),
                "by_source": {f"{s}:{label}": n for (s, label), n in sorted(composition.items())},
                "languages": dict(languages.most_common()),
            }
        )
    )


if __name__ == "__main__":
    main()
