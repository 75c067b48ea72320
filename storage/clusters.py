"""Near-duplicate keys and clusters in the database.

``link_duplicates`` (one new or changed candidate, called by the crawl's store stage) and
``recompute_clusters`` (the whole database): fingerprint keys in ``duplicate_keys``, confirmed
near-duplicates share ``Candidate.duplicate_cluster``. Nothing is deleted or merged away. Kept apart
from ``storage.model_store`` so a crawl process does not load the learning stack (scipy) to store pages.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Engine,
    Executable,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from harvester.classify.duplicates import (
    MAX_BUCKET,
    DupRecord,
    Fingerprint,
    cluster_fingerprints,
    cluster_id,
    cluster_number,
    fingerprint,
    match,
)
from storage.db import session_factory, transaction
from storage.models import Candidate, DuplicateKey

READ_BATCH = 25  # stored candidates read and fingerprinted at a time while comparing
TEXT_LIMIT = 20_000
_candidates = Candidate.__table__  # Core updates: clusters are not curator edits (no version bump)
_keys = DuplicateKey.__table__  # Core inserts: the ORM's bulk-insert path costs more than the rows

_DUP_COLUMNS = tuple(
    _candidates.c[name]
    for name in (
        "id",
        "source_id",
        "url",
        "title",
        "organisations",
        "countries",
        "summary",
        "text",
        "duplicate_cluster",
        "version_id",
        "record_hash",
    )
)
# the store stage's statements, built once (a statement reused keeps its cache key) on the tables (no ORM step)
_DUP_ROW = select(*_DUP_COLUMNS).where(_candidates.c.id == bindparam("cid"))
_DUP_ROWS = select(*_DUP_COLUMNS).where(_candidates.c.id.in_(bindparam("ids", expanding=True)))
_DROP_KEYS = delete(_keys).where(_keys.c.candidate_id == bindparam("cid"))
_MEMBER_HEADS = (
    select(_candidates.c.id, _candidates.c.version_id, _candidates.c.record_hash, _candidates.c.duplicate_cluster)
    .where(
        _candidates.c.id.in_(select(_keys.c.candidate_id).where(_keys.c.key.in_(bindparam("keys", expanding=True)))),
        _candidates.c.id != bindparam("cid"),
    )
    .order_by(_candidates.c.id)
)
FINGERPRINT_CACHE_SIZE = 5_000  # about 3.4 KB each: 17 MB at most


class FingerprintCache:
    """Fingerprints of stored candidates, the most recently used kept, for one crawl's store stage.

    Each new candidate is compared with up to ``MAX_BUCKET`` stored candidates sharing an index key; on a
    site of many near-identical pages those are mostly the same candidates page after page, and reading
    and fingerprinting them again for every page made storing cost grow with the bucket. Keyed by
    (id, version, record hash): any change to a candidate's fields bumps its version. Entries are kept without
    their index keys (``bands``), which comparing does not use: that halves an entry."""

    def __init__(self, size: int = FINGERPRINT_CACHE_SIZE) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[int, int, str], Fingerprint] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple[int, int, str]) -> Fingerprint | None:
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return found

    def put(self, key: tuple[int, int, str], fp: Fingerprint) -> None:
        self.entries[key] = replace(fp, bands=()) if fp.bands else fp
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


def dup_record(row: Any) -> DupRecord:
    body = "\n".join(p for p in (row.summary, row.text) if p)
    return DupRecord(
        key=row.id,
        source_id=row.source_id,
        url=row.url,
        title=row.title,
        organisations=row.organisations or (),
        countries=row.countries or (),
        text=body[:TEXT_LIMIT] or None,
    )


def _write_keys(session: Session, prints: dict[int, Fingerprint]) -> None:
    if not prints:
        return
    session.execute(delete(DuplicateKey).where(DuplicateKey.candidate_id.in_(list(prints))))
    rows = [{"candidate_id": cid, "key": key} for cid, fp in prints.items() for key in dict.fromkeys(fp.index_keys())]
    if rows:
        session.execute(insert(_keys), rows)


def link_duplicates(
    session: Session, candidate_id: int, *, new: bool = False, cache: FingerprintCache | None = None
) -> str | None:
    """Index one new or changed candidate and join it to the cluster of its near-duplicates.

    Returns its cluster id (``None`` when it has no near-duplicate). Clusters met on the way are
    merged under the smallest id. A changed candidate that no longer matches keeps its cluster
    until ``recompute_clusters``. ``new``: the candidate was just inserted (no old keys to drop).
    """
    row = session.execute(_DUP_ROW, {"cid": candidate_id}).one_or_none()
    if row is None:
        return None
    fp = fingerprint(dup_record(row))
    if cache is not None:
        cache.put((row.id, row.version_id, row.record_hash), fp)
    keys = list(dict.fromkeys(fp.index_keys()))
    heads = _member_heads(session, _small_keys(session, keys), candidate_id)
    if not new:
        session.execute(_DROP_KEYS, {"cid": candidate_id})
    if keys:
        session.execute(insert(_keys), [{"candidate_id": candidate_id, "key": k} for k in keys])
    matched = _matches(session, fp, heads, row.duplicate_cluster, cache)
    if not matched:
        return row.duplicate_cluster
    existing = {c for c in [row.duplicate_cluster, *(cluster for _, cluster in matched)] if c}
    members = [candidate_id, *(oid for oid, _ in matched)]
    target = min(existing, key=cluster_number) if existing else cluster_id(members)
    condition = _candidates.c.id.in_(members)
    if existing - {target}:
        condition = or_(condition, _candidates.c.duplicate_cluster.in_(existing - {target}))
    session.connection().execute(update(_candidates).where(condition).values(duplicate_cluster=target))
    return target


@lru_cache(maxsize=64)
def _bucket_sizes(count: int, limit: int) -> Executable:
    """One statement for the sizes of ``count`` index keys (bound as ``k0``, ``k1``, ...), each counted on
    the key index and no further than ``limit``; built once per count, as building it for every stored page
    cost more than running it."""
    parts = [
        select(literal_column(str(i)).label("i"), func.count().label("n")).select_from(
            select(_keys.c.id).where(_keys.c.key == bindparam(f"k{i}")).limit(limit).subquery()
        )
        for i in range(count)
    ]
    return parts[0] if count == 1 else union_all(*parts)


def _small_keys(session: Session, keys: list[str]) -> list[str]:
    """The ``keys`` shared by at most ``MAX_BUCKET`` indexed candidates; a key shared by more is too generic to
    compare on, and its members are never read (that grew with every page stored)."""
    if not keys:
        return []
    sizes = session.execute(_bucket_sizes(len(keys), MAX_BUCKET + 1), {f"k{i}": key for i, key in enumerate(keys)})
    return [keys[i] for i, n in sizes if n <= MAX_BUCKET]


def _member_heads(session: Session, keys: list[str], candidate_id: int) -> Sequence[Any]:
    """(id, version, record hash, cluster) of the other candidates indexed under ``keys``, by id: one
    statement, as the members' ids are not needed on their own."""
    if not keys:
        return []
    return session.execute(_MEMBER_HEADS, {"keys": keys, "cid": candidate_id}).all()


