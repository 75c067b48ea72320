"""harvester.crawl.memory_trim: freed heap memory goes back to the operating system during a crawl."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from harvester.crawl.memory_trim import MallocTrimExtension, malloc_trim

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux-only")


def test_trimming_hands_back_the_free_holes_of_a_fragmented_heap() -> None:
    # in a fresh interpreter: 3,000 chunks of 60 KB (below glibc's mmap threshold, so on the heap), every
    # other one freed: the holes stay resident until trimmed
    script = textwrap.dedent("""
        import os
        from harvester.crawl.memory_trim import malloc_trim
        page = os.sysconf("SC_PAGE_SIZE")
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * page // 2**20
        chunks = [bytearray(60_000) for _ in range(3000)]
        del chunks[::2]
        before = rss()
        released = malloc_trim()
        print(before, rss(), released)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    ).stdout.split()
    before, after, released = int(out[0]), int(out[1]), out[2]
    assert released == "True"
    assert before - after >= 60  # about half of the 180 MB was free holes


def test_the_extension_trims_on_its_timer_and_counts_it() -> None:
    crawler = get_crawler(settings_dict={"HARVESTER_MALLOC_TRIM_SECONDS": 5})
    ext = MallocTrimExtension.from_crawler(crawler)
    assert ext.interval == 5
    assert crawler.stats is not None
    ext.trim()
    ext.trim()
    assert crawler.stats.get_value("harvester/malloc_trim/runs") == 2
    assert isinstance(malloc_trim(), bool)


def test_the_extension_is_off_at_zero_seconds() -> None:
    with pytest.raises(NotConfigured):
        MallocTrimExtension.from_crawler(get_crawler(settings_dict={"HARVESTER_MALLOC_TRIM_SECONDS": 0}))
