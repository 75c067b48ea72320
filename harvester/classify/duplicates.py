"""Near-duplicate detection across sources and languages: fingerprints, pair rules and clusters.

Pure logic (no database). A record's ``Fingerprint`` holds its normalised URL, title, countries
and organisations and a MinHash signature of its body text; ``index_keys`` are the exact keys a
store can index to find candidate pairs cheaply (URL key, title key, exact-text key and the
MinHash LSH band keys). A candidate pair is then confirmed by ``match``:

- ``same_url``: the same URL once scheme, ``www.``, trailing slash, tracking parameters and
  language markers (``/en/``, ``/fr-ca/``, ``?lang=es``) are removed (the GCF projects API and
  the GCF funded-activities XLSX both address FP001 as ``greenclimate.fund/projects/FP001``; the
  French, Spanish and Russian versions of one ELSA article differ only by ``/fr/``, ``/es/``,
  ``/ru/``). A bare home page (no path, query or fragment) is too generic to count;
- ``same_title``: the same normalised title (case, accents, punctuation folded; at least
  ``MIN_TITLE_TOKENS`` words) with compatible countries and, within one source, compatible
  organisations -- so GEF's "Enhancing Financial Sustainability of the Protected Area System" for
  Georgia and for Albania stay apart while the same project listed twice for South Africa joins;
  titles that name a programme are often left untranslated, so this also links languages;
- ``same_text`` / ``similar_text``: the same normalised body text, or word 3-gram Jaccard
  similarity >= ``TEXT_JACCARD`` (MinHash LSH proposes, the MinHash estimate confirms), with
  compatible countries;
- ``similar_title``: a reworded title (title-word Jaccard >= 0.5, stop words left out) over a
  reworked text (text Jaccard >= 0.15), with compatible countries: Climate-ADAPT case studies
  imported from AdapteCCA and edited since.

Countries are compatible when either side has none, when they are equal (same source), or when
their Jaccard overlap is >= 0.5 (two sources list multi-country projects a little differently).
Organisations are compatible when either side has none or one normalised name is shared.
``clusters`` links confirmed pairs transitively (union-find); nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from harvester.classify.folding import fold_text

MIN_TITLE_TOKENS = 3
MIN_TITLE_CHARS = 15
MIN_TEXT_CHARS = 200  # shorter body text is not compared (titles and metadata decide)
MAX_TEXT_CHARS = 20_000
SHINGLE = 3  # words per shingle
MIN_SHINGLES = 20
NUM_PERM, BANDS = 64, 16  # 16 bands x 4 rows: P(proposed) = 0.64 at Jaccard 0.5, > 0.99 at 0.7
TEXT_JACCARD = 0.6
TITLE_WORDS_JACCARD, TITLE_TEXT_JACCARD = 0.5, 0.15  # a reworded title with a reworked text
TITLE_BANDS = 10  # x 3 rows over title words: P(proposed) = 0.74 at Jaccard 0.5, 0.97 at 0.7
COUNTRY_JACCARD = 0.5
MAX_BUCKET = 500  # an index key shared by more records than this is too generic to compare on
_PRIME = (1 << 31) - 1  # Mersenne prime: a x + b < 2^63 for a, b, x < p, exact in uint64
LANGUAGE_SEGMENT = re.compile(r"^(?:[a-z]{2}|[a-z]{2}[-_][a-z]{2,4})$")
LANGUAGE_PARAMS = {"lang", "language", "locale", "hl", "lng"}
LANGUAGE_CODES = {
    "ar",
    "bg",
    "cs",
    "da",
    "de",
    "el",
    "en",
    "es",
    "et",
    "fi",
    "fr",
    "ga",
    "hr",
    "hu",
    "it",
    "ja",
    "ko",
    "lt",
    "lv",
    "mt",
    "nl",
    "no",
    "pl",
    "pt",
    "ro",
    "ru",
    "sk",
    "sl",
    "sv",
    "sw",
    "th",
    "tr",
    "uk",
    "vi",
    "zh",
}
TITLE_PREFIX = re.compile(r"^\s*(?:project\s+title|title|titre|titulo|título)\s*:\s*", re.I)
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
ORG_STOP = {"the", "of", "for", "and", "la", "le", "les", "de", "del", "des", "du", "el", "y", "et"}
TITLE_STOP = ORG_STOP | {
    "a",
    "an",
    "in",
    "on",
    "to",
    "at",
    "by",
    "with",
    "from",
    "its",
    "their",
    "through",
    "towards",
    "into",
    "en",
    "pour",
    "dans",
    "par",
    "sur",
    "au",
    "aux",
    "un",
    "une",
    "los",
    "las",
    "para",
    "por",
    "con",
    "e",
    "do",
    "da",
    "dos",
    "das",
    "em",
    "com",
    "o",
    "und",
    "der",
    "die",
    "im",
    "zur",
    "zum",
    "il",
    "di",
}


@dataclass(frozen=True)
class DupRecord:
    """What duplicate detection looks at; ``key`` identifies the record (a candidate id)."""

    key: Hashable
    source_id: str
    url: str | None = None
    title: str | None = None
    organisations: Sequence[str] = ()
    countries: Sequence[str] = ()
    text: str | None = None  # body text (summary and full text), not the title


@dataclass(frozen=True)
class Fingerprint:
    source_id: str
    url_key: str | None
    title_key: str | None
    text_key: str | None
    countries: frozenset[str]
    organisations: frozenset[str]
    signature: np.ndarray | None = field(default=None, compare=False)  # MinHash of the text shingles
    title_words: frozenset[str] = field(default_factory=frozenset)
    bands: tuple[str, ...] = ()

    def index_keys(self) -> list[str]:
        """Keys under which a store indexes this record (each at most 40 characters)."""
        keys = []
        if self.url_key:
            keys.append("u:" + _digest(self.url_key))
        if self.title_key:
            keys.append("t:" + _digest(self.title_key))
        if self.text_key:
            keys.append("x:" + self.text_key)
        return keys + list(self.bands)


def normalise_words(text: str | None) -> list[str]:
    """Folded (case, accents, dashes), punctuation-free words."""
    if not text:
        return []
    return _NON_WORD.sub(" ", fold_text(text)).split()


def title_key(title: str | None) -> str | None:
    if not title:
        return None
    words = normalise_words(TITLE_PREFIX.sub("", title))
    key = " ".join(words)
    if len(words) < MIN_TITLE_TOKENS or len(key) < MIN_TITLE_CHARS:
        return None
    return key


def url_key(url: str | None) -> str | None:
    """Host + path (+ sorted non-language query, + fragment) with language markers removed."""
    if not url or not url.strip():
        return None
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return None
    labels = host.split(".")
    if labels[0] == "www" or (labels[0] in LANGUAGE_CODES and len(labels) > 2):
        labels = labels[1:]
    segments = [s for s in parts.path.split("/") if s]
    segments = [s for s in segments if not _is_language_segment(s)]
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in LANGUAGE_PARAMS and not k.lower().startswith("utm_")
    )
    if not segments and not query and not parts.fragment:
        return None  # a home page names a site, not a record
    key = ".".join(labels) + "/" + "/".join(segments)
    if query:
        key += "?" + urlencode(query)
    if parts.fragment:
        key += "#" + parts.fragment
    return key


def _is_language_segment(segment: str) -> bool:
    low = segment.lower()
    return bool(LANGUAGE_SEGMENT.match(low)) and low[:2] in LANGUAGE_CODES


def title_words(title: str | None) -> frozenset[str]:
    return frozenset(w for w in normalise_words(TITLE_PREFIX.sub("", title or "")) if w not in TITLE_STOP)


def organisation_key(name: str) -> str:
    return " ".join(w for w in normalise_words(name) if w not in ORG_STOP)


def text_shingles(text: str | None) -> tuple[str | None, frozenset[int]]:
    """(exact-text key, hashed word 3-gram shingles) of a body text; empty when too short."""
    if not text or len(text.strip()) < MIN_TEXT_CHARS:
        return None, frozenset()
    words = normalise_words(text[:MAX_TEXT_CHARS])
    if not words:
        return None, frozenset()
    exact = _digest(" ".join(words))
    if len(words) < SHINGLE + MIN_SHINGLES - 1:
        return exact, frozenset()
    shingles = frozenset(
        zlib.crc32(" ".join(words[i : i + SHINGLE]).encode("utf-8")) for i in range(len(words) - SHINGLE + 1)
    )
    return exact, shingles


@lru_cache(maxsize=1)
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261124)  # fixed: band keys must be equal in every process
    a = rng.integers(1, _PRIME, size=NUM_PERM, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=NUM_PERM, dtype=np.uint64)
    return a, b


def minhash(hashes: Iterable[int], num_perm: int = NUM_PERM) -> np.ndarray:
    """``num_perm`` min-hashes of 32-bit hashes under universal hashes ``(a x + b) mod p``."""
    x = np.fromiter(hashes, dtype=np.uint64) % np.uint64(_PRIME)
    a, b = _permutations()
    return ((np.outer(x, a[:num_perm]) + b[:num_perm]) % np.uint64(_PRIME)).min(axis=0)


def band_keys(signature: np.ndarray, bands: int, prefix: str) -> tuple[str, ...]:
    rows = len(signature) // bands
    return tuple(
        f"{prefix}{i}:" + hashlib.blake2b(signature[i * rows : (i + 1) * rows].tobytes(), digest_size=8).hexdigest()
        for i in range(bands)
    )


def fingerprint(record: DupRecord) -> Fingerprint:
    exact, shingles = text_shingles(record.text)
    words = title_words(record.title)
    bands: tuple[str, ...] = ()
    signature = None
    if shingles:  # records with a real text: LSH on the text, and on the title words for reworded titles
        signature = minhash(shingles)
        bands = band_keys(signature, BANDS, "b")
        if words:
            word_hashes = (zlib.crc32(w.encode("utf-8")) for w in words)
            bands += band_keys(minhash(word_hashes, TITLE_BANDS * 3), TITLE_BANDS, "w")
    return Fingerprint(
        source_id=record.source_id,
        url_key=url_key(record.url),
        title_key=title_key(record.title),
        text_key=exact,
        countries=frozenset(c.strip().upper() for c in record.countries if isinstance(c, str) and c.strip()),
        organisations=frozenset(
            k for k in (organisation_key(o) for o in record.organisations if isinstance(o, str)) if k
        ),
        signature=signature,
        title_words=words,
        bands=bands,
    )


def jaccard(a: frozenset[int] | frozenset[str], b: frozenset[int] | frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The share of equal min-hashes: an unbiased estimate of the shingle sets' Jaccard similarity
    (standard error <= 0.0625 with 64 hashes). Signatures, not shingle sets, are kept so that a
    whole database fits in memory (512 bytes a record)."""
    return float(np.count_nonzero(a == b)) / len(a)


