"""The one place where stages run over a video: analysis passes, segments, resume, final mux."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av

from ..errors import VidrestoreError, disk_full
from ..io.cache import cache_ready, mark_complete
from ..io.colour import AVCOL_BY_MATRIX, native_format
from ..io.encode import EncodeSettings, OutputPlan, SegmentEncoder, plan_output
from ..io.images import write_image
from ..io.mux import TrackPlan, mux_output, plan_tracks, resolve_output
from ..io.paths import check_output, config_key, content_hash, fsync_file, output_lock
from ..io.probe import VideoInfo, probe
from ..io.reader import Frame, VideoReader, stream_colour
from ..io.segments import Job, SegmentRecord
from ..util.prefetch import DEPTH as PREFETCH_DEPTH
from ..util.prefetch import prefetch
from ..util.progress import progress_bar
from .stage import Stage, apply_stages

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_FRAMES = 240
_FORMAT_VERSION = 1  # bump when the meaning of a job's files changes


def default_work_dir() -> Path:
    """$VIDRESTORE_WORK_DIR, else $XDG_CACHE_HOME/vidrestore, else ~/.cache/vidrestore."""
    if os.environ.get("VIDRESTORE_WORK_DIR"):
        return Path(os.environ["VIDRESTORE_WORK_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vidrestore"


@dataclass
class RestoreResult:
    """What a run did: output path, frames written, segments rendered now vs reused from a killed run."""

    output: Path
    frames: int
    segments: int
    segments_reused: int
    seconds: float
    plan: str
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds: "check", "analysis", "render", "mux"
    analyses: dict[str, str] = field(default_factory=dict)  # two-pass stage name -> its cached analysis folder


def run_analyses(
    stages: Sequence[Stage], reader: VideoReader, in_hash: str, work_root: Path, show_progress: bool
) -> dict[str, str]:
    """Run (or load from cache) the analysis pass of every two-pass stage, in order; returns each
    two-pass stage's cache folder by stage name.

    Stage k's analysis sees the output of stages 0..k-1; its result is cached under a key of the
    input's content and the configuration of stages 0..k.
    """
    configs = [{"name": s.name, **s.config()} for s in stages]
    folders: dict[str, str] = {}
    for k, stage in enumerate(stages):
        if not stage.two_pass:
            continue
        cache = work_root / "cache" / f"{stage.name}-{config_key(_FORMAT_VERSION, in_hash, configs[: k + 1])}"
        if not cache_ready(cache, _FORMAT_VERSION):
            cache.mkdir(parents=True, exist_ok=True)
            bar = progress_bar(reader.info.frame_count, f"analyse ({stage.name})", show_progress)

            def counted(frames: Iterator[Frame]) -> Iterator[Frame]:
                for f in frames:
                    yield f
                    bar.update(1)

            try:
                stage.analyze(counted(apply_stages(stages[:k], prefetch(reader.frames()))), reader.info, cache)
            finally:
                bar.close()
            mark_complete(cache, _FORMAT_VERSION)
        stage.load(cache)
        folders[stage.name] = str(cache)
    return folders


class _PngSegments:
    """PNG-sequence output: frames written straight into a hidden folder beside the output."""

    def __init__(self, output: Path, depth: int):
        self.tmp = output.with_name(f".{output.name}.vidrestore-partial")
        self.depth = depth

    def reset(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def write(self, frame: Frame) -> None:
        write_image(self.tmp / f"{frame.index:06d}.png", frame.rgb, self.depth)

    def finish(self, output: Path) -> None:
        if output.exists():
            old = output.with_name(f".{output.name}.vidrestore-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(output, old)
            os.replace(self.tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, output)


def restore(
    input: str | os.PathLike,
    output: str | os.PathLike,
    stages: Sequence[Stage] = (),
    encode: EncodeSettings = EncodeSettings(),
    *,
    overwrite: bool = False,
    work_dir: str | os.PathLike | None = None,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    progress: bool = True,
    drop_subtitles: bool = False,
    image_fps: Fraction | None = None,
) -> RestoreResult:
    """Run `stages` over every frame of `input` and write `output`, resumably.

    With no stages this is a faithful re-encode: same frame count, per-frame timestamps, colour
    tags, rotation and bit depth; audio and subtitles copied. Work is done in segments of
    `segment_frames` frames recorded in a work directory; running the same call again after an
    interruption (even SIGKILL) continues after the last finished segment. The output appears
    only when complete (written beside it under a hidden name, then renamed); no input (nor a
    file a stage reads, such as a guide) is ever overwritten, an existing output only with
    `overwrite=True`, and while one run writes an output a second run that wants it refuses.

    Args:
        input: video file or image folder.
        output: video file (container from the extension) or a folder for a PNG sequence.
        stages: stages to apply in order (see `vidrestore.pipeline.create_stage`).
        encode: output codec, CRF and preset (no codec: h264, or what the container holds).
        overwrite: replace an existing output.
        work_dir: where segments and analyses live (default: see `default_work_dir`).
        segment_frames: frames per resumable segment.
        progress: show a progress bar on a terminal.
        drop_subtitles: leave subtitle tracks out instead of failing when the container cannot hold them.
        image_fps: frame rate of an image-folder input (default 25).
    """
    t0 = time.perf_counter()
    inp, out = Path(input), Path(output)
    if segment_frames < 1:
        raise VidrestoreError(f"segment_frames must be at least 1, not {segment_frames}")
    p = plan_restore(inp, out, encode, stages=stages, overwrite=overwrite, drop_subtitles=drop_subtitles, image_fps=image_fps)
    work_root = Path(work_dir) if work_dir is not None else default_work_dir()
    phases = {"check": time.perf_counter() - t0}
    with output_lock(out):
        check_output(p.reads, out, overwrite, folder=p.png)  # again: another run may have finished it meanwhile
        frames, segments, reused, analyses = _run(inp, out, p, stages, work_root, segment_frames, progress, phases)
    return RestoreResult(out, frames, segments, reused, time.perf_counter() - t0, p.plan.describe(), p.notes, phases, analyses)


def memory_needed(info: VideoInfo, stages: Sequence[Stage]) -> int:
    """Bytes that the frames in flight take: the read-ahead, each stage's window and working copies
    (float32 RGB, four copies a stage, at the size of its output when that is larger), the frame being encoded."""
    w, h = info.width, info.height
    pixels = (PREFETCH_DEPTH + 1) * w * h
    for s in stages:
        out_w, out_h = s.output_size(w, h)
        pixels += (2 * s.radius + 1) * w * h + 4 * max(w * h, out_w * out_h)
        w, h = out_w, out_h
    return (pixels + w * h) * 3 * 4


def output_info(info: VideoInfo, stages: Sequence[Stage]) -> VideoInfo:
    """`info` as the output's encoder sees it: the size after every stage; an untagged colour matrix, which
    players guess from the size, tagged as the one the input was decoded with when the size changes."""
    w, h = info.width, info.height
    for s in stages:
        w, h = s.output_size(w, h)
    if (w, h) == (info.width, info.height):
        return info
    colour = info.colour
    if info.kind == "video" and colour.matrix in (None, 2):
        colour = replace(colour, matrix=AVCOL_BY_MATRIX[stream_colour(info).matrix])
    return replace(info, width=w, height=h, colour=colour)


def _size(n: int) -> str:
    """Bytes in words: MB, or GB from a gigabyte on."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux MemAvailable; else all physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass
