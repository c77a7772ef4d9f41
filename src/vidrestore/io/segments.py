"""Resumable output: a job directory of finished segments and a manifest.

A job renders the output in segments of a fixed number of frames. A segment is committed by
writing its data, then a sidecar record, then the manifest, each atomically (write, fsync,
rename), so a process killed at any instant, SIGKILL included, leaves a manifest that names only
complete segments. Running the same command again finds the job by its key (input content hash
+ every parameter that changes the output) and continues after the last committed segment.
Segment boundaries depend only on the frame index, so a resumed run encodes exactly what an
uninterrupted run does.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import atomic_write_text

MANIFEST = "manifest.json"
VERSION = 1


@dataclass
class SegmentRecord:
    """A committed segment: frames [first, first + count), their pts, and the encoded packets' pts."""

    index: int
    first: int
    count: int
    frame_pts: list[int]
    packet_pts: list[int] = field(default_factory=list)


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

    @property
    def segments_done(self) -> int:
        return int(self.manifest["segments"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def segment_path(self, index: int, suffix: str = ".mkv") -> Path:
        return self.dir / f"seg_{index:05d}{suffix}"

    def records(self) -> list[SegmentRecord]:
        out = []
        for i in range(self.segments_done):
            out.append(SegmentRecord(**json.loads(self.segment_path(i, ".json").read_text())))
        return out

    def commit(self, record: SegmentRecord) -> None:
        """Record a finished segment (its data must already be on disk and synced)."""
        assert record.index == self.segments_done, (record.index, self.segments_done)
        atomic_write_text(self.segment_path(record.index, ".json"), json.dumps(asdict(record)))
        self.manifest["segments"] = record.index + 1
        atomic_write_text(self.dir / MANIFEST, json.dumps(self.manifest, indent=1))

    def finish(self, frames: int) -> None:
        """Record that every segment is rendered (`frames` in all); only the final mux remains."""
        self.manifest["complete"] = True
        self.manifest["frames"] = frames
        atomic_write_text(self.dir / MANIFEST, json.dumps(self.manifest, indent=1))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
