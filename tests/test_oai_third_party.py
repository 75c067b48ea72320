"""The ``oai`` kind against a data provider nobody here wrote: pyoai's ``oaipmh.server`` on 127.0.0.1
(tests/oai_provider.py) serving records generated here, compared record by record with what the
reference harvester Sickle reads from the same server.

Cases: no ``from`` (the repository's earliestDatestamp, records stamped before 2000 included); records
without dc:title counted by reason; records sharing a landing page kept apart; a resumption chain broken
mid-window, a record changed before the rerun (nothing may be marked gone, ``harvester crawl`` exits
non-zero); an incremental run that reads only what came after the last window; a deletion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from harvester.settings import PROJECT_ROOT
from storage.db import session_factory
from storage.models import Candidate, CrawlRun

pytestmark = pytest.mark.slow
pytest.importorskip("oaipmh.server", reason="pyoai (the third-party OAI-PMH data provider) is not installed")
sickle = pytest.importorskip("sickle", reason="Sickle (the reference OAI-PMH harvester) is not installed")

SOURCE = "third_party_oai"
NO_TITLE = "OAI record without dc:title"
SHARED_LINK = "https://repo.example.org/item/shared"


def generated_records(count: int = 64) -> list[dict[str, Any]]:
    """Records from 1991 on, every 9th without a title, three sharing one landing page, three deleted."""
    records = []
    for n in range(count):
        stamp = datetime(1991, 1, 1) + timedelta(days=190 * n, hours=n % 24)
        record: dict[str, Any] = {
            "identifier": f"oai:repo.example.org:{n:04d}",
            "datestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "deleted": n in (5, 33, 50),
        }
        if not record["deleted"]:
            link = SHARED_LINK if n in (19, 20, 21) else f"https://repo.example.org/item/{n}"
            record["dc"] = {
                "title": [] if n % 9 == 4 else [f"Seed exchange network {n}"],
                "identifier": [link],
                "description": [f"Community seed bank {n} trains farmers to exchange varieties across borders."],
                "subject": ["agrobiodiversity"],
                "date": [stamp.strftime("%Y-%m-%d")],
            }
        records.append(record)
    return records


class Provider:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records_path, self.faults_path = folder / "records.json", folder / "faults.json"
        self.records: list[dict[str, Any]] = []

    def publish(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.records_path.write_text(json.dumps(records), "utf-8")

    def faults(self, **faults: Any) -> None:
        self.faults_path.write_text(json.dumps(faults), "utf-8")

    def requests(self) -> list[str]:
        log = self.folder / "requests.log"
        return log.read_text("utf-8").splitlines() if log.exists() else []

    def clear_requests(self) -> None:
        (self.folder / "requests.log").unlink(missing_ok=True)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[tuple[Provider, str]]:
    folder = tmp_path / "provider"
    folder.mkdir()
    prov = Provider(folder)
    prov.publish(generated_records())
    prov.faults()
    port_file = folder / "port"
    with (folder / "provider.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.oai_provider", str(prov.records_path), str(prov.faults_path), str(port_file)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"pyoai provider did not start: {(folder / 'provider.log').read_text()[-2000:]}")
        yield prov, f"http://127.0.0.1:{port_file.read_text()}/oai"
    finally:
        process.terminate()
        process.wait(timeout=10)


def write_source(registry: Path, base_url: str) -> None:
    (registry / f"{SOURCE}.yaml").write_text(
        textwrap.dedent(f"""\
        id: {SOURCE}
        name: pyoai test repository
        kind: oai
        start_urls: ["{base_url}"]
        verified: false
        verification: "local pyoai data provider"
        politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 1}}
        oai: {{metadata_prefix: oai_dc, window_days: 4000}}
        """),
        encoding="utf-8",
    )


def harvester_crawl(registry: Path) -> subprocess.CompletedProcess[str]:
    """``harvester crawl SOURCE`` as an operator runs it."""
    env = {**os.environ, "HARVESTER_REGISTRY_DIR": str(registry), "HARVESTER_ALLOW_PRIVATE_HOSTS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harvester", "crawl", SOURCE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=PROJECT_ROOT,
    )


def sickle_records(base_url: str) -> dict[str, dict[str, Any]]:
    """The reference: every record Sickle harvests from the repository's earliestDatestamp on."""
    client = sickle.Sickle(base_url, max_retries=0)
    earliest = client.Identify().earliestDatestamp
    out = {}
    for record in client.ListRecords(metadataPrefix="oai_dc", ignore_deleted=False, **{"from": earliest}):
        fields = getattr(record, "metadata", None) or {}  # a deleted record has none
        out[record.header.identifier] = {
            "deleted": record.header.deleted,
            "title": fields.get("title", [None])[0],
            "links": fields.get("identifier", []),
        }
    return out


def stored() -> dict[str, Candidate]:
    with session_factory()() as session:
        return {c.record_key: c for c in session.scalars(select(Candidate).where(Candidate.source_id == SOURCE))}


