"""Handheld-shake benchmark clips from a sharp video: OIS-aware blur with ground truth and labels.

`synth_handheld(source, out_dir)` writes three files into `out_dir`:

* ``blurry.mkv`` -- each frame is the source frame averaged over its exposure under the residual
  camera motion left by optical image stabilization (see `vidrestore.synth.shake`): the frame
  warped by the residual homography K R(t) K^-1 (plus a small translation) at every exposure
  sample, averaged in linear light (sRGB undone before, reapplied after). Samples are spaced so
  that the streak has no gap wider than 0.5 px (at least 16 per exposure). Optional phone
  degradations: Poisson-Gaussian sensor noise (in linear light) and H.264 at a CRF; lossless
  FFV1 otherwise;
* ``gt.mkv`` -- the ground truth: the same source frame warped to the mid-exposure pose, no blur
  (lossless FFV1). Sharp and blurry frames share this geometry, so they are pixel-aligned with it;
* ``labels.json`` -- the settings and, per frame, whether it is sharp.

Both videos have the source's frame rate and frame count (or the requested part of it) and its
size (or the requested scale). The same source, settings and seed give the same files.

labels.json (version 1)::

    {
      "version": 1, "synth_version": 1,
      "source": "/path/sharp.mp4", "start": 0, "frame_count": 60, "scale": 0.5,
      "width": 640, "height": 360, "fps": 29.97,
      "settings": {"exposure": 0.6, "ois_strength": 0.99, "sharp_share": 0.35, "blur_strength": 1.0,
                   "sharp_threshold_px": 0.4, "hfov_deg": 70.0, "samples_per_frame": 32, "seed": 0},
      "noise": {"shot": 0.004, "read": 0.003} or null, "crf": 23 or null,
      "sharp_share": 0.35,            # the share reached (within 0.1 of the request)
      "ois_stroke_deg": 1.2, "zoom": 1.15, "focal_px": 525.0,
      "files": {"blurry": "blurry.mkv", "gt": "gt.mkv"},
      "frames": [
        {"index": 0,                  # frame of the output clip (source frame start + index)
         "sharp": true,               # blur_extent_px < settings.sharp_threshold_px
         "blur_extent_px": 0.31,      # longest blur streak anywhere in the frame, output pixels
         "trajectory": {              # residual camera motion at the exposure samples
           "t_ms": [...],             # sample times from the start of the frame interval
           "rotation_deg": [[pitch, yaw, roll], ...],
           "translation_px": [[x, y], ...],
           "path_px": [[dx, dy], ...] # the frame centre's blur path relative to mid-exposure
         }},
        ...
      ]
    }

The blur extent is measured in output pixels on a 3x3 grid of points (corners, edge midpoints,
centre) as the diameter of each point's path during the exposure. Scene motion in the source is
kept as it is (no extra object-motion blur is synthesized); rolling shutter is not modelled.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io import EncodeSettings, write_video
from ..io.paths import atomic_write_text, read_versioned_json
from ..util.progress import progress_bar
from .sensor import linear_to_srgb, poisson_gaussian_noise, srgb_to_linear
from .shake import ShakePlan, ShakeSettings, blur_paths, plan_shake
from .source import SourceClip, output_files, source_clip

LABELS_VERSION = 1
SYNTH_VERSION = 1  # bump when the same settings would render different frames (caches are keyed on it)
FILES = {"blurry": "blurry.mkv", "gt": "gt.mkv", "labels": "labels.json"}
_WARP = dict(flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)


@dataclass
class HandheldResult:
    """Where the clip went and what it holds."""

    dir: Path
    blurry: Path
    gt: Path
    labels: Path
    frames: int
    sharp_share: float
    seconds: float


def render_gt(linear: np.ndarray, plan: ShakePlan, index: int) -> np.ndarray:
    """The source frame (linear light) at frame `index`'s mid-exposure pose, sRGB-encoded."""
    return linear_to_srgb(cv2.warpPerspective(linear, plan.h_mid[index], (plan.width, plan.height), **_WARP))


def render_blurry(linear: np.ndarray, plan: ShakePlan, index: int) -> np.ndarray:
    """The exposure average of the warped source frame (linear light, not yet encoded)."""
    hs = plan.homographies_at(plan.render_times(index))
    acc = np.zeros_like(linear)
    for h in hs:
        acc += cv2.warpPerspective(linear, h, (plan.width, plan.height), **_WARP)
    return acc / len(hs)


