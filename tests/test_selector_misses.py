"""Selectors that match nothing are reported in the run's stats and the log, not silently replaced by a
fallback: the real ELSA pages crawled with a drifted title selector."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from harvester.recordings.replay_build import build_replay
from harvester.registry import load_registry
from harvester.settings import PROJECT_ROOT, get_settings
from storage.db import session_factory, upgrade
from storage.models import CrawlRun
from tests.conftest import run_crawl

pytestmark = pytest.mark.slow


def test_a_selector_that_matches_nothing_is_counted_and_logged(
    harvester_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay = get_settings().replay_cache_dir
    build_replay([load_registry()["elsa_undp"]], replay)
    upgrade()
    registry = tmp_path / "sources"
    shutil.copytree(PROJECT_ROOT / "harvester" / "sources", registry)
    entry = yaml.safe_load((registry / "elsa_undp.yaml").read_text())
    entry["selectors"]["title"] = "main h1.page-title::text"  # the site's markup moved on
    (registry / "elsa_undp.yaml").write_text(yaml.safe_dump(entry, allow_unicode=True))
    monkeypatch.setenv("HARVESTER_REGISTRY_DIR", str(registry))
    drifted = run_crawl("elsa_undp", replay=replay)
    assert drifted.returncode == 0, drifted.stderr[-2000:]

    with session_factory()() as session:
        [stats] = session.scalars(select(CrawlRun.stats)).all()
    assert stats["new"] == 3
    assert stats["selector_missed"] == {"title": 3}  # the text selector matched on every page
    assert "elsa_undp: the selector of title matched nothing on 3 of 3 record pages" in drifted.stderr