def runs() -> list[CrawlRun]:
    with session_factory()() as session:
        return list(session.scalars(select(CrawlRun).where(CrawlRun.source_id == SOURCE).order_by(CrawlRun.id)))


def expected_live(reference: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {i: r["title"] for i, r in reference.items() if not r["deleted"] and r["title"]}


def test_first_harvest_matches_sickle_record_by_record(registry: Path, provider: tuple[Provider, str]) -> None:
    prov, base_url = provider
    write_source(registry, base_url)
    result = harvester_crawl(registry)
    assert result.returncode == 0, result.stderr[-2000:]
    asked = [p for p in prov.requests() if p.startswith("/oai")]

    reference = sickle_records(base_url)
    assert len(reference) == 64
    live = expected_live(reference)
    untitled = [i for i, r in reference.items() if not r["deleted"] and not r["title"]]
    got = stored()
    assert {k: c.title for k, c in got.items()} == live, "no record lost, none merged, none extra"
    assert len(untitled) == 7
    assert not any(c.gone_at_source for c in got.values())
    before_2000 = {r["identifier"] for r in prov.records if r["datestamp"] < "2000" and r["identifier"] in live}
    assert len(before_2000) == 15 and before_2000 <= got.keys(), "records stamped before 2000 are harvested"
    shared = sorted(k for k, c in got.items() if c.url == SHARED_LINK)
    assert shared == ["oai:repo.example.org:0019", "oai:repo.example.org:0020", "oai:repo.example.org:0021"]

    [run] = runs()
    assert run.status == "finished" and run.stats["incomplete"] is None
    assert run.stats["skipped"] == {NO_TITLE: 7}, "every record left out is counted with its reason"
    assert run.stats["new"] == len(live) and run.stats["updated"] == 0
    assert asked[0] == "/oai?verb=Identify"
    assert "from=1990-01-01T00%3A00%3A00Z" in asked[1], "the first window starts at earliestDatestamp"

    env = {**os.environ, "HARVESTER_REGISTRY_DIR": str(registry)}
    table = subprocess.run(
        [sys.executable, "-m", "harvester", "runs", "--source", SOURCE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=PROJECT_ROOT,
    ).stdout
    assert f"7 {NO_TITLE}" in table


def test_broken_chain_and_a_changed_record_mark_nothing_gone(registry: Path, provider: tuple[Provider, str]) -> None:
    prov, base_url = provider
    write_source(registry, base_url)
    prov.faults(fail_tokens=True)  # every resumption request fails: the chain breaks after the first page
    broken = harvester_crawl(registry)
    assert broken.returncode != 0, "a broken chain is not a successful crawl"
    assert "windows unfinished" in broken.stderr
    first_page = stored()
    assert len(first_page) == 8  # the first 10 records of the first window: one deleted, one without a title

    # Before the rerun a record of that page changes: it gets a new datestamp and leaves the window, so
    # every later record of the window moves up one place in the resumption list.
    records = generated_records()
    records[2]["dc"]["title"] = ["Seed exchange network 2 (revised)"]
    records[2]["datestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    prov.publish(records)
    prov.faults()
    healed = harvester_crawl(registry)
    assert healed.returncode == 0, healed.stderr[-2000:]

    got = stored()
    assert {k: c.title for k, c in got.items()} == expected_live(sickle_records(base_url))
    assert got["oai:repo.example.org:0002"].title == "Seed exchange network 2 (revised)"
    assert [k for k, c in got.items() if c.gone_at_source] == [], "nothing the partner still has is gone"
    assert [r.stats["gone"] for r in runs()] == [0, 0]
    assert [r.stats["incomplete"] is not None for r in runs()] == [True, False]


def test_incremental_run_reads_only_what_came_after_and_applies_deletions(
    registry: Path, provider: tuple[Provider, str]
) -> None:
    prov, base_url = provider
    write_source(registry, base_url)
    assert harvester_crawl(registry).returncode == 0
    full = len([p for p in prov.requests() if "verb=ListRecords" in p])
    time.sleep(1.5)  # the new datestamps come after the first run's "now"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = generated_records()
    records[7] = {"identifier": records[7]["identifier"], "datestamp": stamp, "deleted": True}
    records.append(
        {
            "identifier": "oai:repo.example.org:9000",
            "datestamp": stamp,
            "dc": {
                "title": ["Pollinator corridors"],
                "identifier": ["https://repo.example.org/item/9000"],
                "description": ["Hedgerows connect habitats across the border region."],
            },
        }
    )
    prov.publish(records)
    prov.clear_requests()
    time.sleep(1.5)

    assert harvester_crawl(registry).returncode == 0
    asked = prov.requests()
    assert [p for p in asked if "verb=Identify" in p] == []
    assert len([p for p in asked if "verb=ListRecords" in p]) == 1 < full, asked
    got = stored()
    assert got["oai:repo.example.org:9000"].title == "Pollinator corridors"
    assert [k for k, c in got.items() if c.gone_at_source] == ["oai:repo.example.org:0007"]
    assert {k: c.title for k, c in got.items() if not c.gone_at_source} == expected_live(sickle_records(base_url))
