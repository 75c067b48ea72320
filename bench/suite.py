"""The benchmark suite: ``python -m bench.suite`` prints the machine, a table and a final JSON line.

It serves a generated partner site (``bench.site``: recorded pages under thousands of URLs, sitemap,
listings, feed) on 127.0.0.1 and measures, each ``--repeat`` times with medians:

- pages/s of a full crawl through every stage into SQLite, with the CPU stages in a process pool and
  in-line, against two baselines in the same run: plain Scrapy fetching the same sitemap with no
  processing, and trafilatura's own command-line harvester on the same sitemap (``--sitemap``, same
  download parallelism, its per-host sleep set to 0 like our crawl's delay); each with the cores the
  machine kept busy meanwhile and its CPU per page;
- an unchanged re-crawl's time as a fraction of the first crawl (sitemap ``lastmod``, and a listing
  site re-crawled with conditional requests);
- each stage's cost per page, in one process;
- the DB upsert rate (one transaction per candidate, as the store stage writes) in SQLite and, with
  ``--postgres-url``, PostgreSQL;
- with ``--redis-url`` and ``--postgres-url``: 1 vs 2 workers of one distributed crawl;
- peak memory (summed PSS of the crawl process and its stage workers) crawling ``--memory-pages`` pages,
  overall and per tenth of the pages (flat or growing).

Other processes on the machine make the figures noisy; compare rows of one run, not runs. The machine line
gives ``two_process_speedup``: how many cores' worth two busy processes get here (2.0 on two free cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.site import PartnerSite, load_templates
from harvester.settings import PROJECT_ROOT, get_settings

SOURCE = "bench_site"


def two_process_speedup(loops: int = 20_000_000) -> float:
    """How many cores' worth two busy processes get: 2.0 on two free cores, less where the cores are shared
    (hyper-threads, other tenants of the host). The pipeline needs both cores, trafilatura's harvester one,
    so their ratio depends on it."""
    cmd = [sys.executable, "-c", f"for _ in range({loops}): pass"]

    def wall(processes: int) -> float:
        start = time.perf_counter()
        for proc in [subprocess.Popen(cmd) for _ in range(processes)]:
            proc.wait()
        return time.perf_counter() - start

    return round(2 * min(wall(1) for _ in range(2)) / min(wall(2) for _ in range(2)), 2)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "two_process_speedup": two_process_speedup(),
        "python": platform.python_version(),
        "os": platform.platform(),
        **{name: version(name) for name in ("scrapy", "trafilatura", "scrapy-redis", "sqlalchemy", "lxml")},
    }


def source_yaml(kind: str, site_url: str, revisit_days: float | None = None) -> str:
    head = textwrap.dedent(f"""\
        id: {SOURCE}
        name: Generated partner site
        verified: false
        verification: "benchmark site"
        politeness: {{download_delay: 0, autothrottle: false, concurrent_requests_per_host: 8}}
        """)
    if kind == "sitemap":
        return head + f'kind: sitemap\nstart_urls: ["{site_url}/sitemap.xml"]\n'
    listing: dict[str, Any] = {
        "item_links": "a.record::attr(href)",
        "next_page": "a[rel=next]::attr(href)",
        "max_pages": 100_000,
    }
    if revisit_days:
        listing["revisit_days"] = revisit_days
    return head + (
        f'kind: listing\nstart_urls: ["{site_url}/list/0.html"]\nlisting: {json.dumps(listing)}\n'
        f"selectors: {json.dumps({'title': 'title::text'})}\n"
    )


class Workspace:
    """A fresh data dir, registry and database for one measured crawl."""

    def __init__(
        self,
        root: Path,
        kind: str,
        site_url: str,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        revisit_days: float | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(dir=root))
        (self.dir / "registry").mkdir()
        (self.dir / "registry" / f"{SOURCE}.yaml").write_text(
            source_yaml(kind, site_url, revisit_days), encoding="utf-8"
        )
        self.env = {
            **os.environ,
            "HARVESTER_DATA_DIR": str(self.dir / "var"),
            "HARVESTER_REGISTRY_DIR": str(self.dir / "registry"),
            "HARVESTER_ALLOW_PRIVATE_HOSTS": "1",
            **(extra_env or {}),
        }
        if database_url:
            self.env["HARVESTER_DATABASE_URL"] = database_url
        else:
            self.env.pop("HARVESTER_DATABASE_URL", None)
        self.env.pop("HARVESTER_REDIS_URL", None) if "HARVESTER_REDIS_URL" not in (extra_env or {}) else None
        subprocess.run(
            [sys.executable, "-m", "harvester", "db", "upgrade"],
            env=self.env,
            check=True,
            cwd=PROJECT_ROOT,
            capture_output=True,
        )

    def crawl(self, workers: int = 1, sampler: MemorySampler | None = None) -> float:
        """Wall seconds of one crawl by ``workers`` processes; ``sampler`` follows the first one's memory."""
        cmd = [sys.executable, "-m", "harvester.crawl", "--quiet", SOURCE]
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                cmd, env=self.env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            for _ in range(workers)
        ]
        if sampler is not None:
            sampler.start(procs[0].pid)
        try:
            for proc in procs:
                _, err = proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"crawl failed: {err[-2000:]}")
        finally:
            if sampler is not None:
                sampler.stop()
        return time.perf_counter() - start

    def last_run_stats(self) -> dict[str, Any]:
        code = (
            "import json; from storage.db import session_factory; from storage.runs import list_runs;"
            "s = session_factory()(); print(json.dumps(list_runs(s, limit=1)[0].stats))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True
        ).stdout
        return dict(json.loads(out))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class MemorySampler:
    """Samples the memory of a process and its descendants every 0.2 s: the peak, and the peak within each
    tenth of the pages served (``served``: the site's request count), to show whether memory stays flat.

    Summed PSS (proportional set size): the stage workers are forked from one forkserver and share its
    pages, which a sum of RSS would count once per process. With ``report_every`` seconds, prints a
    progress line (a 100,000-page run takes hours on a small machine)."""

    def __init__(self, served: Callable[[], int], pages: int, report_every: float = 0) -> None:
        self.served, self.pages, self.report_every = served, pages, report_every
        self.peak, self.running = 0, False
        self.by_tenth: list[int] = [0] * 10
        self.thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self.running = True
        self.thread = threading.Thread(target=self._loop, args=(pid,), daemon=True)
        self.thread.start()

    def _tree(self, pid: int) -> list[int]:
        out = [pid]
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in task.read_text().split():
                out += self._tree(int(child))
        return out

    def _pss(self, pid: int) -> int:
        total = 0
        try:
            for proc in self._tree(pid):
                for line in Path(f"/proc/{proc}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            pass
        return total

    def _loop(self, pid: int) -> None:
        began = last_report = time.monotonic()
        while self.running:
            pss, served = self._pss(pid), self.served()
            self.peak = max(self.peak, pss)
            tenth = min(9, served * 10 // max(1, self.pages))
            self.by_tenth[tenth] = max(self.by_tenth[tenth], pss)
            if self.report_every and time.monotonic() - last_report >= self.report_every:
                last_report = time.monotonic()
                print(
                    f"  memory run: {last_report - began:.0f} s, {served:,} requests served, PSS "
                    f"{pss / 2**20:.0f} MB (peak {self.peak / 2**20:.0f} MB)",
                    flush=True,
                )
            time.sleep(0.2)

    def stop(self) -> int:
        self.running = False
        if self.thread is not None:
            self.thread.join()
        return self.peak


def median_of(repeat: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeat))


def busy_seconds() -> float:
    """CPU seconds this machine has been busy since boot, every process counted (``/proc/stat``: user, nice,
    system, irq and softirq time of all cores)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Timing:
    """Wall seconds of a measured run and the CPU seconds the whole machine was busy meanwhile: the crawler's
    processes and the generated site serving it on 127.0.0.1 (the same pages for every row)."""

    wall: float
    busy: float

    @staticmethod
    def median(runs: list[Timing]) -> Timing:
        return Timing(statistics.median(t.wall for t in runs), statistics.median(t.busy for t in runs))

    def cpu_note(self, pages: int) -> str:
        return f"{self.busy / self.wall:.2f} cores busy, {1000 * self.busy / pages:.0f} ms CPU per page"


def timed(run: Callable[[], object]) -> Timing:
    busy, start = busy_seconds(), time.perf_counter()
    run()
    return Timing(time.perf_counter() - start, busy_seconds() - busy)


def full_crawl(root: Path, site: PartnerSite, pool: str, repeat: int) -> tuple[Timing, float]:
    """The median first crawl and the median seconds of the unchanged re-crawl after it (sitemap, SQLite)."""
    firsts: list[Timing] = []
    seconds = []
    for _ in range(repeat):
        ws = Workspace(root, "sitemap", site.url, extra_env={"HARVESTER_STAGE_POOL": pool})
        firsts.append(timed(ws.crawl))
        stats = ws.last_run_stats()
        if stats.get("new") != site.pages:
            raise RuntimeError(f"crawl stored {stats.get('new')} of {site.pages} pages: {stats}")
        seconds.append(ws.crawl())
        ws.remove()
    return Timing.median(firsts), statistics.median(seconds)


def listing_recrawl(
    root: Path, site: PartnerSite, repeat: int, revisit_days: float | None = None
) -> tuple[float, float]:
    """Median seconds of a first crawl of the listing and of the unchanged re-crawl after it."""
    firsts, seconds = [], []
    for _ in range(repeat):
        ws = Workspace(root, "listing", site.url, revisit_days=revisit_days)
        firsts.append(ws.crawl())
        seconds.append(ws.crawl())
        ws.remove()
    return statistics.median(firsts), statistics.median(seconds)


def plain_scrapy(site: PartnerSite) -> Timing:
    return timed(
        lambda: subprocess.run(
            [sys.executable, "-m", "bench.plain_fetch", f"{site.url}/sitemap.xml"],
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
        )
    )


def trafilatura_cli(root: Path, site: PartnerSite) -> Timing:
    """trafilatura's harvester on the sitemap's URLs. Its ``--sitemap`` discovery refuses IP-address hosts
    (courlan), so the sitemap is read here and its URLs are given with ``-i``: the same download and
    extraction path. Config: its defaults with the per-host sleep set to 0 (like our crawl's delay) and
    its SSRF guard off for 127.0.0.1 (like ours in the bench)."""
    import trafilatura

    from spiders.sitemap import parse_sitemap

    config = root / "trafilatura.cfg"
    defaults = (Path(trafilatura.__file__).parent / "settings.cfg").read_text(encoding="utf-8")
    config.write_text(
        defaults.replace("SLEEP_TIME = 5.0", "SLEEP_TIME = 0").replace("SSRF_PROTECTION = on", "SSRF_PROTECTION = off"),
        encoding="utf-8",
    )
    urls = root / "urls.txt"
    out = Path(tempfile.mkdtemp(dir=root))
    before = site.count

    def harvest() -> None:
        entries = [
            loc
            for k in range(len(parse_sitemap(site.sitemap_index())[1]))
            for loc, _ in parse_sitemap(site.sitemap(k))[1]
        ]
        urls.write_text("".join(f"{u}\n" for u in entries), encoding="utf-8")
        subprocess.run(
            [
                shutil.which("trafilatura") or "trafilatura",
                "-i",
                str(urls),
                "-o",
                str(out),
                "--parallel",
                "8",
                "--config-file",
                str(config),
            ],
            check=True,
            capture_output=True,
            timeout=max(600, site.pages),
        )

    elapsed = timed(harvest)
    shutil.rmtree(out, ignore_errors=True)
    if site.count - before < site.pages:
        raise RuntimeError(f"trafilatura fetched {site.count - before} of {site.pages} pages")
    return elapsed


def stage_costs(site: PartnerSite, pages: int) -> dict[str, float]:
    """Milliseconds per page of each stage, in this process, over ``pages`` generated pages."""
    from harvester.extraction.item import extract_item
    from harvester.items import CandidateItem
    from harvester.registry import load_registry
    from harvester.stages import apply_hashes, apply_language, classify_item

    folder = Path(tempfile.mkdtemp())
    (folder / f"{SOURCE}.yaml").write_text(source_yaml("sitemap", site.url), encoding="utf-8")
    spec = load_registry(folder)[SOURCE]
    shutil.rmtree(folder)
    from pipelines.store import candidate_values
    from storage.clusters import FingerprintCache, link_duplicates
    from storage.db import make_engine, transaction, upgrade
    from storage.models import CandidateStatus
    from storage.queue import Outcome, upsert_candidate
    from storage.runs import ensure_source

    db_dir = Path(tempfile.mkdtemp())
    engine = make_engine(f"sqlite:///{db_dir / 'stage-costs.sqlite3'}")
    upgrade(engine)
    with transaction(engine) as session:
        ensure_source(session, SOURCE, "bench", "sitemap", False, True, "x")

    fingerprints = FingerprintCache()

    def store(it: CandidateItem) -> None:  # what the store stage does per item: upsert + near-duplicate index
        assert it.record_hash is not None
        with transaction(engine) as session:
            result = upsert_candidate(
                session,
                source_id=SOURCE,
                url=it.canonical_url or it.url,
                record_hash=it.record_hash,
                run_id=None,
                initial_status=CandidateStatus.PENDING,
                values=candidate_values(it),
            )
            if result.outcome is not Outcome.NOT_MODIFIED:
                link_duplicates(session, result.candidate_id, new=result.outcome is Outcome.NEW, cache=fingerprints)

    totals = dict.fromkeys(("extract", "language", "dedupe", "classify", "store"), 0.0)
    for i in range(pages):
        url = f"{site.url}/record/{i}.html"
        item = CandidateItem(
            source_id=SOURCE, url=url, fetched_url=url, body=site.detail(i), content_type="text/html; charset=utf-8"
        )
        steps: list[tuple[str, Callable[[CandidateItem], Any]]] = [
            ("extract", lambda it: extract_item(it, spec)),
            ("language", lambda it: apply_language(it, 0)),
            ("dedupe", apply_hashes),
            ("classify", classify_item),
            ("store", store),
        ]
        for name, step in steps:
            t = time.perf_counter()
            step(item)
            totals[name] += time.perf_counter() - t
    engine.dispose()
    shutil.rmtree(db_dir, ignore_errors=True)
    return {k: round(v * 1000 / pages, 2) for k, v in totals.items()}


def upsert_rate(database_url: str, count: int) -> float:
    """Candidates per second through ``upsert_candidate``, one transaction each, on an empty database."""
    from storage.db import make_engine, transaction, upgrade
    from storage.models import CandidateStatus
    from storage.queue import upsert_candidate
    from storage.runs import ensure_source

    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    with transaction(engine) as session:
        ensure_source(session, SOURCE, "bench", "sitemap", False, True, "x")
    values = {"title": "A benchmark record", "text": "Some extracted text " * 50, "language": "en"}
    start = time.perf_counter()
    for i in range(count):
        with transaction(engine) as session:
            url = f"https://example.org/record/{i}"
            upsert_candidate(
                session,
                source_id=SOURCE,
                url=url,
                record_hash=f"h{i}",
                run_id=None,
                initial_status=CandidateStatus.PENDING,
                values={**values, "fetched_url": url},
            )
    rate = count / (time.perf_counter() - start)
    engine.dispose()
    return rate


def distributed(root: Path, site: PartnerSite, redis_url: str, postgres_url: str, workers: int) -> Timing:
    import redis

    redis.Redis.from_url(redis_url).delete(f"harvester:{SOURCE}:crawl")
    ws = Workspace(root, "sitemap", site.url, postgres_url, {"HARVESTER_REDIS_URL": redis_url})
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    subprocess.run(
        [sys.executable, "-m", "harvester", "db", "upgrade"],
        env=ws.env,
        check=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
    )
    elapsed = timed(lambda: ws.crawl(workers=workers))
    stats = ws.last_run_stats()
    ws.remove()
    if stats.get("new") != site.pages:
        raise RuntimeError(f"distributed crawl stored {stats.get('new')} of {site.pages}")
    return elapsed


def speed(
    args: argparse.Namespace,
    templates: list[bytes],
    root: Path,
    result: dict[str, Any],
    row: Callable[[str, str, str], None],
) -> None:
    """Every measurement but the memory run."""
    with PartnerSite(templates, args.pages) as site:
        n = args.pages
        pool, pool_again = full_crawl(root, site, "auto", args.repeat)
        pool_first = pool.wall
        result |= {
            "full_pages_s": n / pool_first,
            "full_cpu_ms_per_page": 1000 * pool.busy / n,
            "recrawl_fraction_sitemap": pool_again / pool_first,
        }
        row("full pipeline, stage pool", f"{n / pool_first:.1f} pages/s", f"({pool_first:.1f} s, {pool.cpu_note(n)})")
        row(
            "unchanged re-crawl, sitemap lastmod",
            f"{100 * pool_again / pool_first:.1f} % of first",
            f"({pool_again:.1f} s)",
        )
        inline, _ = full_crawl(root, site, "0", args.repeat)
        result |= {"inline_pages_s": n / inline.wall, "pool_speedup": inline.wall / pool_first}
        row(
            "full pipeline, stages in-line",
            f"{n / inline.wall:.1f} pages/s",
            f"(pool x{inline.wall / pool_first:.2f}, {inline.cpu_note(n)})",
        )
        plain = Timing.median([plain_scrapy(site) for _ in range(args.repeat)])
        result["plain_scrapy_pages_s"] = n / plain.wall
        row("plain Scrapy, no processing", f"{n / plain.wall:.1f} pages/s", f"(baseline, {plain.cpu_note(n)})")
        traf = Timing.median([trafilatura_cli(root, site) for _ in range(args.repeat)])
        result |= {
            "trafilatura_pages_s": n / traf.wall,
            "trafilatura_cpu_ms_per_page": 1000 * traf.busy / n,
            "full_vs_trafilatura": traf.wall / pool_first,
        }
        row(
            "trafilatura CLI on the sitemap URLs",
            f"{n / traf.wall:.1f} pages/s",
            f"(full pipeline x{traf.wall / pool_first:.2f}, {traf.cpu_note(n)})",
        )
        list_first, list_again = listing_recrawl(root, site, args.repeat)
        result["recrawl_fraction_listing"] = list_again / list_first
        row(
            "unchanged re-crawl, listing + conditional GET",
            f"{100 * list_again / list_first:.1f} % of first",
            f"({list_again:.1f} of {list_first:.1f} s)",
        )
        list_first, list_again = listing_recrawl(root, site, args.repeat, revisit_days=7)
        result["recrawl_fraction_listing_revisit"] = list_again / list_first
        row(
            "unchanged re-crawl, listing + revisit_days 7",
            f"{100 * list_again / list_first:.1f} % of first",
            f"({list_again:.1f} of {list_first:.1f} s)",
        )
        costs = stage_costs(site, min(n, 300))
        result["stage_ms_per_page"] = costs
        row("stage cost per page", ", ".join(f"{k} {v} ms" for k, v in costs.items()), "(one process)")
        if args.redis_url and args.postgres_url:

            def workers(count: int) -> Timing:
                return Timing.median(
                    [distributed(root, site, args.redis_url, args.postgres_url, count) for _ in range(args.repeat)]
                )

            one, two = workers(1), workers(2)
            result |= {"distributed_1_pages_s": n / one.wall, "distributed_2_pages_s": n / two.wall}
            row("distributed, 1 worker (PostgreSQL)", f"{n / one.wall:.1f} pages/s", f"({one.cpu_note(n)})")
            row(
                "distributed, 2 workers (PostgreSQL)",
                f"{n / two.wall:.1f} pages/s",
                f"(x{one.wall / two.wall:.2f}, {two.cpu_note(n)})",
            )

    count = 2000
    sqlite_rate = median_of(args.repeat, lambda: upsert_rate(f"sqlite:///{root / 'upsert.sqlite3'}", count))
    result["upsert_sqlite_per_s"] = sqlite_rate
    row("upsert rate, SQLite", f"{sqlite_rate:.0f} candidates/s", "(one transaction each)")
    if args.postgres_url:
        pg_rate = median_of(args.repeat, lambda: upsert_rate(args.postgres_url, count))
        result["upsert_postgresql_per_s"] = pg_rate
        row("upsert rate, PostgreSQL", f"{pg_rate:.0f} candidates/s", "(one transaction each)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="pages of the generated site (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; medians are reported")
    parser.add_argument("--memory-pages", type=int, default=100_000, help="pages of the memory run (0: skip)")
    parser.add_argument("--postgres-url", help="PostgreSQL for the upsert rate and distributed runs (emptied!)")
    parser.add_argument("--redis-url", help="Redis for the distributed runs (needs --postgres-url)")
    parser.add_argument("--memory-only", action="store_true", help="only the memory run")
    args = parser.parse_args(argv)

    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    templates = load_templates(get_settings().fixtures_dir)
    root = Path(tempfile.mkdtemp(prefix="harvester-bench-"))
    rows: list[tuple[str, str, str]] = []
    result: dict[str, Any] = {"machine": info, "pages": args.pages, "repeat": args.repeat}

    def row(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"  {name}: {value} {note}", flush=True)

    if not args.memory_only:
        speed(args, templates, root, result, row)
    if args.memory_pages:
        with PartnerSite(templates, args.memory_pages) as big:
            ws = Workspace(root, "sitemap", big.url)
            sampler = MemorySampler(lambda: big.count, args.memory_pages, report_every=300)
            elapsed = ws.crawl(sampler=sampler)
            stats = ws.last_run_stats()
            ws.remove()
        if stats.get("new") != args.memory_pages:
            raise RuntimeError(f"memory run stored {stats.get('new')} of {args.memory_pages} pages: {stats}")
        tenths = [round(b / 2**20) for b in sampler.by_tenth]
        pool = {k: stats.get(f"stage_pool_{k}", 0) for k in ("renewed", "restarted", "timed_out")}
        result |= {
            "memory_pages": args.memory_pages,
            "peak_pss_mb": sampler.peak / 2**20,
            "peak_pss_mb_by_tenth": tenths,
            "memory_run_pages_s": args.memory_pages / elapsed,
            "memory_run_errors": stats.get("errors", 0),
            "memory_run_stage_pool": pool,
        }
        row(
            f"peak memory (PSS), {args.memory_pages:,} pages",
            f"{sampler.peak / 2**20:.0f} MB",
            f"(crawl + stage workers, {args.memory_pages / elapsed:.1f} pages/s, every page stored, "
            f"{stats.get('errors', 0)} errors, stage pool renewed {pool['renewed']} times; peak per tenth of the "
            f"pages, MB: {', '.join(map(str, tenths))})",
        )
    shutil.rmtree(root, ignore_errors=True)

    print("\n| measurement | figure | note |\n|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
