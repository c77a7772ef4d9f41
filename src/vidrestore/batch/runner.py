"""Run one job over many videos on an engine: scheduling, one progress view, the summary."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VidrestoreError
from ..io.probe import probe
from ..util.progress import progress_bar
from .engines import Engine, LocalEngine, WorkerLost
from .inputs import output_paths
from .jobs import Job, Task, TaskResult

log = logging.getLogger(__name__)


@dataclass
class VideoOutcome:
    """One video of a batch: "ok", "kept" (its output was already there) or "failed" with the one-line reason."""

    input: Path
    output: Path
    status: str = "waiting"
    frames: int = 0
    seconds: float = 0.0
    tasks: int = 0
    reason: str = ""


@dataclass
class BatchResult:
    """Every video's outcome, in input order, and the batch's wall time."""

    videos: list[VideoOutcome]
    seconds: float
    engine: str

    @property
    def failed(self) -> list[VideoOutcome]:
        return [v for v in self.videos if v.status == "failed"]

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos if v.status == "ok")

    def table(self) -> str:
        """The summary: one row per video (failures with their reason), then the totals."""
        width = max(len(str(v.input)) for v in self.videos)
        rows = [f"{'video':<{width}}  {'status':<6}  {'frames':>6}  {'tasks':>5}  {'seconds':>7}  output or reason"]
        for v in self.videos:
            if v.status == "failed":
                rows.append(f"{str(v.input):<{width}}  {'failed':<6}  {'':>6}  {v.tasks:>5}  {'':>7}  {v.reason}")
            else:
                rows.append(f"{str(v.input):<{width}}  {v.status:<6}  {v.frames:>6}  {v.tasks:>5}  {v.seconds:>7.1f}  {v.output}")
        ok = sum(v.status == "ok" for v in self.videos)
        kept = sum(v.status == "kept" for v in self.videos)
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        rows.append(f"{ok} ok, {kept} kept (output already there), {len(self.failed)} failed; {self.frames} frames in "
                    f"{self.seconds:.1f} s ({rate:.1f} frames/s, engine {self.engine})")
        return "\n".join(rows)


@dataclass
class _Video:
    """The driver's view of one video in flight."""

    outcome: VideoOutcome
    frames: int  # stated frame count (for progress)
    started: float = 0.0
    segments_left: int = 0
    reused: int = 0
    rendered: int = 0


def run_batch(videos: Sequence[Path], outdir: str | Path, job: Job, engine: Engine | None = None, *,
              progress: bool = True) -> BatchResult:
    """Run `job` on every video, writing OUTDIR/NAME for each, concurrently on `engine` (default: a local pool).

    Every video is resumable: an output already there is kept (unless the job overwrites), and an
    interrupted one continues from its finished segments when the batch runs again. A long video
    of a `RestoreJob` runs as one task per segment. A video that fails is reported (with its
    one-line reason) and never stops the others.

    Args:
        videos: input videos (see `expand_inputs`).
        outdir: output folder (made when missing).
        job: what to do with each (`RestoreJob`, `CallJob`).
        engine: where tasks run (`create_engine`); entered and left here.
        progress: show one progress bar (frames, frames/s, ETA, videos done); without a terminal,
            one log line per finished video.
    """
    t0 = time.perf_counter()
    out = Path(outdir)
    outputs = output_paths(videos, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VidrestoreError(f"cannot make the output folder ({err.strerror or err})", out) from None
    engine = engine if engine is not None else LocalEngine()
    state = [_Video(VideoOutcome(v, o), 0) for v, o in zip(videos, outputs)]
    queue: deque[Task] = deque()
    for s in state:
        v = s.outcome
        if v.output.exists() and not job.overwrite:
            v.status = "kept"
            continue
        try:
            s.frames = probe(v.input).frame_count
            kind = "prepare" if job.splits(v.output, s.frames) else "video"
        except VidrestoreError as err:
            v.status, v.reason = "failed", str(err)
            continue
        queue.append(Task(kind, job, v.input, v.output))
    by_input = {s.outcome.input: s for s in state}
    total = sum(s.frames for s in state if s.outcome.status == "waiting")
    todo = sum(1 for s in state if s.outcome.status == "waiting")
    bar = progress_bar(total, f"batch ({engine.name})", progress)
    finished = failed = done_frames = 0

    def close(s: _Video, status: str, reason: str = "") -> None:
        nonlocal finished, failed, total
        s.outcome.status, s.outcome.reason = status, reason
        s.outcome.seconds = time.perf_counter() - s.started
        finished += 1
        if status == "failed":
            failed += 1
            total -= max(0, s.frames - s.rendered)
            bar.total = total
            for t in [t for t in queue if t.input == s.outcome.input]:
                queue.remove(t)
        bar.set_postfix_str(f"videos {finished}/{todo}" + (f", {failed} failed" if failed else ""))
        if bar.disable and progress:
            elapsed = time.perf_counter() - t0
            rate = done_frames / elapsed if elapsed > 0 else 0.0
            eta = f", ETA {(total - done_frames) / rate:.0f} s" if rate > 0 else ""
            what = f"failed: {reason}" if status == "failed" else f"{s.outcome.frames} frames"
            log.info("batch: %d/%d videos; %s %s; %.1f frames/s%s", finished, todo, s.outcome.input, what, rate, eta)

    def count(s: _Video, frames: int) -> None:
        nonlocal done_frames
        s.rendered += frames
        done_frames += frames
        bar.update(frames)

    pending: dict[object, Task] = {}
    try:
        with engine if queue else contextlib.nullcontext():
            while queue or pending:
                while queue and (engine.slots is None or len(pending) < engine.slots):
                    task = queue.popleft()
                    s = by_input[task.input]
                    if not s.started:
                        s.started = time.perf_counter()
                    s.outcome.tasks += 1
                    pending[engine.submit(task)] = task
                for handle in engine.wait(list(pending), 0.5):
                    task = pending.pop(handle)
                    s = by_input[task.input]
                    if s.outcome.status == "failed":
                        continue
                    try:
                        r = engine.result(handle)
                    except WorkerLost as err:
                        r = TaskResult(error=f"{task.input}: {err}")
                    if r.error is not None:
                        close(s, "failed", r.error)
                    elif task.kind == "prepare":
                        segments: list[int] = r.value  # type: ignore[assignment]
                        n = job.segment_frames  # type: ignore[union-attr]
                        last = max(1, -(-s.frames // n)) - 1
                        s.reused = last + 1 - len(segments)
                        count(s, min(s.frames, s.reused * n))
                        s.segments_left = len(segments)
                        follow = [Task("segment", job, task.input, task.output, i, i == last) for i in segments]
                        queue.extendleft(reversed(follow or [Task("join", job, task.input, task.output, reused=s.reused)]))
                    elif task.kind == "segment":
                        count(s, r.frames)
                        s.segments_left -= 1
                        if s.segments_left == 0:
                            queue.appendleft(Task("join", job, task.input, task.output, reused=s.reused))
                    else:
                        result = r.value
                        s.outcome.frames = result.frames  # type: ignore[attr-defined]
                        if task.kind == "video":
                            count(s, result.frames)  # type: ignore[attr-defined]
                        close(s, "ok")
    finally:
        bar.close()
    return BatchResult([s.outcome for s in state], time.perf_counter() - t0, engine.name)
