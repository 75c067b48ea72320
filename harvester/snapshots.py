"""Raw snapshots of fetched HTML pages, appended to one WARC file per run, addressed as ``path@offset``."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from warcio.warcwriter import WARCWriter

from harvester.warc import RecordedResponse, iter_responses, write_response


class SnapshotWriter:
    def __init__(self, root: Path, source_id: str, run_id: int | None) -> None:
        self.root = root
        self.relative = Path("snapshots") / source_id / f"run-{run_id or 0}.warc.gz"
        self.fh: BinaryIO | None = None
        self.writer: WARCWriter | None = None

    def write(self, response: RecordedResponse) -> str:
        if self.fh is None:
            path = self.root / self.relative
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = path.open("ab")
            self.writer = WARCWriter(self.fh, gzip=True)
        assert self.writer is not None
        offset = self.fh.tell()
        write_response(self.writer, response)
        self.fh.flush()
        return f"{self.relative.as_posix()}@{offset}"

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def read_snapshot(root: Path, ref: str) -> RecordedResponse | None:
    """The snapshot a ref points to; None when the file or record is gone (never outside ``root``)."""
    relative, _, offset = ref.rpartition("@")
    path = (root / relative).resolve()
    if not offset.isdigit() or root.resolve() not in path.parents or not path.is_file():
        return None
    with path.open("rb") as fh:
        fh.seek(int(offset))
        for response in iter_responses(fh):
            return response
    return None

