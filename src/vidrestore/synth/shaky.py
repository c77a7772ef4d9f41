"""Shaky clips with a known camera path, for measuring stabilizers: the handheld model without blur.

`synth_shaky(source, out_dir)` takes a tripod (still-camera) video and moves each frame by the
hand motion of `vidrestore.synth.shake` (walking sway, tremor, drift and bob; no optical
stabilizer, no exposure blur): frame i is the source frame warped by the homography
K_out R(t_i) K_src^-1 (plus the bob's shift) at mid-frame time t_i, zoomed just enough that the
shaken view stays inside the source (at most 1.3x; beyond that the border is mirrored). Writes:

* ``shaky.mkv`` -- the shaken clip (lossless FFV1);
* ``trajectory.json`` -- the settings and each frame's source -> output homography.

Since the source camera holds still, frame t maps onto frame 0 by H_0 H_t^-1: the camera path a
stabilizer should recover (`true_camera_path`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io import EncodeSettings, write_video
from ..io.paths import atomic_write_text, read_versioned_json
from ..util.progress import progress_bar
from .shake import MAX_ZOOM, ShakeSettings, camera, hand_motion, homographies, residual_at, zoom_needed
from .source import output_files, source_clip

TRAJECTORY_VERSION = 1
FILES = {"shaky": "shaky.mkv", "trajectory": "trajectory.json"}


@dataclass
class ShakyResult:
    """Where the clip went and what it holds."""

    dir: Path
    shaky: Path
    trajectory: Path
    frames: int
    zoom: float
    seconds: float


def shake_homographies(n_frames: int, fps: float, width: int, height: int, s: ShakeSettings) -> tuple[np.ndarray, float]:
    """Per-frame source -> output homographies (F, 3, 3) of the hand motion, and the zoom they include."""
    s = replace(s, ois_strength=0.0)
    s.check()
    if n_frames < 1:
        raise VidrestoreError("need at least one frame")
    k_src = camera(width, height, s.hfov_deg)
    motion = hand_motion(n_frames, fps, float(k_src[0, 0]), s)
    mids = (np.arange(n_frames) + 0.5) / fps
    rot, trans = residual_at(motion, 0.0, mids)
    zoom = min(MAX_ZOOM, 1.005 * zoom_needed(homographies(rot, trans, k_src, k_src)[:, None], width, height, 1.0))
    return homographies(rot, trans, k_src, camera(width, height, s.hfov_deg, zoom)), zoom


def true_camera_path(h: np.ndarray) -> np.ndarray:
    """(F, 3, 3) maps from frame t to frame 0 of a shaken still scene: H_0 H_t^-1."""
    return h[0] @ np.linalg.inv(h)


def load_trajectory(path: str | os.PathLike) -> dict:
    """Read trajectory.json (or the one inside a synth_shaky folder); "homographies" as an (F, 3, 3) array."""
    data = read_versioned_json(path, FILES["trajectory"], TRAJECTORY_VERSION, "synth_shaky")
    data["homographies"] = np.array(data["homographies"])
    return data


def synth_shaky(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    shake: ShakeSettings = ShakeSettings(),
    *,
    start: int = 0,
    frames: int | None = None,
    scale: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
) -> ShakyResult:
    """Make a shaky clip with a known camera path (shaky.mkv, trajectory.json) from a still-camera video.

    Args:
        source: a video shot from a tripod (or an image folder).
        out_dir: output folder (created; its files are replaced only with `overwrite`).
        shake: hand motion settings and seed (`blur_strength` scales the motion; the stabilizer and
            exposure settings are not used).
        start, frames, scale: the part of the source to use and its size (see `source_clip`).
        overwrite: replace existing output files.
        progress: show a progress bar.
    """
    t0 = time.perf_counter()
    clip = source_clip(source, start, frames, scale)
    paths = output_files(clip, out_dir, FILES, overwrite)
    h, zoom = shake_homographies(clip.count, float(clip.fps), clip.width, clip.height, shake)

    def rendered() -> Iterator[np.ndarray]:
        bar = progress_bar(clip.count, "synth shaky", progress)
        try:
            for i, rgb in enumerate(clip.frames()):
                yield cv2.warpPerspective(rgb, h[i], (clip.width, clip.height), flags=cv2.INTER_CUBIC,
                                          borderMode=cv2.BORDER_REFLECT101).clip(0.0, 1.0)
                bar.update(1)
        finally:
            bar.close()

    write_video(paths["shaky"], rendered(), clip.fps, EncodeSettings("ffv1"), overwrite=overwrite)
    data = {"version": TRAJECTORY_VERSION, "source": str(clip.path.absolute()), "start": clip.start,
            "frame_count": clip.count, "scale": clip.scale, "width": clip.width, "height": clip.height,
            "fps": float(clip.fps), "settings": asdict(shake), "zoom": round(zoom, 4),
            "homographies": h.tolist()}
    atomic_write_text(paths["trajectory"], json.dumps(data))
    return ShakyResult(Path(out_dir), paths["shaky"], paths["trajectory"], clip.count, zoom, time.perf_counter() - t0)
