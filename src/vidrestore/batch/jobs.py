"""What a batch does to each video: a restoring command with its options, as a picklable job.

A job's work is cut into tasks that an engine runs anywhere (`execute`): a whole video; or, for
a long video of a `RestoreJob`, its preparation (checks, analyses), one task per segment, and
the join (`vidrestore.pipeline.split`). Tasks never raise for a bad video: the failure comes
back as one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import VidrestoreError
from ..io.encode import EncodeSettings
from ..io.mux import resolve_output
from ..pipeline import RestoreResult, Stage, restore
from ..pipeline.runner import DEFAULT_SEGMENT_FRAMES
from ..pipeline.split import SegmentedRestore


@dataclass(frozen=True)
class RestoreJob:
    """`restore(input, output, stages, encode, ...)` on every video: `restore -s`, `stabilize`, `deflicker`.

    A video of more than `segment_frames` frames written to a file is split into one task per segment.
    """

    name: str
    stages: tuple[Stage, ...] = ()
    encode: EncodeSettings = EncodeSettings()
    overwrite: bool = False
    work_dir: Path | None = None
    segment_frames: int = DEFAULT_SEGMENT_FRAMES
    drop_subtitles: bool = False
    image_fps: Fraction | None = None

    def splits(self, output: Path, frames: int) -> bool:
        """Whether a video of `frames` frames written to `output` runs as one task per segment."""
        return frames > self.segment_frames and resolve_output(output, self.encode)[0].codec != "png"

    def segmented(self, input: Path, output: Path) -> SegmentedRestore:
        return SegmentedRestore(input, output, self.stages, self.encode, self.overwrite, self.work_dir, self.segment_frames,
                                self.drop_subtitles, self.image_fps)

    def run(self, input: Path, output: Path) -> RestoreResult:
        return restore(input, output, self.stages, self.encode, overwrite=self.overwrite, work_dir=self.work_dir,
                       segment_frames=self.segment_frames, progress=False, drop_subtitles=self.drop_subtitles,
                       image_fps=self.image_fps)


@dataclass(frozen=True)
class CallJob:
    """A restoring function run whole on every video, `fn(input, output, progress=False, **options)` (`deblur`).

    `fn` returns a `RestoreResult`, or a report that holds one as `.result`.
    """

    name: str
    fn: Callable[..., object]
    options: dict = field(default_factory=dict)

    @property
    def overwrite(self) -> bool:
        return bool(self.options.get("overwrite", False))

    def splits(self, output: Path, frames: int) -> bool:
        return False

    def run(self, input: Path, output: Path) -> RestoreResult:
        report = self.fn(input, output, progress=False, **self.options)
        return report if isinstance(report, RestoreResult) else report.result


Job = RestoreJob | CallJob


@dataclass(frozen=True)
class Task:
    """One piece of work: `kind` is "video" (whole), "prepare", "segment" (`index`; `last` reads to the end) or "join"."""

    kind: str
    job: Job
    input: Path
    output: Path
    index: int = 0
    last: bool = False
    reused: int = 0


@dataclass(frozen=True)
class TaskResult:
    """What a task did: frames rendered, the value (segments to render, or the video's RestoreResult), or the error line."""

    frames: int = 0
    value: object = None
    error: str | None = None


def execute(task: Task) -> TaskResult:
    """Run `task` in this process (what every engine's workers call)."""
    try:
        if task.kind == "video":
            r = task.job.run(task.input, task.output)
            return TaskResult(r.frames, r)
        split = task.job.segmented(task.input, task.output)
        if task.kind == "prepare":
            return TaskResult(0, split.prepare())
        if task.kind == "segment":
            return TaskResult(split.render(task.index, task.last))
        if task.kind == "join":
            return TaskResult(0, split.join(task.reused))
        raise ValueError(f"unknown task kind {task.kind!r}")
    except VidrestoreError as err:
        return TaskResult(error=str(err))
    except MemoryError:
        return TaskResult(error=f"{task.input}: out of memory")
    except Exception as err:  # noqa: BLE001 - one video's failure must not stop the others
        first = (str(err).splitlines() or [""])[0]
        return TaskResult(error=f"{task.input}: internal error: {type(err).__name__}: {first}")