def countries_compatible(a: Fingerprint, b: Fingerprint) -> bool:
    if not a.countries or not b.countries:
        return True
    if a.source_id == b.source_id:
        return a.countries == b.countries
    return jaccard(a.countries, b.countries) >= COUNTRY_JACCARD


def organisations_compatible(a: Fingerprint, b: Fingerprint) -> bool:
    return not a.organisations or not b.organisations or bool(a.organisations & b.organisations)


def match(a: Fingerprint, b: Fingerprint) -> str | None:
    """Why ``a`` and ``b`` describe the same thing, or ``None``."""
    if a.url_key and a.url_key == b.url_key:  # within one source: language versions of one page
        return "same_url"
    if not countries_compatible(a, b):
        return None
    if a.text_key and a.text_key == b.text_key:
        return "same_text"
    if a.title_key and a.title_key == b.title_key and (a.source_id != b.source_id or organisations_compatible(a, b)):
        return "same_title"
    if a.signature is None or b.signature is None:
        return None
    text_similarity = estimated_jaccard(a.signature, b.signature)
    if text_similarity >= TEXT_JACCARD:
        return "similar_text"
    if text_similarity >= TITLE_TEXT_JACCARD and jaccard(a.title_words, b.title_words) >= TITLE_WORDS_JACCARD:
        return "similar_title"
    return None