def _matches(
    session: Session, fp: Fingerprint, heads: Sequence[Any], own_cluster: str | None, cache: FingerprintCache | None
) -> list[tuple[int, str | None]]:
    """(id, cluster) of the stored candidates among ``heads`` that ``fp`` matches, enough of them to decide its
    clusters: one matching member joins a whole cluster (``link_duplicates`` relabels the rest by cluster), so
    the other members of that cluster, and of the candidate's own, are not compared. On a site of many
    near-identical pages that is one comparison per page instead of hundreds. Members with a cached
    fingerprint are compared first; the others are read and fingerprinted a few at a time, only while
    still needed."""
    joined = {own_cluster} if own_cluster else set()
    matched: list[tuple[int, str | None]] = []

    def compare(oid: int, cluster: str | None, other: Fingerprint) -> None:
        if match(fp, other):
            matched.append((oid, cluster))
            if cluster:
                joined.add(cluster)

    uncached = []
    for oid, version, rhash, cluster in heads:
        known = cache.get((oid, version, rhash)) if cache is not None else None
        if known is None:
            uncached.append((oid, cluster))
        elif cluster not in joined:
            compare(oid, cluster, known)
    while uncached := [(oid, cluster) for oid, cluster in uncached if cluster not in joined]:
        batch, uncached = [oid for oid, _ in uncached[:READ_BATCH]], uncached[READ_BATCH:]
        for row in session.execute(_DUP_ROWS, {"ids": batch}):
            if row.duplicate_cluster in joined:
                continue
            other = fingerprint(dup_record(row))
            if cache is not None:
                cache.put((row.id, row.version_id, row.record_hash), other)
            compare(row.id, row.duplicate_cluster, other)
    return matched


