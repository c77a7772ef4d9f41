"""Super-resolution by an integer factor: multi-frame fusion of the luma, chroma upsampled.

The luma of each frame is rebuilt from its neighbours' sub-pixel-shifted samples
(`kernel_fusion`: flow alignment at the low resolution, robust kernel regression in the manner of
Wronski et al., SIGGRAPH 2019, single-frame bicubic where the motion is not trusted), then made
consistent with the frame itself by back-projection (Irani & Peleg 1991).
Chroma holds little detail: it is upsampled bicubically. Only observed samples are used; nothing
is learned or invented.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import create_flow
from ..io.colour import luma
from ..pipeline import Stage, Window, register_stage
from .kernel_fusion import align, back_project, bicubic, fuse_luma

SCALES = (2, 3, 4)


def with_luma(rgb: np.ndarray, y: np.ndarray, scale: int) -> np.ndarray:
    """`rgb` upsampled bicubically by `scale`, its luma (BT.601, as `io.colour.luma`) replaced by `y`."""
    y0 = luma(rgb)
    cb = bicubic(rgb[..., 2] - y0, scale)
    cr = bicubic(rgb[..., 0] - y0, scale)
    r, b = y + cr, y + cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(cv2.merge([r, g, b]), 0, 1).astype(np.float32)


class Upscale(Stage):
    """Windowed multi-frame super-resolution (`vidrestore upscale IN -o OUT`, `restore -s upscale:scale=2`).

    Args:
        scale: output size over input size (2, 3 or 4).
        radius: neighbours each side whose samples are fused.
        psf: standard deviation, in input pixels, of the Gaussian blur the back-projection assumes
            the input was made with (0.2: best of 0.2 and 0.3 on area-downscaled x2 crops of the
            shared sharp clips; Vid4's sigma 1.6 at x4 is 0.4).
    """

    name = "upscale"

    def __init__(self, scale: int = 2, radius: int = 3, psf: float = 0.2):
        if scale not in SCALES or radius < 0 or psf <= 0:
            raise VidrestoreError(f"{self.name} needs scale 2, 3 or 4, radius >= 0 and psf > 0 (got {scale}, {radius}, {psf})")
        self.scale, self.radius, self.psf = int(scale), int(radius), float(psf)
        self.flow = create_flow("dis", preset="medium", finest_level=0)
        self._flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # flows later windows reuse

    def config(self) -> dict:
        return {"scale": self.scale, "radius": self.radius, "psf": self.psf, "flow": self.flow.config()}

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width * self.scale, height * self.scale

    def process(self, window: Window) -> np.ndarray:
        frames = {f.index: f.rgb for f in window.frames}   # the clamped copies at the video's ends once each
        order = sorted(frames)
        centre = order.index(window.index)
        lumas = [luma(frames[i]) for i in order]
        prepared = [self.flow.prepare(y) for y in lumas]
        self._flows = {key: f for key, f in self._flows.items() if min(key) >= order[0]}

        def flow_between(a: int, b: int) -> np.ndarray:
            """Flow from frame a to frame b, computed once per pair of frames (keyed by index, checked by content)."""
            key = (order[a], order[b])
            kept = self._flows.get(key)
            if kept is None or not (np.array_equal(kept[0], prepared[a]) and np.array_equal(kept[1], prepared[b])):
                kept = (prepared[a], prepared[b], self.flow.flow_prepared(prepared[a], prepared[b], lumas[a].shape))
                self._flows[key] = kept
            return kept[2]

        aligned = align(lumas, centre, flow_between)
        fused = fuse_luma(lumas, centre, self.scale, aligned)
        y = back_project(fused, lumas[centre], self.scale, self.psf)
        return with_luma(window.frame.rgb, y, self.scale)


@register_stage("upscale")
def _upscale(scale: int = 2, radius: int = 3, psf: float = 0.2) -> Upscale:
    return Upscale(scale, radius, psf)