def candidate_pairs(prints: Sequence[Fingerprint]) -> Iterable[tuple[int, int]]:
    """Index pairs sharing at least one index key (each pair once)."""
    buckets: dict[str, list[int]] = defaultdict(list)
    for i, fp in enumerate(prints):
        for key in fp.index_keys():
            buckets[key].append(i)
    seen: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) < 2 or len(members) > MAX_BUCKET:
            continue
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                pair = (i, j) if i < j else (j, i)
                if pair not in seen:
                    seen.add(pair)
                    yield pair


def cluster_id(keys: Iterable[Hashable]) -> str:
    """A cluster's id: ``dup-`` + its smallest member key (stable while that member stays)."""
    return f"dup-{min(keys, key=_sort_key)}"


def _sort_key(key: Hashable) -> tuple[int, int, str]:
    return (0, key, "") if isinstance(key, int) else (1, 0, str(key))


def clusters(records: Sequence[DupRecord]) -> dict[Hashable, str]:
    """Cluster id of every record that has at least one near-duplicate (others are left out)."""
    return cluster_fingerprints([r.key for r in records], [fingerprint(r) for r in records])


def cluster_fingerprints(keys: Sequence[Hashable], prints: Sequence[Fingerprint]) -> dict[Hashable, str]:
    """``clusters`` over precomputed fingerprints (``keys[i]`` names ``prints[i]``)."""
    parent = list(range(len(prints)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in candidate_pairs(prints):
        if find(i) != find(j) and match(prints[i], prints[j]):
            parent[find(i)] = find(j)
    groups: dict[int, list[Hashable]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[find(i)].append(key)
    out: dict[Hashable, str] = {}
    for members in groups.values():
        if len(members) > 1:
            cid = cluster_id(members)
            out.update(dict.fromkeys(members, cid))
    return out


def cluster_number(cluster: str | None) -> tuple[int, int, str]:
    """Sort key of a cluster id: ``dup-12`` before ``dup-120``; foreign ids last."""
    if cluster and cluster.startswith("dup-") and cluster[4:].isdigit():
        return (0, int(cluster[4:]), "")
    return (1, 0, cluster or "")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