@dataclass
class DedupeReport:
    candidates: int = 0
    clusters: int = 0
    clustered: int = 0  # candidates in a cluster
    changed: int = 0  # candidates whose cluster id changed
    cross_source: int = 0  # clusters with members from more than one source
    largest: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recompute_clusters(
    engine: Engine | None = None, *, batch: int = 1000, progress: Callable[[int, int], None] | None = None
) -> DedupeReport:
    """Fingerprint every candidate, rebuild its keys and recompute every cluster.

    Reads in short batches and fingerprints outside any transaction, then writes in short
    batches, so a crawl storing candidates meanwhile is not blocked (its own candidates index
    themselves).
    """
    keys: list[int] = []
    prints: list[Fingerprint] = []
    sources: dict[int, str] = {}
    current: dict[int, str | None] = {}
    with session_factory(engine)() as session:
        ids = list(session.scalars(select(Candidate.id).order_by(Candidate.id)))
    for start in range(0, len(ids), batch):
        with session_factory(engine)() as session:  # short reads; fingerprints computed outside them
            rows = session.execute(
                select(*_DUP_COLUMNS).where(Candidate.id.in_(ids[start : start + batch])).order_by(Candidate.id)
            ).all()
        for row in rows:
            keys.append(row.id)
            prints.append(fingerprint(dup_record(row)))
            sources[row.id] = row.source_id
            current[row.id] = row.duplicate_cluster
        if progress:
            progress(len(keys), len(ids))
    assigned = cluster_fingerprints(keys, prints)
    report = DedupeReport(candidates=len(keys))
    members: dict[str, list[Any]] = {}
    for cid, cluster in assigned.items():
        members.setdefault(cluster, []).append(cid)
    report.clusters = len(members)
    report.clustered = len(assigned)
    report.cross_source = sum(1 for m in members.values() if len({sources[i] for i in m}) > 1)
    report.largest = max((len(m) for m in members.values()), default=0)
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        changes = [{"cid": cid, "cluster": assigned.get(cid)} for cid in chunk if assigned.get(cid) != current[cid]]
        report.changed += len(changes)
        with transaction(engine) as session:
            _write_keys(session, dict(zip(chunk, prints[start : start + batch], strict=True)))
            if changes:
                session.connection().execute(
                    update(_candidates)
                    .where(_candidates.c.id == bindparam("cid"))
                    .values(duplicate_cluster=bindparam("cluster")),
                    changes,
                )
    return report


def cluster_members(session: Session, cluster: str) -> list[Candidate]:
    return list(session.scalars(select(Candidate).where(Candidate.duplicate_cluster == cluster).order_by(Candidate.id)))


def iter_clusters(session: Session) -> Iterable[tuple[str, list[Candidate]]]:
    """Every cluster with its members, largest first."""
    groups: dict[str, list[Candidate]] = {}
    for c in session.scalars(select(Candidate).where(Candidate.duplicate_cluster.is_not(None)).order_by(Candidate.id)):
        groups.setdefault(c.duplicate_cluster or "", []).append(c)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), cluster_number(kv[0])))
