"""`restore` split into its segments, so that several processes or machines render one long video.

`prepare` runs once (the checks, the analyses of two-pass stages, the job's manifest), `render(i)`
once per segment in any order and anywhere that sees the same work directory, and `join` once:
it commits the segments to the manifest in order and muxes the output exactly as `restore` does.
Segment boundaries and each segment's encoder are those of `restore`, so the output is the same
as an uninterrupted single-process run. Each rendered segment is kept beside its record, so a
killed worker costs only its own segment, and running the same split again renders only what is
missing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import VidrestoreError
from ..io.encode import EncodeSettings, SegmentEncoder
from ..io.mux import mux_output
from ..io.paths import check_output, content_hash, fsync_file, output_lock
from ..io.reader import VideoReader
from ..io.segments import Job, SegmentRecord
from .runner import DEFAULT_SEGMENT_FRAMES, RestorePlan, RestoreResult, default_work_dir, frame_source, open_job, \
    plan_restore, run_analyses
from .stage import Stage


@dataclass(frozen=True)
class SegmentedRestore:
    """The arguments of one `restore` call (see `vidrestore.restore`), picklable, to be rendered segment by segment."""

    input: Path
    output: Path
    stages: tuple[Stage, ...] = ()
    encode: EncodeSettings = EncodeSettings()
    overwrite: bool = False
    work_dir: Path | None = None
    segment_frames: int = DEFAULT_SEGMENT_FRAMES
    drop_subtitles: bool = False
    image_fps: Fraction | None = None

    def _plan(self) -> RestorePlan:
        return plan_restore(self.input, self.output, self.encode, stages=self.stages, overwrite=self.overwrite,
                            drop_subtitles=self.drop_subtitles, image_fps=self.image_fps)

    def _open(self) -> tuple[RestorePlan, Job, str]:
        if self.segment_frames < 1:
            raise VidrestoreError(f"segment_frames must be at least 1, not {self.segment_frames}")
        p = self._plan()
        if p.png:
            raise VidrestoreError("a PNG-sequence output is written frame by frame, not in segments", self.output)
        in_hash = content_hash(self.input)
        return p, open_job(self.input, self.output, p, self.stages, self._root(), self.segment_frames, in_hash), in_hash

    def _root(self) -> Path:
        return Path(self.work_dir) if self.work_dir is not None else default_work_dir()

    def prepare(self) -> list[int]:
        """Check everything `restore` checks, run the stages' analyses; return the segments still to render."""
        p, job, in_hash = self._open()
        run_analyses(self.stages, VideoReader(self.input, p.info), in_hash, self._root(), False)
        count = max(1, math.ceil(p.info.frame_count / self.segment_frames))
        return [i for i in range(job.segments_done, count) if job.stored(i) is None]

    def render(self, index: int, last: bool) -> int:
        """Render segment `index` into the work directory (`last`: up to the end of the video, whatever its
        stated length); returns its frame count. A segment already rendered intact is kept."""
        p, job, in_hash = self._open()
        if index < job.segments_done:
            return job.records()[index].count
        done = job.stored(index)
        if done is not None:
            return done.count
        reader = VideoReader(self.input, p.info)
        run_analyses(self.stages, reader, in_hash, self._root(), False)
        n = self.segment_frames
        start, end = index * n, None if last else (index + 1) * n
        reach = sum(s.radius for s in self.stages)
        frames, passthrough = frame_source(reader, self.stages, p.plan, False, start, None if end is None else end + reach)
        enc: SegmentEncoder | None = None
        pts: list[int] = []
        try:
            for f in frames:
                if f.index < start:
                    continue
                if end is not None and f.index >= end:
                    break
                if enc is None:
                    enc = SegmentEncoder(job.segment_path(index), p.plan)
                if passthrough:
                    enc.write_native(f.frame, f.pts)
                else:
                    enc.write(f.rgb, f.pts)
                pts.append(f.pts)
            packets: list[int] = []
            if enc is not None:
                packets = enc.close()
                enc = None
                fsync_file(job.segment_path(index))
        except BaseException:
            if enc is not None:
                enc.abort()
            raise
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        job.store(SegmentRecord(index, start, len(pts), pts, packets))
        return len(pts)

    def join(self, reused: int = 0) -> RestoreResult:
        """Commit the rendered segments in order and write the output (`reused`: segments an earlier run rendered)."""
        t0 = time.perf_counter()
        with output_lock(self.output):
            p, job, _ = self._open()
            check_output(p.reads, self.output, self.overwrite)
            if not job.complete:
                index = job.segments_done
                while True:
                    record = job.stored(index)
                    if record is None:
                        break
                    if record.count:
                        job.commit(record)
                    if record.count < self.segment_frames:
                        break
                    index += 1
                records = job.records()
                count = max(1, math.ceil(p.info.frame_count / self.segment_frames))
                if len(records) < count and (not records or records[-1].count == self.segment_frames):
                    raise VidrestoreError(f"segment {len(records)} of {count} has not been rendered", self.input)
                total = records[-1].first + records[-1].count if records else 0
                if total == 0:
                    raise VidrestoreError("no frames to write", self.input)
                job.finish(total)
            segments = [(job.segment_path(r.index), r.packet_pts) for r in job.records()]
            mux_output(segments, p.info, p.plan.time_base, p.plan.fps, self.output, p.tracks)
            frames, total_segments = int(job.manifest["frames"]), job.segments_done
            job.remove()
        return RestoreResult(self.output, frames, total_segments, reused, time.perf_counter() - t0, p.plan.describe(), p.notes)

