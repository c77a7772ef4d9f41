"""Video stabilization as a two-pass stage (`vidrestore stabilize`, `restore -s stabilize`).

Analysis: the similarity between each pair of consecutive frames (`vidrestore.flow.motion`:
tracked corners + RANSAC, dense DIS flow where texture is too low), then a smooth camera path
(`camera_path`: the L1-optimal path of Grundmann et al. 2011, or a Gaussian low-pass), saved in
the work directory. Render: each frame resampled (bicubic) through its update transform.

Border modes:

* ``crop`` (default): the crop window, scaled back up to the frame size: no border ever shows,
  and the picture is magnified by 1 / (1 - crop) (1.18 for the default 15 %);
* ``black`` / ``reflect``: the original scale, the frame moved within it; the area the frame
  leaves is black or mirrored. The path still keeps the central (1 - crop) window covered, so
  `crop` bounds how wide such borders get.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow.motion import frame_motions
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window, register_stage
from .camera_path import CameraPath, compose, gaussian_path, l1_optimal_path, uncentred

SMOOTHERS = ("l1", "gauss")
BORDERS = {"crop": cv2.BORDER_REPLICATE, "black": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT101}


def smooth_path(motions: np.ndarray, width: int, height: int, crop: float, smoother: str, sigma: float) -> CameraPath:
    """The update transforms for `motions` by the chosen smoother ("l1" or "gauss")."""
    if smoother == "l1":
        return l1_optimal_path(motions, width, height, crop, fallback_sigma=sigma)
    return gaussian_path(motions, width, height, crop, sigma)


def render_matrices(path: CameraPath, width: int, height: int, crop: float, border: str) -> np.ndarray:
    """(N, 2, 3) maps from output pixels to input pixels (for `cv2.warpAffine` with WARP_INVERSE_MAP)."""
    updates = path.updates
    if border == "crop":
        updates = compose(updates, np.array([1.0 - crop, 0.0, 0.0, 0.0]))
    return uncentred(updates, width, height)


class Stabilize(Stage):
    """Two-pass stabilization stage (see the module docstring).

    Args:
        crop: crop budget, the share of each side the crop window gives up (vid.stab's default
            zoom is 15 %).
        smoother: "l1" (L1-optimal path, Gaussian when the LP fails) or "gauss".
        border: "crop" (crop and zoom), "black" or "reflect".
        sigma: Gaussian smoother's sigma in frames (also the L1 smoother's fallback).
    """

    name = "stabilize"
    two_pass = True

    def __init__(self, crop: float = 0.15, smoother: str = "l1", border: str = "crop", sigma: float = 15.0):
        if not 0 <= crop < 0.5:
            raise VidrestoreError(f"stabilize crop must be in [0, 0.5), not {crop}")
        if smoother not in SMOOTHERS:
            raise VidrestoreError(f"stabilize smoother must be one of {', '.join(SMOOTHERS)}, not {smoother!r}")
        if border not in BORDERS:
            raise VidrestoreError(f"stabilize border must be one of {', '.join(BORDERS)}, not {border!r}")
        if sigma <= 0:
            raise VidrestoreError(f"stabilize sigma must be positive, not {sigma}")
        self.crop, self.smoother, self.border, self.sigma = float(crop), smoother, border, float(sigma)
        self.matrices: np.ndarray | None = None
        self.summary: dict = {}

    def config(self) -> dict:
        return {"crop": self.crop, "smoother": self.smoother, "border": self.border, "sigma": self.sigma}

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        motions, methods = frame_motions(f.rgb for f in frames)
        if len(motions) == 0:
            raise VidrestoreError("no frames to stabilize")
        path = smooth_path(motions, info.width, info.height, self.crop, self.smoother, self.sigma)
        np.savez(cache_dir / "path.npz", motions=motions, updates=path.updates,
                 matrices=render_matrices(path, info.width, info.height, self.crop, self.border))
        summary = {"frames": len(motions), "solver": path.solver, "note": path.note, "motion_methods": dict(Counter(methods[1:]))}
        (cache_dir / "summary.json").write_text(json.dumps(summary))

    def load(self, cache_dir: Path) -> None:
        self.matrices = np.load(cache_dir / "path.npz")["matrices"]
        self.summary = json.loads((cache_dir / "summary.json").read_text())

    def process(self, window: Window) -> np.ndarray:
        if self.matrices is None:
            raise VidrestoreError("stabilize needs its analysis pass: run it through vidrestore.restore()")
        i = window.index
        if i >= len(self.matrices):
            raise VidrestoreError(f"frame {i} is past the {len(self.matrices)} frames the analysis saw")
        rgb = window.frame.rgb
        h, w = rgb.shape[:2]
        out = cv2.warpAffine(rgb, self.matrices[i], (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                             borderMode=BORDERS[self.border], borderValue=(0.0, 0.0, 0.0))
        return np.clip(out, 0.0, 1.0)


@register_stage("stabilize")
def _stabilize(crop: float = 0.15, smoother: str = "l1", border: str = "crop", sigma: float = 15.0) -> Stabilize:
    return Stabilize(crop, smoother, border, sigma)