def labels_dict(plan: ShakePlan, clip: SourceClip, noise: tuple[float, float] | None, crf: int | None) -> dict:
    """The labels.json content (schema in the module docstring)."""
    centre = np.array([[(plan.width - 1) / 2, (plan.height - 1) / 2]])
    paths = blur_paths(plan.h_exp, plan.h_mid, centre)[:, :, 0] - centre[0]
    frames = []
    for i in range(len(plan.extent)):
        frames.append({
            "index": i,
            "sharp": bool(plan.sharp[i]),
            "blur_extent_px": float(plan.extent[i]),
            "trajectory": {
                "t_ms": np.round((plan.times[i] - i / plan.fps) * 1000, 4).tolist(),
                "rotation_deg": np.round(np.degrees(plan.rot_exp[i]), 6).tolist(),
                "translation_px": np.round(plan.trans_exp[i], 4).tolist(),
                "path_px": np.round(paths[i], 4).tolist(),
            },
        })
    return {
        "version": LABELS_VERSION,
        "synth_version": SYNTH_VERSION,
        "source": str(clip.path.absolute()),
        "start": clip.start,
        "frame_count": clip.count,
        "scale": clip.scale,
        "width": plan.width,
        "height": plan.height,
        "fps": float(clip.fps),
        "settings": asdict(plan.settings),
        "noise": {"shot": noise[0], "read": noise[1]} if noise else None,
        "crf": crf,
        "sharp_share": round(float(plan.sharp.mean()), 4),
        "ois_stroke_deg": round(float(np.degrees(plan.stroke_rad)), 4),
        "zoom": round(plan.zoom, 4),
        "focal_px": round(plan.focal_px, 3),
        "files": {"blurry": FILES["blurry"], "gt": FILES["gt"]},
        "frames": frames,
    }


def load_labels(path: str | os.PathLike) -> dict:
    """Read labels.json (or the labels.json inside a synth output folder)."""
    return read_versioned_json(path, FILES["labels"], LABELS_VERSION, "`vidrestore synth handheld`")


def synth_handheld(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    shake: ShakeSettings = ShakeSettings(),
    *,
    start: int = 0,
    frames: int | None = None,
    scale: float = 1.0,
    noise: tuple[float, float] | None = None,
    crf: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> HandheldResult:
    """Make a handheld-shake clip (blurry.mkv, gt.mkv, labels.json) from a sharp video.

    Args:
        source: a sharp video (or image folder).
        out_dir: output folder (created; its three files are replaced only with `overwrite`).
        shake: camera shake, stabilizer and exposure settings, and the seed.
        start, frames: use source frames start..start+frames-1 (default: all from `start`).
        scale: resize the source first (0.5 turns 1280x720 into 640x360; sizes are made even).
        noise: (shot, read) Poisson-Gaussian sensor noise in linear light for blurry.mkv; None for none.
        crf: encode blurry.mkv with H.264 at this CRF (phone-like); None for lossless FFV1.
        overwrite: replace existing output files.
        progress: show progress bars.
    """
    t0 = time.perf_counter()
    clip = source_clip(source, start, frames, scale)
    paths = output_files(clip, out_dir, FILES, overwrite)
    if noise is not None and (noise[0] < 0 or noise[1] < 0):
        raise VidrestoreError(f"noise levels must be non-negative, not {noise}")
    blurry_enc = EncodeSettings("h264", crf) if crf is not None else EncodeSettings("ffv1")
    blurry_enc.spec()
    plan = plan_shake(clip.count, float(clip.fps), clip.width, clip.height, shake)

    def rendered(kind: str) -> Iterator[np.ndarray]:
        bar = progress_bar(clip.count, f"synth {kind}", progress)
        try:
            for i, rgb in enumerate(clip.frames()):
                linear = srgb_to_linear(rgb)
                if kind == "gt":
                    yield render_gt(linear, plan, i)
                else:
                    blurred = render_blurry(linear, plan, i)
                    if noise is not None:
                        blurred = poisson_gaussian_noise(blurred, *noise, np.random.default_rng([shake.seed, 0x401, i]))
                    yield linear_to_srgb(blurred)
                bar.update(1)
        finally:
            bar.close()

    write_video(paths["gt"], rendered("gt"), clip.fps, EncodeSettings("ffv1"), overwrite=overwrite)
    write_video(paths["blurry"], rendered("blurry"), clip.fps, blurry_enc, overwrite=overwrite)
    atomic_write_text(paths["labels"], json.dumps(labels_dict(plan, clip, noise, crf), indent=1))
    return HandheldResult(Path(out_dir), paths["blurry"], paths["gt"], paths["labels"], clip.count,
                          float(plan.sharp.mean()), time.perf_counter() - t0)