class RestorePlan:
    """What `plan_restore` settled before any work: the input, the encoding, the other tracks, notes."""

    info: VideoInfo
    plan: OutputPlan
    png: bool
    tracks: list[TrackPlan]
    reads: list[Path]
    notes: list[str]


def plan_restore(input: str | os.PathLike, output: str | os.PathLike, encode: EncodeSettings = EncodeSettings(), *,
                 stages: Sequence[Stage] = (), overwrite: bool = False, drop_subtitles: bool = False,
                 image_fps: Fraction | None = None) -> RestorePlan:
    """Every check `restore` makes before any work (input, output safety, codec and container, tracks).

    Callers that work long before they restore (training) call it first, so a bad output fails at once.
    """
    inp, out = Path(input), Path(output)
    info = probe(inp, image_fps)
    for stage in stages:
        stage.check(info)
    encode, note = resolve_output(out, encode)
    png = encode.codec == "png"
    reads = [inp, *(path for s in stages for path in s.inputs())]
    check_output(reads, out, overwrite, folder=png)
    plan = plan_output(output_info(info, stages), encode)
    notes: list[str] = [note] if note else []
    need, have = memory_needed(info, stages), available_memory()
    if need > have:
        raise VidrestoreError(f"frames of {info.width}x{info.height} need about {_size(need)} of memory to process; "
                              f"{_size(have)} is available", inp)
    if need > have / 2:
        notes.append(f"frames of {info.width}x{info.height} need about {_size(need)} of the {_size(have)} of memory available")
    tracks: list[TrackPlan] = []
    if png:
        if info.tracks:
            notes.append(f"a PNG sequence holds video only: {len(info.tracks)} other track(s) not written")
    else:
        tracks = plan_tracks(info, out, drop_subtitles)
        notes += [t.note for t in tracks if t.note]
    return RestorePlan(info, plan, png, tracks, reads, notes)


def open_job(inp: Path, out: Path, p: RestorePlan, stages: Sequence[Stage], work_root: Path, segment_frames: int,
             in_hash: str) -> Job:
    """The work directory of this output: keyed by the input's content and every setting that changes the output."""
    configs = [{"name": s.name, **s.config()} for s in stages]
    key = config_key(_FORMAT_VERSION, in_hash, str(out.absolute()), configs, p.plan.codec, p.plan.options,
                     p.plan.layout.name, segment_frames, [t.action for t in p.tracks])
    try:
        return Job(work_root, key, {"input": str(inp.absolute()), "output": str(out.absolute()), "stages": configs}, segment_frames)
    except OSError as err:
        raise VidrestoreError(f"cannot use work directory ({err.strerror or err})", work_root) from None


