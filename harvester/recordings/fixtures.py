"""Access to the recorded partner captures in the shared fixtures folder (read-only, never copied)."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from email.utils import formatdate
from functools import lru_cache
from pathlib import Path
from typing import Any

from harvester.jsonl import jsonl_lines
from harvester.settings import get_settings


class FixturesMissingError(FileNotFoundError):
    """The shared fixtures folder is not where the settings say."""


def fixtures_dir(path: Path | None = None) -> Path:
    folder = path or get_settings().fixtures_dir
    if not folder.is_dir():
        raise FixturesMissingError(
            f"fixtures folder {folder} not found: put the shared captures there or set HARVESTER_FIXTURES_DIR"
        )
    return folder


@lru_cache(maxsize=64)
def folder_index(folder: Path) -> dict[str, dict[str, Any]]:
    """``index.jsonl`` of one fixtures folder, keyed by file name."""
    index = folder / "index.jsonl"
    if not index.is_file():
        return {}
    entries = [json.loads(line) for _, line in jsonl_lines(index.read_text(encoding="utf-8")) if line.strip()]
    return {e["file"]: e for e in entries}


@dataclass(frozen=True)
class Capture:
    """One capture with what a server would have sent for it."""

    path: Path
    url: str
    content_type: str
    body: bytes
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def headers(self) -> list[tuple[str, str]]:
        modified = formatdate(self.path.stat().st_mtime, usegmt=True)
        return [
            ("Content-Type", self.content_type),
            ("ETag", self.etag),
            ("Last-Modified", modified),
            *self.extra_headers,
        ]


def load_capture(relative: str, url: str | None = None, root: Path | None = None) -> Capture:
    """Read a capture; gzip-stored files (``stored_as: gzip``) are restored to their original bytes."""
    base = fixtures_dir(root)
    path = base / relative
    if not path.is_file():
        raise FixturesMissingError(f"capture {relative} not found under {base}")
    entry = folder_index(path.parent).get(path.name, {})
    body = path.read_bytes()
    if entry.get("stored_as") == "gzip":
        body = gzip.decompress(body)
    final_url = url or entry.get("url")
    if not final_url or "{" in final_url:
        raise FixturesMissingError(f"capture {relative} has no concrete original URL; give one in the registry")
    extra: tuple[tuple[str, str], ...] = ()
    sidecar = path.with_name(path.stem + ".headers.json")
    if sidecar.is_file():
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
        headers = recorded.get("headers", recorded) if isinstance(recorded, dict) else {}
        extra = tuple((k, str(v)) for k, v in headers.items() if k.lower() in ("link", "x-total-count"))
    return Capture(path, final_url, entry.get("content_type") or "application/octet-stream", body, extra)
