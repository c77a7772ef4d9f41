"""Run a suite: make (or reuse) its clips, run every method on every clip, score, tabulate.

Synthesized clips and trimmed real clips are cached in the work directory under a key of the
source's content and the settings that made them, so re-running a suite (or a suite sharing
clips) only runs the methods. Methods write lossless FFV1, so scores measure the method, not a
codec. Everything a method does is timed (training included, for methods that train).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VidrestoreError
from ..io import EncodeSettings, write_video
from ..io.paths import config_key, content_hash
from ..metrics.report import evaluate_videos
from ..pipeline import default_work_dir
from ..synth.handheld import SYNTH_VERSION, load_labels, synth_handheld
from ..synth.shake import ShakeSettings
from ..synth.source import source_clip
from .methods import MethodCall, get_method
from .suite import ClipSpec, Suite

log = logging.getLogger(__name__)


@dataclass
class MethodResult:
    """One method on one clip: its wall time, its own timing breakdown, and the metric summary."""

    label: str
    method: str
    options: dict
    trains: bool
    wall_s: float
    timings: dict
    summary: dict


@dataclass
class ClipResult:
    """One clip: how it was made and every method's result on it."""

    name: str
    source: str
    has_gt: bool
    frames: int
    sharp_frames: int | None
    width: int
    height: int
    settings: dict
    prepare_s: float
    methods: dict[str, MethodResult] = field(default_factory=dict)


@dataclass
class PreparedClip:
    input: Path
    reference: Path
    labels: list[bool] | None
    info: dict


def prepare_clip(spec: ClipSpec, cache: Path, progress: bool) -> PreparedClip:
    """Synthesize (or trim) the clip into the cache, or reuse what an earlier run made."""
    if not spec.source.exists():
        raise VidrestoreError(f"source of clip {spec.name!r} not found (set the suite's `data` or pass --data)", spec.source)
    params = dict(spec.synth if spec.has_gt else spec.real)
    key = config_key("bench-clip", SYNTH_VERSION, content_hash(spec.source), spec.has_gt, sorted(params.items()))
    folder = cache / f"{spec.name}-{key}"
    if spec.has_gt:
        if not (folder / "labels.json").exists():
            shake = ShakeSettings(**{k: v for k, v in params.items() if k in ShakeSettings.__dataclass_fields__})
            noise = params.get("noise")
            synth_handheld(spec.source, folder, shake, start=params.get("start", 0), frames=params.get("frames"),
                           scale=params.get("scale", 1.0), noise=tuple(noise) if noise else None,
                           crf=params.get("crf"), overwrite=True, progress=progress)
        labels = load_labels(folder)
        flags = [f["sharp"] for f in labels["frames"]]
        info = {"frames": len(flags), "sharp_frames": sum(flags), "width": labels["width"], "height": labels["height"],
                "settings": {**params, "sharp_share": labels["sharp_share"]}}
        return PreparedClip(folder / "blurry.mkv", folder / "gt.mkv", flags, info)
    clip = source_clip(spec.source, params.get("start", 0), params.get("frames"), params.get("scale", 1.0))
    path = folder / "input.mkv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_video(path, clip.frames(), clip.fps, EncodeSettings("ffv1"), overwrite=True)
    info = {"frames": clip.count, "sharp_frames": None, "width": clip.width, "height": clip.height, "settings": params}
    return PreparedClip(path, path, None, info)


def run_suite(
    suite: Suite,
    out_dir: str | os.PathLike,
    *,
    work_dir: str | os.PathLike | None = None,
    methods: list[str] | None = None,
    clips: list[str] | None = None,
    keep_videos: bool = False,
    progress: bool = True,
) -> list[ClipResult]:
    """Run `suite` and write results.md, results.json and per-frame CSVs into `out_dir`.

    Args:
        suite: from `load_suite`.
        out_dir: results folder (created; its result files are replaced).
        work_dir: cache of clips and scratch space (default: the pipeline's work directory).
        methods, clips: run only these method labels / clip names.
        keep_videos: keep every method's output under out_dir/videos/CLIP/METHOD.mkv.
        progress: progress bars.
    """
    from .tables import write_results

    t0 = time.perf_counter()
    out = Path(out_dir)
    chosen_methods = [m for m in suite.methods if methods is None or m.label in methods]
    chosen_clips = [c for c in suite.clips if clips is None or c.name in clips]
    for kind, asked, known in (("method", methods, [m.label for m in suite.methods]), ("clip", clips, [c.name for c in suite.clips])):
        missing = sorted(set(asked or []) - set(known))
        if missing:
            raise VidrestoreError(f"suite has no {kind} {', '.join(missing)}; it has {', '.join(known)}", suite.path)
    resolved = {m.label: get_method(m.name) for m in chosen_methods}
    lpips = None
    if suite.lpips:
        from ..metrics.lpips import load_lpips

        lpips = load_lpips(suite.lpips, suite.lpips_net)
    work = Path(work_dir) if work_dir is not None else default_work_dir()
    (out / "frames").mkdir(parents=True, exist_ok=True)
    scratch = work / "bench" / "outputs"
    scratch.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in chosen_clips:
        t_clip = time.perf_counter()
        log.info("clip %s: preparing from %s", spec.name, spec.source)
        prep = prepare_clip(spec, work / "bench" / "clips", progress)
        cr = ClipResult(spec.name, str(spec.source), spec.has_gt, prep.info["frames"], prep.info["sharp_frames"],
                        prep.info["width"], prep.info["height"], prep.info["settings"], time.perf_counter() - t_clip)
        for m in chosen_methods:
            method = resolved[m.label]
            target = out / "videos" / spec.name / f"{m.label}.mkv" if keep_videos else scratch / f"{spec.name}--{m.label}.mkv"
            target.parent.mkdir(parents=True, exist_ok=True)
            call = MethodCall(prep.input, target, work / "bench" / "scratch" / m.label, dict(m.options), progress)
            call.work_dir.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            method.run(call)
            wall = time.perf_counter() - t
            if not target.exists():
                raise VidrestoreError(f"method {m.label!r} wrote no output for clip {spec.name!r}", target)
            report = evaluate_videos(target, prep.reference, gt=spec.has_gt, labels=prep.labels, crop=suite.crop,
                                     lpips=lpips, progress=progress)
            report.write_csv(out / "frames" / f"{spec.name}--{m.label}.csv")
            cr.methods[m.label] = MethodResult(m.label, m.name, m.options, method.trains, wall, dict(call.timings), report.summary())
            if not keep_videos:
                target.unlink(missing_ok=True)
            log.info("clip %s, %s: %.1f s", spec.name, m.label, wall)
        results.append(cr)
    shutil.rmtree(scratch, ignore_errors=True)
    write_results(suite, results, out, time.perf_counter() - t0)
    return results
