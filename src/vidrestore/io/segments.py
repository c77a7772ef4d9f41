"""Resumable output: a job directory of finished segments and a manifest.

A job renders the output in segments of a fixed number of frames. A segment is committed by
writing its data, then a sidecar record, then the manifest, each atomically (write, fsync,
rename), so a process killed at any instant, SIGKILL included, leaves a manifest that names only
complete segments. Running the same command again finds the job by its key (input content hash
+ every parameter that changes the output) and continues after the last committed segment.
Segment boundaries depend only on the frame index, so a resumed run encodes exactly what an
uninterrupted run does. Each record holds its segment file's checksum: a run that finds a record
unreadable or a segment changed (damaged disk, a stray edit) renders again from that segment on.
Segments may also be rendered out of order by parallel workers (`store`), each beside its own
record, and committed in order afterwards.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import atomic_write_text, content_hash

MANIFEST = "manifest.json"
VERSION = 2
log = logging.getLogger(__name__)


@dataclass
class SegmentRecord:
    """A committed segment: frames [first, first + count), their pts, and the encoded packets' pts."""

    index: int
    first: int
    count: int
    frame_pts: list[int]
    packet_pts: list[int] = field(default_factory=list)
    digest: str | None = None  # checksum of the segment file (None: the output has no segment files)


class Job:
    """The work directory of one output: segments, their records and the manifest."""

    def __init__(self, root: Path, key: str, meta: dict, segment_frames: int):
        self.dir = root / "jobs" / key
        self.segment_frames = segment_frames
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / MANIFEST
        manifest = None
        if path.exists():
            try:
                manifest = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                manifest = None
        if not manifest or manifest.get("version") != VERSION or manifest.get("segment_frames") != segment_frames:
            manifest = {"version": VERSION, "meta": meta, "segment_frames": segment_frames, "segments": 0,
                        "complete": False, "frames": None}
            atomic_write_text(path, json.dumps(manifest, indent=1))
        self.manifest = manifest
        self._drop_damaged()

    def _drop_damaged(self) -> None:
        """Forget the committed segments from the first one whose record or file is damaged."""
        for i in range(self.segments_done):
            try:
                record = self._record(i)
                intact = record.digest is None or content_hash(self.segment_path(i)) == record.digest
            except (OSError, ValueError, TypeError):
                intact = False
            if not intact:
                log.warning("%s: segment %d of an interrupted run is damaged; rendering again from there", self.dir, i)
                self.manifest.update(segments=i, complete=False, frames=None)
                atomic_write_text(self.dir / MANIFEST, json.dumps(self.manifest, indent=1))
                return

    def _record(self, index: int) -> SegmentRecord:
        """The record of committed segment `index` (raises on a missing or damaged one)."""
        return SegmentRecord(**json.loads(self.segment_path(index, ".json").read_text()))

    @property
    def segments_done(self) -> int:
        return int(self.manifest["segments"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def segment_path(self, index: int, suffix: str = ".mkv") -> Path:
        return self.dir / f"seg_{index:05d}{suffix}"

    def records(self) -> list[SegmentRecord]:
        return [self._record(i) for i in range(self.segments_done)]

    def commit(self, record: SegmentRecord) -> None:
        """Record a finished segment (its data must already be on disk and synced), with its file's checksum."""
        assert record.index == self.segments_done, (record.index, self.segments_done)
        segment = self.segment_path(record.index)
        if segment.exists():
            record.digest = content_hash(segment)
        atomic_write_text(self.segment_path(record.index, ".json"), json.dumps(asdict(record)))
        self.manifest["segments"] = record.index + 1
        atomic_write_text(self.dir / MANIFEST, json.dumps(self.manifest, indent=1))

    def store(self, record: SegmentRecord) -> None:
        """Record a segment rendered out of order (by a parallel worker) beside its file, without
        committing it: `commit` takes it into the manifest once every segment before it is there."""
        segment = self.segment_path(record.index)
        if segment.exists():
            record.digest = content_hash(segment)
        atomic_write_text(self.segment_path(record.index, ".json"), json.dumps(asdict(record)))

    def stored(self, index: int) -> SegmentRecord | None:
        """The record `store` left for segment `index` when it and its file are intact, else None."""
        try:
            record = self._record(index)
            intact = record.digest is None or content_hash(self.segment_path(index)) == record.digest
        except (OSError, ValueError, TypeError):
            return None
        return record if intact else None

    def finish(self, frames: int) -> None:
        """Record that every segment is rendered (`frames` in all); only the final mux remains."""
        self.manifest["complete"] = True
        self.manifest["frames"] = frames
        atomic_write_text(self.dir / MANIFEST, json.dumps(self.manifest, indent=1))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
