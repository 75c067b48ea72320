"""Review app latency on a big queue: the pages and API a curator uses, against the same queries without
the web layer, on SQLite and (when reachable) PostgreSQL.

    python -m bench.review_latency [--candidates 100000] [--repeat 30] [--postgres URL | --no-postgres]

Fills a fresh database with N candidates made by repeating the real GEF export rows (the shared capture
``gef/dump-gef-project-database-export.csv`` through the real spider, extraction and classifier) with new
URLs, spread over the registry's sources, with a status mix and lightly jittered real scores, using bulk
inserts. SQLite lives in a temporary folder; PostgreSQL gets its own schema, dropped at the end. Then an
in-process TestClient logged in as a curator times each endpoint; the baseline runs the same filter through
the app's query builder in a bare SQLAlchemy session (no HTTP, auth, ORM page rendering or templates), split
into the (capped) count of the filter and the fetch of one keyset page. The deep page is reached by the cursor
the app's "next" links carry. Same-run references: the old ways of the same queries (OFFSET paging, ILIKE search,
exact COUNT(*)), database only, and the query plans of the first and the deep page. Prints tables and a final
JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CAPTURE = "gef/dump-gef-project-database-export.csv"
SCHEMA = f"bench_review_latency_{os.getpid()}"
STATUS_MIX = (("pending", 0.55), ("filtered", 0.20), ("accepted", 0.10), ("rejected", 0.10), ("deferred", 0.05))
REJECT_REASONS = ("not_support_type", "not_cbd_relevant", "inactive", "not_international", "duplicate", "other")
USER, PASSWORD = "bench", "bench-curator-1"
CHUNK = 5_000
WARMUP = 3


@dataclass(frozen=True)
class Case:
    """One endpoint: its request and the filter its database work is made of."""

    name: str
    path: str
    params: dict[str, str]
    after: str | None = None


def real_records() -> list[Any]:
    """The GEF export rows as the harvester makes candidates of them (extract, language, classify)."""
    from harvester.crawl.offline import candidates_from_response
    from harvester.recordings.fixtures import load_capture
    from harvester.recordings.warc import RecordedResponse
    from harvester.registry import load_registry

    capture = load_capture(CAPTURE)
    spec = load_registry()["gef_projects"]
    result = candidates_from_response(spec, RecordedResponse(capture.url, 200, capture.headers(), capture.body))
    return result.items


def synthetic_rows(items: list[Any], n: int, sources: list[str], seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` candidate rows: the real records repeated with new URLs, sources, statuses and jittered scores."""
    from pipelines.store import candidate_values
    from storage.queue import HARVESTED_COLUMNS as COLUMNS

    rng = random.Random(seed)
    base = [{k: v for k, v in candidate_values(item).items() if k in COLUMNS} for item in items]
    weights = [30.0] + [70.0 / (len(sources) - 1)] * (len(sources) - 1)  # sources[0] is the biggest partner
    statuses, status_weights = zip(*STATUS_MIX, strict=True)
    for i in range(n):
        item, values = items[i % len(items)], base[i % len(items)]
        source = rng.choices(sources, weights)[0]
        score = None if values["score"] is None else round(min(1.0, max(0.0, values["score"] + rng.gauss(0, 0.02))), 4)
        url = f"{item.url}?copy={i}"
        yield {
            **values,
            "source_id": source,
            "url": url,
            "score": score,
            "record_hash": hashlib.sha256(url.encode()).hexdigest(),
            "status": rng.choices(statuses, status_weights)[0],
            "curator_edits": {},
            "version_id": 1,
            "gone_at_source": False,
            "changed_since_review": False,
        }


