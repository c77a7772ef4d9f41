"""Super-resolution by an integer factor: multi-frame fusion of the luma, a refinement learned from
the video itself, chroma upsampled.

The luma of each frame is rebuilt from its neighbours' sub-pixel-shifted samples
(`kernel_fusion`: flow alignment at the low resolution, robust kernel regression in the manner of
Wronski et al., SIGGRAPH 2019, single-frame bicubic where the motion is not trusted), then made
consistent with the frame itself by back-projection (Irani & Peleg 1991). Unless `fidelity` is
set, a small network trained on the video's own frames (`internal_sr`, as ZSSR, Shocher et al.,
CVPR 2018) refines that luma; with `fidelity` only observed samples are used. Chroma holds little
detail: it is upsampled bicubically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import FlowEstimator, create_flow
from ..io.colour import luma
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window, register_stage
from . import internal_sr
from .kernel_fusion import align, back_project, bicubic, downscale, fuse_luma

SCALES = (2, 3, 4)
ANALYSIS_VERSION = 1   # bump when the trained refiner changes meaning: cached analyses are keyed on it
TRAIN_WINDOWS = 2      # windows, spread over the video, the refiner is trained on


def with_luma(rgb: np.ndarray, y: np.ndarray, scale: int) -> np.ndarray:
    """`rgb` upsampled bicubically by `scale`, its luma (BT.601, as `io.colour.luma`) replaced by `y`."""
    y0 = luma(rgb)
    cb = bicubic(rgb[..., 2] - y0, scale)
    cr = bicubic(rgb[..., 0] - y0, scale)
    r, b = y + cr, y + cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(cv2.merge([r, g, b]), 0, 1).astype(np.float32)


def fused_luma(lumas: list[np.ndarray], centre: int, scale: int, psf: float,
               flow_between: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """The multi-frame path: kernel fusion of the window's lumas, back-projected onto the centre frame."""
    aligned = align(lumas, centre, flow_between)
    return back_project(fuse_luma(lumas, centre, scale, aligned), lumas[centre], scale, psf)


def _flows(flow: FlowEstimator, lumas: list[np.ndarray]) -> Callable[[int, int], np.ndarray]:
    prepared = [flow.prepare(y) for y in lumas]
    return lambda a, b: flow.flow_prepared(prepared[a], prepared[b], lumas[a].shape)


class Upscale(Stage):
    """Windowed multi-frame super-resolution (`vidrestore upscale IN -o OUT`, `restore -s upscale:scale=2`);
    two-pass (the refiner is trained first) unless `fidelity`.

    Args:
        scale: output size over input size (2, 3 or 4).
        radius: neighbours each side whose samples are fused.
        psf: standard deviation, in input pixels, of the Gaussian blur the back-projection assumes
            the input was made with (0.2: best of 0.2 and 0.3 on area-downscaled x2 crops of the
            shared sharp clips; Vid4's sigma 1.6 at x4 is 0.4).
        fidelity: the multi-frame fusion alone (observed samples only), no learned refinement.
        steps: training steps of the refiner.
    """

    name = "upscale"

    def __init__(self, scale: int = 2, radius: int = 3, psf: float = 0.2, fidelity: bool = False, steps: int = 1000):
        if scale not in SCALES or radius < 0 or psf <= 0 or steps < 1:
            raise VidrestoreError(f"{self.name} needs scale 2, 3 or 4, radius >= 0, psf > 0 and steps >= 1 "
                                  f"(got {scale}, {radius}, {psf}, {steps})")
        self.scale, self.radius, self.psf, self.steps = int(scale), int(radius), float(psf), int(steps)
        self.fidelity = bool(fidelity)
        self.two_pass = not self.fidelity
        self.flow = create_flow("dis", preset="medium", finest_level=0)
        self.net = None
        self._flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # flows later windows reuse

    def config(self) -> dict:
        learned = {} if self.fidelity else {"version": ANALYSIS_VERSION, "steps": self.steps}
        return {"scale": self.scale, "radius": self.radius, "psf": self.psf, "fidelity": self.fidelity,
                "flow": self.flow.config(), **learned}

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width * self.scale, height * self.scale

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        """Train the refiner on windows spread over the video, each downscaled by the scale factor."""
        count = max(1, info.frame_count or 1)
        centres = np.linspace(0, count - 1, TRAIN_WINDOWS + 2)[1:-1].round().astype(int).tolist()
        wanted = {i for c in centres for i in range(c - self.radius, c + self.radius + 1)}
        kept: dict[int, np.ndarray] = {}
        for f in frames:
            if f.index in wanted:
                kept[f.index] = luma(f.rgb)
        pairs = []
        for c in centres:
            order = [i for i in range(c - self.radius, c + self.radius + 1) if i in kept]
            small = [downscale(kept[i], self.scale, self.psf) for i in order]
            if min(small[0].shape) < 8:
                raise VidrestoreError(f"frames too small for {self.name}'s learned refinement at x{self.scale} "
                                      f"(at least {8 * self.scale} px a side); use fidelity")
            fused = fused_luma(small, order.index(c), self.scale, self.psf, _flows(self.flow, small))
            pairs.append((fused, kept[c][:fused.shape[0], :fused.shape[1]]))
        internal_sr.save(internal_sr.train(pairs, self.steps), cache_dir / "refiner.safetensors")

    def load(self, cache_dir: Path) -> None:
        self.net = internal_sr.load(cache_dir / "refiner.safetensors")

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

        y = fused_luma(lumas, centre, self.scale, self.psf, flow_between)
        if self.net is not None:
            y = internal_sr.refine(self.net, y)
        return with_luma(window.frame.rgb, y, self.scale)


@register_stage("upscale")
def _upscale(scale: int = 2, radius: int = 3, psf: float = 0.2, fidelity: bool = False, steps: int = 1000) -> Upscale:
    return Upscale(scale, radius, psf, fidelity, steps)
