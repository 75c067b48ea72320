"""The SSRF guard: crawls reach only public http(s) addresses, on every request and redirect hop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from harvester.crawl.ssrf import BlockedAddress, blocked_reason, check_url
from storage.db import session_factory, upgrade
from storage.models import CrawlRun, FetchedPage
from tests.conftest import run_crawl
from tests.recorded_server import RecordedServer


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://localhost/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://100.64.0.1/",
        "file:///etc/passwd",
        "ftp://example.org/",
    ],
)
def test_non_public_targets_are_blocked(url: str) -> None:
    with pytest.raises(BlockedAddress, match="blocked: ssrf"):
        check_url(url)


def test_public_addresses_pass() -> None:
    assert blocked_reason("93.184.216.34") is None
    assert blocked_reason("2606:4700::6810:85e5") is None
    assert blocked_reason("172.16.5.4") == "private"


@pytest.mark.slow
def test_a_crawl_never_connects_to_a_loopback_source(harvester_env: Path, tmp_path: Path) -> None:
    with RecordedServer(lambda path: (200, {"Content-Type": "application/json"}, b"[]")) as canary:
        registry = tmp_path / "sources"
        registry.mkdir()
        (registry / "internal_probe.yaml").write_text(
            "id: internal_probe\nname: probe\nkind: api\nverified: false\nverification: test\n"
            f'start_urls: ["{canary.url}/api"]\n',
            encoding="utf-8",
        )
        upgrade()
        result = run_crawl(
            "internal_probe", env={"HARVESTER_REGISTRY_DIR": str(registry), "HARVESTER_ALLOW_PRIVATE_HOSTS": "0"}
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert canary.requests == []
    with session_factory()() as session:
        run = session.scalars(select(CrawlRun)).one()
        page = session.scalars(select(FetchedPage)).one()
    assert run.stats["errors"] == 1
    assert "blocked: ssrf" in (page.error or "")