def fill(engine: Any, items: list[Any], n: int) -> dict[str, Any]:
    """Bulk-insert the candidates, one decision per reviewed candidate, the sources and a curator."""
    from sqlalchemy import insert, select, text

    from harvester.registry import load_registry
    from harvester.web.auth import add_user
    from storage.db import transaction
    from storage.models import Candidate, Decision
    from storage.runs import ensure_source

    specs = list(load_registry().values())
    sources = ["gef_projects", *[s.id for s in specs if s.id != "gef_projects"]]
    started = time.perf_counter()
    with transaction(engine) as session:
        for spec in specs:
            ensure_source(session, spec.id, spec.name, spec.kind.value, spec.verified, spec.enabled, "bench")
        add_user(session, USER, "curator", PASSWORD)
    rows = synthetic_rows(items, n, sources)
    done = 0
    while done < n:
        chunk = [next(rows) for _ in range(min(CHUNK, n - done))]
        with transaction(engine) as session:
            session.execute(insert(Candidate), chunk)
        done += len(chunk)
    rng = random.Random(11)
    with transaction(engine) as session:
        reviewed = session.execute(
            select(Candidate.id, Candidate.status, Candidate.score, Candidate.classifier_version).where(
                Candidate.status.in_(("accepted", "rejected", "deferred"))
            )
        ).all()
    for start in range(0, len(reviewed), CHUNK):
        with transaction(engine) as session:
            session.execute(
                insert(Decision),
                [
                    {
                        "candidate_id": r.id,
                        "actor": USER,
                        "from_status": "pending",
                        "to_status": r.status,
                        "reason_code": rng.choice(REJECT_REASONS) if r.status == "rejected" else None,
                        "note": None,
                        "field_diff": {},
                        "model_version": r.classifier_version,
                        "score_shown": r.score,
                    }
                    for r in reviewed[start : start + CHUNK]
                ],
            )
    # What autovacuum (PostgreSQL: statistics and the visibility map) or a periodic ANALYZE leaves on a live database.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    return {"fill_s": round(time.perf_counter() - started, 1), "decisions": len(reviewed)}


def deep_cursor(engine: Any, offset: int) -> str:
    """The cursor the queue's "next" link carries after ``offset`` pending rows."""
    from sqlalchemy import select

    from storage.db import session_factory
    from storage.models import Candidate
    from storage.queue import RANK, Cursor

    with session_factory(engine)() as session:
        row = session.execute(
            select(Candidate.id, Candidate.score)
            .where(Candidate.status == "pending")
            .order_by(*RANK)
            .offset(offset - 1)
            .limit(1)
        ).one()
    return Cursor(row.score, row.id).encode()


def deep_page(pending: int) -> int:
    """Page 200 of the pending queue, or its middle page when it is shorter."""
    return 200 if pending > 200 * 50 else max(2, pending // 50 // 2)


def pending_count(engine: Any) -> int:
    from sqlalchemy import func, select

    from storage.db import session_factory
    from storage.models import Candidate

    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).where(Candidate.status == "pending")) or 0


