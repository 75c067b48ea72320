"""The crawl's scheduler: Scrapy's own, with its request queue on disk in a folder of its own.

A sitemap lists up to 50,000 URLs and its spider yields them at once; kept in memory as ``Request``
objects they took about 100 MB at 30,000 URLs. Scrapy puts its queue on disk only under ``JOBDIR``,
which also resumes a killed crawl with the requests that were in flight counted as seen (never fetched
again). Here the folder is new for every crawl and removed when it closes, so nothing carries over;
requests that cannot be pickled stay in memory, as under ``JOBDIR``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scrapy.core.scheduler import Scheduler

from storage.runs import pid_alive


def remove_orphaned_queues(root: Path) -> None:
    """Queue folders of crawl processes that are gone (killed): named ``<pid>-…``."""
    for folder in root.glob("*-*"):
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class DiskQueueScheduler(Scheduler):
    queue_dir: str | None = None

    def _dqdir(self, jobdir: str | None) -> str | None:
        if jobdir:
            return super()._dqdir(jobdir)
        from harvester.settings import get_settings

        root = get_settings().data_dir / "queues"
        root.mkdir(parents=True, exist_ok=True)
        remove_orphaned_queues(root)
        self.queue_dir = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)
        return self.queue_dir

    def close(self, reason: str) -> Any:
        result = super().close(reason)
        if self.queue_dir is not None:
            shutil.rmtree(self.queue_dir, ignore_errors=True)
        return result