def frame_source(reader: VideoReader, stages: Sequence[Stage], plan: OutputPlan, png: bool, start: int,
                 stop: int | None = None) -> tuple[Iterator, bool]:
    """The frames from `start` on, processed (reading from `stop` on left out), and whether they go to the
    encoder as decoded: with no stages and an output in the input's own pixel format (bit-exact, and no
    float RGB round trip to pay for)."""
    reach = sum(s.radius for s in stages)
    passthrough = (not stages and not png and reader.info.kind == "video"
                   and plan.layout.name == native_format(reader.info.pix_fmt))
    if passthrough:
        return prefetch(reader.native_frames(start, stop)), True
    return apply_stages(stages, prefetch(reader.frames(max(0, start - reach), stop))), False


def _run(inp: Path, out: Path, p: RestorePlan, stages: Sequence[Stage], work_root: Path, segment_frames: int,
         progress: bool, phases: dict[str, float]) -> tuple[int, int, int, dict[str, str]]:
    """The work of `restore` once its output is checked and locked; returns (frames, segments, segments reused,
    analysis folders) and adds the seconds of each phase to `phases`."""
    info, plan, tracks = p.info, p.plan, p.tracks
    in_hash = content_hash(inp)
    job = open_job(inp, out, p, stages, work_root, segment_frames, in_hash)
    writing = work_root  # where a full disk would be: the work directory until the final file is written
    try:
        reader = VideoReader(inp, info)
        reused = job.segments_done
        t = time.perf_counter()
        analyses = run_analyses(stages, reader, in_hash, work_root, progress)
        phases["analysis"] = time.perf_counter() - t
        t = time.perf_counter()
        pngs = _PngSegments(out, plan.layout.depth) if p.png else None
        if pngs is not None:
            writing = out
        if not job.complete:
            _render(job, reader, stages, plan, pngs, progress)
        writing = out
        phases["render"] = time.perf_counter() - t
        t = time.perf_counter()
        if pngs is not None:
            pngs.finish(out)
        else:
            segments = [(job.segment_path(r.index), r.packet_pts) for r in job.records()]
            mux_output(segments, info, plan.time_base, plan.fps, out, tracks)
        phases["mux"] = time.perf_counter() - t
        frames = int(job.manifest["frames"])
        total_segments = job.segments_done
        job.remove()
    except VidrestoreError:
        raise
    except BaseException as err:
        if disk_full(err):
            where = "the output" if writing == out else "the work directory (choose another with --work-dir)"
            raise VidrestoreError(
                f"disk full while writing {where} ({os.strerror(err.errno)}); nothing that existed was changed; "
                f"finished segments are kept in {job.dir} and the same command resumes after space is freed",
                writing,
            ) from None
        if isinstance(err, av.FFmpegError):
            raise VidrestoreError(f"writing failed ({err})", out) from None
        raise
    return frames, total_segments, reused, analyses


def _render(job: Job, reader: VideoReader, stages: Sequence[Stage], plan: OutputPlan,
            pngs: _PngSegments | None, show_progress: bool) -> None:
    """Encode every segment not yet committed, continuing from the first missing one (see `frame_source`)."""
    n = job.segment_frames
    first_seg = job.segments_done
    start = first_seg * n
    if pngs is not None and first_seg == 0:
        pngs.reset()
    frames, passthrough = frame_source(reader, stages, plan, pngs is not None, start)
    bar = progress_bar(reader.info.frame_count, "restore", show_progress, initial=start)
    enc: SegmentEncoder | None = None
    seg_pts: list[int] = []
    seg_index = first_seg
    t_start, done_now = time.perf_counter(), 0

    def commit() -> None:
        nonlocal enc, seg_pts, seg_index
        packets: list[int] = []
        if enc is not None:
            packets = enc.close()
            fsync_file(job.segment_path(seg_index))
            enc = None
        job.commit(SegmentRecord(seg_index, seg_index * n, len(seg_pts), seg_pts, packets))
        if bar.disable:
            rate = done_now / max(time.perf_counter() - t_start, 1e-9)
            total = reader.info.frame_count
            eta = f", ETA {int((total - (seg_index * n + len(seg_pts))) / rate)} s" if rate > 0 and total else ""
            log.info("segment %d done: %d/%s frames, %.1f fps%s", seg_index, seg_index * n + len(seg_pts), total, rate, eta)
        seg_pts = []
        seg_index += 1

    try:
        for f in frames:
            if f.index < start:
                continue
            if pngs is not None:
                pngs.write(f)
            else:
                if enc is None:
                    enc = SegmentEncoder(job.segment_path(seg_index), plan)
                if passthrough:
                    enc.write_native(f.frame, f.pts)
                else:
                    enc.write(f.rgb, f.pts)
            seg_pts.append(f.pts)
            done_now += 1
            bar.update(1)
            if len(seg_pts) == n:
                commit()
        if seg_pts:
            commit()
        records = job.records()
        total = records[-1].first + records[-1].count if records else 0
        if total == 0:
            raise VidrestoreError("no frames to write", reader.path)
        job.finish(total)
    except BaseException:
        if enc is not None:
            enc.abort()
        raise
    finally:
        bar.close()
