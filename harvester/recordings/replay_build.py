"""Build the offline replay (one WARC per source) from the shared captures, into a cache folder."""

from __future__ import annotations

from pathlib import Path

from harvester.recordings.fixtures import load_capture
from harvester.recordings.warc import RecordedResponse, write_warc
from harvester.registry import SourceSpec


def build_source_replay(spec: SourceSpec, out_dir: Path, fixtures_root: Path | None = None) -> Path | None:
    """Write ``<out_dir>/<source>.warc.gz`` unless it is newer than the registry entry and captures."""
    if not spec.replay:
        return None
    captures = [load_capture(f.fixture, f.url, fixtures_root) for f in spec.replay]
    target = out_dir / f"{spec.id}.warc.gz"
    newest_input = max(c.path.stat().st_mtime for c in captures)
    if target.exists() and target.stat().st_mtime >= newest_input and _urls_match(target, captures):
        return target
    write_warc(target, (RecordedResponse(c.url, 200, c.headers(), c.body) for c in captures))
    return target


def _urls_match(target: Path, captures: list) -> bool:
    from harvester.recordings.warc import iter_responses

    with target.open("rb") as fh:
        return sorted(r.url for r in iter_responses(fh)) == sorted(c.url for c in captures)


def build_replay(specs: list[SourceSpec], out_dir: Path, fixtures_root: Path | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    built = [build_source_replay(s, out_dir, fixtures_root) for s in specs]
    return [p for p in built if p is not None]
