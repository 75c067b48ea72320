"""Run crawls. Every crawl runs in a child process (Scrapy's reactor cannot restart in-process);
the parent reads the outcome from the run rows the child wrote."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scrapy.settings import Settings

REPLAY_HANDLER = "harvester.replay.ReplayDownloadHandler"


@dataclass(frozen=True)
class CrawlOptions:
    replay_dir: Path | None = None
    record_dir: Path | None = None
    trigger: str = "cli"
    log_level: str = "WARNING"
    progress: bool = True


def crawl_settings(options: CrawlOptions) -> Settings:
    settings = Settings()
    settings.setmodule("harvester.crawl_settings", priority="project")
    over: dict[str, Any] = {"HARVESTER_TRIGGER": options.trigger, "LOG_LEVEL": options.log_level,
                            "HARVESTER_PROGRESS": options.progress}
    if options.replay_dir:
        over |= {
            "HARVESTER_REPLAY_DIR": str(options.replay_dir),
            "DOWNLOAD_HANDLERS": {"http": REPLAY_HANDLER, "https": REPLAY_HANDLER,
                                  "file": None, "data": None, "ftp": None, "s3": None},
            "DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
            "RETRY_ENABLED": False,
        }
    if options.record_dir:
        over["HARVESTER_RECORD_DIR"] = str(options.record_dir)
    if os.environ.get("HARVESTER_ALLOW_PRIVATE_HOSTS", "").lower() in ("1", "true", "yes"):
        over["HARVESTER_ALLOW_PRIVATE_HOSTS"] = True
    settings.setdict(over, priority="cmdline")
    return settings


def run_in_this_process(source_ids: list[str], options: CrawlOptions) -> None:
    from scrapy.crawler import CrawlerProcess

    from harvester.registry import get_source, load_registry
    from harvester.spider_loader import spider_class_for

    registry = load_registry()
    process = CrawlerProcess(crawl_settings(options))
    for source_id in source_ids:
        process.crawl(spider_class_for(get_source(source_id, registry)))
    process.start()


def run_crawls(source_ids: list[str], options: CrawlOptions) -> int:
    """Crawl the sources (concurrently, one child process) and return the child's exit code."""
    cmd = [sys.executable, "-m", "harvester.crawl", "--trigger", options.trigger, "--log-level", options.log_level]
    if options.replay_dir:
        cmd += ["--replay", str(options.replay_dir)]
    if options.record_dir:
        cmd += ["--record", str(options.record_dir)]
    if not options.progress:
        cmd.append("--quiet")
    env = {**os.environ}
    return subprocess.run([*cmd, *source_ids], env=env, check=False).returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run harvester crawls in this process (used by the CLI).")
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--record", type=Path)
    parser.add_argument("--trigger", default="cli")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    run_in_this_process(args.sources, CrawlOptions(args.replay, args.record, args.trigger, args.log_level,
                                                   not args.quiet))


if __name__ == "__main__":
    main()