def cases(engine: Any) -> list[Case]:
    from sqlalchemy import func, select

    from storage.db import session_factory
    from storage.models import Candidate

    with session_factory(engine)() as session:
        pending = session.scalars(
            select(Candidate.id).where(Candidate.status == "pending").order_by(Candidate.id)
        ).all()
        total = session.scalar(select(func.count()).select_from(Candidate))
    step = max(1, len(pending) // 40)
    picks = pending[::step][:40]
    page = deep_page(len(pending))
    after = deep_cursor(engine, (page - 1) * 50)
    return [
        Case("queue p1 (pending)", "/queue", {}),
        Case(f"queue p{page} (pending, cursor)", "/queue", {"after": after}, after=after),
        Case(
            "queue source+country+min_score",
            "/queue",
            {"status": "pending", "source": "gef_projects", "country": "KE", "min_score": "0.5"},
        ),
        Case("queue text search q=biodiversity", "/queue", {"q": "biodiversity"}),
        Case('queue text search q="climate chan"', "/queue", {"q": "climate chan"}),
        Case("candidate page", "/candidates/{id}", {"ids": ",".join(map(str, picks))}),
        Case(f"api /api/v1/candidates (all {total})", "/api/v1/candidates", {}),
        Case(
            f"api /api/v1/candidates p{page} (cursor)",
            "/api/v1/candidates",
            {"after": deep_cursor_all(engine, (page - 1) * 50)},
            after="all",
        ),
        Case("api /api/v1/me (per-request floor)", "/api/v1/me", {}),
    ]


def deep_cursor_all(engine: Any, offset: int) -> str:
    from sqlalchemy import select

    from storage.db import session_factory
    from storage.models import Candidate
    from storage.queue import RANK, Cursor

    with session_factory(engine)() as session:
        row = session.execute(select(Candidate.id, Candidate.score).order_by(*RANK).offset(offset - 1).limit(1)).one()
    return Cursor(row.score, row.id).encode()


def timed(fn: Callable[[int], Any], repeat: int) -> list[float]:
    for i in range(WARMUP):
        fn(i)
    out = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"median_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2)}


def measure(engine: Any, repeat: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from harvester.web.app import create_app
    from harvester.web.routes_pages import filter_params, queue_filter
    from storage.db import session_factory
    from storage.decisions import history
    from storage.models import Candidate
    from storage.queue import Cursor, count_candidates, neighbours, queue_page

    factory = session_factory(engine)
    results: dict[str, Any] = {}
    with TestClient(create_app(engine), follow_redirects=False) as client:
        login = client.post("/login", data={"name": USER, "password": PASSWORD, "next": "/queue"})
        assert login.status_code == 303, login.text
        for case in cases(engine):
            if case.path == "/candidates/{id}":
                ids = [int(i) for i in case.params["ids"].split(",")]

                def web(i: int, ids: list[int] = ids) -> None:
                    r = client.get(f"/candidates/{ids[i % len(ids)]}")
                    assert r.status_code == 200, r.status_code

                def db(i: int, ids: list[int] = ids) -> int:  # what the page reads
                    with factory() as session, session.begin():
                        row = session.get(Candidate, ids[i % len(ids)])
                        neighbours(session, queue_filter({"status": row.status}), row)
                        history(session, row.id)
                    return 1

                def by_id(i: int, ids: list[int] = ids) -> None:
                    with factory() as session, session.begin():
                        session.get(Candidate, ids[i % len(ids)])

                def around(i: int, ids: list[int] = ids) -> None:
                    with factory() as session, session.begin():
                        row = session.get(Candidate, ids[i % len(ids)])
                        neighbours(session, queue_filter({"status": row.status}), row)

                row = {
                    **summary(timed(web, repeat)),
                    "db": summary(timed(db, repeat)),
                    "db_count": summary(timed(by_id, repeat)),
                    "db_page": summary(timed(around, repeat)),
                    "total": 1,
                }
            else:
                query = f"{case.path}?{urlencode(case.params)}" if case.params else case.path

                def web(i: int, query: str = query) -> None:
                    r = client.get(query)
                    assert r.status_code == 200, (query, r.status_code)

                row = summary(timed(web, repeat))
                if case.path != "/api/v1/me":
                    f = queue_filter(filter_params(case.params, "pending" if case.path == "/queue" else None))
                    after = Cursor.decode(case.params["after"]) if case.after else None

                    def db(i: int, f: Any = f, after: Any = after) -> int:
                        with factory() as session, session.begin():
                            queue_page(session, f, 50, after=after)
                            return count_candidates(session, f)

                    def count(i: int, f: Any = f) -> int:
                        with factory() as session, session.begin():
                            return count_candidates(session, f)

                    def page(i: int, f: Any = f, after: Any = after) -> None:
                        with factory() as session, session.begin():
                            queue_page(session, f, 50, after=after)

                    row["db"] = summary(timed(db, repeat))
                    row["db_count"] = summary(timed(count, repeat))
                    row["db_page"] = summary(timed(page, repeat))
                    row["total"] = db(0)
            results[case.name] = row
            print(f"  {case.name}: {row['median_ms']:.1f} ms", file=sys.stderr, flush=True)
    return results


def old_ways(engine: Any, repeat: int) -> dict[str, Any]:
    """The queries this app ran before keyset paging, full-text search and capped counts, database only."""
    from sqlalchemy import func, select

    from storage.db import session_factory
    from storage.models import Candidate
    from storage.queue import RANK

    factory = session_factory(engine)
    offset = (deep_page(pending_count(engine)) - 1) * 50
    pending = select(Candidate).where(Candidate.status == "pending")
    like = "%biodiversity%"
    searched = pending.where(Candidate.title.ilike(like) | Candidate.summary.ilike(like))
    queries = {
        "exact COUNT(*) of pending": select(func.count()).select_from(pending.subquery()),
        f"pending, page at OFFSET {offset}": pending.order_by(*RANK).limit(50).offset(offset),
        "ILIKE search biodiversity, p1": searched.order_by(*RANK).limit(50),
        "ILIKE search biodiversity, COUNT(*)": select(func.count()).select_from(searched.subquery()),
    }
    out = {}
    for name, query in queries.items():

        def run(i: int, query: Any = query) -> None:
            with factory() as session, session.begin():
                session.execute(query).all()

        out[name] = summary(timed(run, repeat))
        print(f"  old way, {name}: {out[name]['median_ms']:.1f} ms", file=sys.stderr, flush=True)
    return out


def plans(engine: Any) -> dict[str, str]:
    """EXPLAIN of the first and the deep pending page as the app sends them."""
    from sqlalchemy import text

    from storage.models import Candidate
    from storage.queue import RANK, Cursor, QueueFilter, filtered_query

    cursor = Cursor.decode(deep_cursor(engine, (deep_page(pending_count(engine)) - 1) * 50))
    base = filtered_query(QueueFilter(status="pending"), engine.dialect.name)
    score = Candidate.score
    queries = {
        "first page": base.order_by(*RANK).limit(51),
        "deep page": base.where(score <= cursor.score, (score < cursor.score) | (Candidate.id > cursor.id))
        .order_by(*RANK)
        .limit(51),
        "search p1": filtered_query(QueueFilter(status="pending", q="biodiversity"), engine.dialect.name)
        .order_by(*RANK)
        .limit(51),
        "any status p1 (API default)": filtered_query(QueueFilter(), engine.dialect.name).order_by(*RANK).limit(51),
    }
    out = {}
    with engine.connect() as conn:
        for name, query in queries.items():
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            if engine.dialect.name == "postgresql":
                out[name] = "\n".join(conn.scalars(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")))
            else:
                out[name] = "\n".join(r[3] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    return out


@contextmanager
def sqlite_engine() -> Iterator[tuple[Any, Callable[[], str]]]:
    from storage.db import make_engine, upgrade

    with tempfile.TemporaryDirectory(prefix="review-latency-") as folder:
        path = Path(folder) / "bench.sqlite3"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        try:
            yield engine, lambda: f"{path.stat().st_size / 2**20:.0f} MiB file"
        finally:
            engine.dispose()


def postgres_reachable(url: str) -> str | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()


@contextmanager
def postgres_engine(url: str) -> Iterator[tuple[Any, Callable[[], str]]]:
    """A schema of its own (search_path), migrated from scratch and dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from storage.db import make_engine, upgrade

    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    parsed = make_url(url)
    scoped = parsed.update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    engine = make_engine(scoped.render_as_string(hide_password=False))
    try:
        upgrade(engine)

        def size() -> str:
            with engine.connect() as conn:
                size = conn.scalar(text("select pg_total_relation_size('candidates')"))
                return f"{size / 2**20:.0f} MiB table"

        yield engine, size
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        admin.dispose()


def print_table(n: int, all_results: dict[str, dict[str, Any]]) -> None:
    head = (
        f"{'db':10} {'endpoint':38} {'median':>8} {'p95':>8} {'db-only':>8} {'count':>8} {'page':>8} "
        f"{'x app':>6} {'matches':>7}"
    )
    print(
        f"\nreview app latency, {n:,} candidates, in ms. db-only = the same database work through SQLAlchemy "
        f"without the web layer;\ncount / page = its COUNT(*) and its one-page fetch (candidate page: the row by "
        f"id / the previous+next neighbour queries); x app = median / db-only; counts stop at 10,001"
    )
    print(head)
    print("-" * len(head))
    for db, results in all_results.items():
        for name, r in results.get("endpoints", {}).items():
            dbm = r.get("db", {}).get("median_ms")
            cnt = r.get("db_count", {}).get("median_ms")
            pg = r.get("db_page", {}).get("median_ms")

            def cell(v: float | None) -> str:
                return f"{v:8.1f}" if v is not None else f"{'':8}"

            ratio = f"{r['median_ms'] / dbm:6.1f}" if dbm else f"{'':6}"
            print(
                f"{db:10} {name:38} {r['median_ms']:8.1f} {r['p95_ms']:8.1f} {cell(dbm)} {cell(cnt)} {cell(pg)} "
                f"{ratio} {r.get('total', ''):>7}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HARVESTER_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL URL (a schema of its own is created and dropped)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="review-latency-data-") as data_dir:
        os.environ["HARVESTER_DATA_DIR"] = data_dir  # nothing may touch the project's own var/
        os.environ.pop("HARVESTER_DATABASE_URL", None)
        from harvester.settings import get_settings

        get_settings.cache_clear()
        started = time.perf_counter()
        items = real_records()
        print(f"{len(items)} real GEF records made in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        backends: list[tuple[str, Callable[[], Any]]] = [("sqlite", sqlite_engine)]
        skipped: dict[str, str] = {}
        if not args.no_postgres:
            problem = postgres_reachable(args.postgres)
            if problem is None:
                backends.append(("postgresql", lambda: postgres_engine(args.postgres)))
            else:
                skipped["postgresql"] = f"not reachable at {args.postgres}: {problem}"
                print(f"postgresql skipped: {skipped['postgresql']}", file=sys.stderr)

        all_results: dict[str, dict[str, Any]] = {}
        for name, opener in backends:
            with opener() as (engine, size):
                print(f"{name}: filling {args.candidates:,} candidates ...", file=sys.stderr, flush=True)
                filled = fill(engine, items, args.candidates)
                print(f"{name}: filled in {filled['fill_s']} s ({size()}); measuring ...", file=sys.stderr, flush=True)
                all_results[name] = {
                    **filled,
                    "size": size(),
                    "endpoints": measure(engine, args.repeat),
                    "old_ways": old_ways(engine, args.repeat),
                    "plans": plans(engine),
                }
        print_table(args.candidates, all_results)
        print("\nsame run, database only: the queries the app used before (OFFSET paging, ILIKE, exact COUNT)")
        for db, res in all_results.items():
            for name, r in res["old_ways"].items():
                print(f"{db:10} {name:38} {r['median_ms']:8.1f} {r['p95_ms']:8.1f}")
        for db, res in all_results.items():
            for name, plan in res["plans"].items():
                print(f"\n{db} plan, {name}:\n  " + plan.replace("\n", "\n  "))
        slow = [
            f"{db}: {name}"
            for db, res in all_results.items()
            for name, r in res["endpoints"].items()
            if r["median_ms"] > 300
        ]
        print("over 300 ms median: " + (", ".join(slow) if slow else "none"))
        print(
            json.dumps(
                {"candidates": args.candidates, "repeat": args.repeat, "skipped": skipped, "results": all_results}
            )
        )


if __name__ == "__main__":
    main()
