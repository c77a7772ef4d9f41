"""Super-resolution by an integer factor: multi-frame fusion of the luma, a refinement learned from
the video itself, chroma upsampled.

The luma of each frame is rebuilt from its neighbours' sub-pixel-shifted samples
(`kernel_fusion`: flow alignment at the low resolution, robust kernel regression in the manner of
Wronski et al., SIGGRAPH 2019, single-frame bicubic where the motion is not trusted), then made
consistent with the frame itself by back-projection (Irani & Peleg 1991) under the input's
degradation: a Gaussian blur estimated from the video (`kernel_fusion.estimate_psf`) and a sampling
grid the user states (`kernel_fusion.origin`). Unless `fidelity` is
set, a small network trained on the video's own frames (`internal_sr`, as ZSSR, Shocher et al.,
CVPR 2018; at x2 after weights the project trained on external pictures and ships) refines that
luma, back-projected onto the frame again (as ZSSR ends), and the detail it adds is averaged with its neighbours', aligned and trusted as the fusion's samples are, so that it
does not flicker; so is the fusion itself, its neighbours' weighed by a tenth of their trust
(`FUSION_WEIGHT`). With `fidelity` only the frame's own fusion of observed samples is used. Chroma holds little
detail: it is upsampled bicubically.
"""

from __future__ import annotations

import json
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
from .kernel_fusion import (
    GRIDS,
    align,
    average_aligned,
    back_project,
    bicubic,
    downscale,
    estimate_psf,
    fuse_luma,
)

SCALES = (2, 3, 4)
ANALYSIS_VERSION = 3   # bump when the trained refiner changes meaning: cached analyses are keyed on it
TRAIN_WINDOWS = 2      # windows, spread over the video, the refiner is trained on
FUSION_WEIGHT = 0.1    # weight, times their trust, of the neighbours' fusions averaged with the frame's (learned path)


def with_luma(rgb: np.ndarray, y: np.ndarray, scale: int, grid: str = "centre") -> np.ndarray:
    """`rgb` upsampled bicubically by `scale` (input pixels placed as `grid` says), its luma (BT.601, as
    `io.colour.luma`) replaced by `y`."""
    y0 = luma(rgb)
    cb = bicubic(rgb[..., 2] - y0, scale, grid)
    cr = bicubic(rgb[..., 0] - y0, scale, grid)
    r, b = y + cr, y + cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(cv2.merge([r, g, b]), 0, 1).astype(np.float32)


def fused_luma(lumas: list[np.ndarray], centre: int, scale: int, psf: float, grid: str,
               flow_between: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """The multi-frame path: kernel fusion of the window's lumas, back-projected onto the centre frame."""
    aligned = align(lumas, centre, flow_between)
    return back_project(fuse_luma(lumas, centre, scale, aligned, grid), lumas[centre], scale, psf, grid)


def _flows(flow: FlowEstimator, lumas: list[np.ndarray]) -> Callable[[int, int], np.ndarray]:
    prepared = [flow.prepare(y) for y in lumas]
    return lambda a, b: flow.flow_prepared(prepared[a], prepared[b], lumas[a].shape)


class Upscale(Stage):
    """Windowed multi-frame super-resolution (`vidrestore upscale IN -o OUT`, `restore -s upscale:scale=2`);
    two-pass (the blur is estimated and the refiner trained first) unless `fidelity` with a stated `psf`.

    Args:
        scale: output size over input size (2, 3 or 4).
        radius: neighbours each side whose samples are fused.
        psf: standard deviation, in input pixels, of the Gaussian blur the input was downscaled with
            (back-projection and the refiner's training pairs use it); None: estimated from the video
            (`kernel_fusion.estimate_psf`). Vid4's sigma 1.6 at x4 is 0.4.
        grid: where each input pixel lies in its block of scale x scale output pixels (`kernel_fusion.origin`):
            "centre" (area, bicubic and Lanczos downscaling) or "corner" (`blur(x)[::s, ::s]`, Vid4's "BD").
        fidelity: the multi-frame fusion alone (observed samples only), no learned refinement.
        steps: training steps of the refiner (at x2, of the head trained after the shipped start).
        detail_radius: neighbours each side whose learned detail (the refinement's change to their fusion),
            warped onto the frame and weighed by the fusion's trust, is averaged with the frame's own
            (`kernel_fusion.average_aligned`): detail that changes from frame to frame is flicker (Vid4
            x4: warping error 1.19x / 1.75x bicubic's with 0, 0.87x / 0.96x with 2, at -0.01 / +0.06 dB);
            at most `radius`.
    """

    name = "upscale"

    def __init__(self, scale: int = 2, radius: int = 3, psf: float | None = None, grid: str = "centre",
                 fidelity: bool = False, steps: int = 1000, detail_radius: int = 2):
        if (scale not in SCALES or radius < 0 or (psf is not None and psf < 0) or grid not in GRIDS or steps < 1
                or detail_radius < 0):
            raise VidrestoreError(f"{self.name} needs scale 2, 3 or 4, radius >= 0, psf >= 0, grid centre or corner, "
                                  f"steps >= 1 and detail_radius >= 0 "
                                  f"(got {scale}, {radius}, {psf}, {grid}, {steps}, {detail_radius})")
        self.scale, self.fuse_radius, self.steps, self.grid = int(scale), int(radius), int(steps), grid
        self.psf_stated = None if psf is None else float(psf)
        self.psf = self.psf_stated
        self.fidelity = bool(fidelity)
        self.detail_radius = 0 if self.fidelity else min(int(detail_radius), self.fuse_radius)
        self.radius = self.fuse_radius + self.detail_radius   # the window: every frame each averaged detail's fusion takes
        self.two_pass = not self.fidelity or self.psf_stated is None
        self.flow = create_flow("dis", preset="medium", finest_level=0)
        self.net = None
        self._flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # flows later windows reuse
        self._detail: dict[int, tuple] = {}   # frame index -> (its fusion's frames, fused luma, learned detail)

    def config(self) -> dict:
        learned = {} if self.fidelity else {"version": ANALYSIS_VERSION, "steps": self.steps,
                                            "detail_radius": self.detail_radius, "fusion_weight": FUSION_WEIGHT,
                                            "start": internal_sr.start_id(self.scale)}
        return {"scale": self.scale, "radius": self.fuse_radius, "psf": self.psf_stated, "grid": self.grid,
                "fidelity": self.fidelity, "flow": self.flow.config(), **learned}

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width * self.scale, height * self.scale

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        """Estimate the input's blur (unless stated) on windows spread over the video and, unless `fidelity`,
        train the refiner on them, each downscaled by the scale factor with that blur."""
        count = max(1, info.frame_count or 1)
        centres = np.linspace(0, count - 1, TRAIN_WINDOWS + 2)[1:-1].round().astype(int).tolist()
        wanted = {i for c in centres for i in range(c - self.fuse_radius, c + self.fuse_radius + 1)}
        kept: dict[int, np.ndarray] = {}
        for f in frames:
            if f.index in wanted:
                kept[f.index] = luma(f.rgb)
        psf = self.psf_stated
        if psf is None:
            try:
                psf = estimate_psf(list(kept.values()), self.scale, self.grid)
            except ValueError as e:
                raise VidrestoreError(f"{self.name}: {e}; state the blur (psf)") from e
        (cache_dir / "kernel.json").write_text(json.dumps({"psf": psf}))
        if self.fidelity:
            return
        pairs = []
        for c in centres:
            order = [i for i in range(c - self.fuse_radius, c + self.fuse_radius + 1) if i in kept]
            small = [downscale(kept[i], self.scale, psf, self.grid) for i in order]
            if min(small[0].shape) < 8:
                raise VidrestoreError(f"frames too small for {self.name}'s learned refinement at x{self.scale} "
                                      f"(at least {8 * self.scale} px a side); use fidelity")
            fused = fused_luma(small, order.index(c), self.scale, psf, self.grid, _flows(self.flow, small))
            pairs.append((fused, kept[c][:fused.shape[0], :fused.shape[1]]))
        internal_sr.save(internal_sr.train(pairs, self.steps, self.scale), cache_dir / "refiner.safetensors")

    def load(self, cache_dir: Path) -> None:
        self.psf = json.loads((cache_dir / "kernel.json").read_text())["psf"]
        if not self.fidelity:
            self.net = internal_sr.load(cache_dir / "refiner.safetensors", self.scale)

    def process(self, window: Window) -> np.ndarray:
        if self.psf is None:
            raise VidrestoreError(f"{self.name}: the blur is estimated in the analysis pass (analyze, load) unless psf is stated")
        frames = {f.index: f.rgb for f in window.frames}   # the clamped copies at the video's ends once each
        order = sorted(frames)
        lumas = [luma(frames[i]) for i in order]
        prepared = [self.flow.prepare(y) for y in lumas]
        self._flows = {key: f for key, f in self._flows.items() if min(key) >= order[0]}
        self._detail = {i: d for i, d in self._detail.items() if i >= order[0]}

        def flow_between(a: int, b: int) -> np.ndarray:
            """Flow from frame a to frame b, computed once per pair of frames (keyed by index, checked by content)."""
            key = (order[a], order[b])
            kept = self._flows.get(key)
            if kept is None or not (np.array_equal(kept[0], prepared[a]) and np.array_equal(kept[1], prepared[b])):
                kept = (prepared[a], prepared[b], self.flow.flow_prepared(prepared[a], prepared[b], lumas[a].shape))
                self._flows[key] = kept
            return kept[2]

        def near(i: int, reach: int) -> list[int]:
            """Positions in the window of the frames within `reach` of frame i."""
            return [k for k, j in enumerate(order) if abs(j - i) <= reach]

        def fused(i: int) -> np.ndarray:
            sub = near(i, self.fuse_radius)
            return fused_luma([lumas[k] for k in sub], sub.index(order.index(i)), self.scale, self.psf, self.grid,
                              lambda a, b: flow_between(sub[a], sub[b]))

        def detail(i: int) -> tuple:
            """Frame i's fused luma and learned detail, computed once per frame (keyed by index, checked by
            the content of the frames its fusion takes, so that the output depends on the window alone)."""
            sub = near(i, self.fuse_radius)
            kept = self._detail.get(i)
            if kept is None or len(kept[0]) != len(sub) or not all(np.array_equal(a, lumas[k]) for a, k in zip(kept[0], sub)):
                y = fused(i)
                refined = back_project(internal_sr.refine(self.net, y), lumas[order.index(i)], self.scale, self.psf, self.grid)
                kept = ([lumas[k] for k in sub], y, refined - y)
                self._detail[i] = kept
            return kept

        if self.net is None:
            y = fused(window.index)
        else:
            sub = near(window.index, self.detail_radius)
            centre = sub.index(order.index(window.index))
            aligned = align([lumas[k] for k in sub], centre, lambda a, b: flow_between(sub[a], sub[b]))
            fusions = {n: detail(order[k])[1] for n, k in enumerate(sub)}
            details = {n: detail(order[k])[2] for n, k in enumerate(sub)}
            y = (average_aligned(fusions, aligned, centre, self.scale, self.grid, FUSION_WEIGHT)
                 + average_aligned(details, aligned, centre, self.scale, self.grid))
        return with_luma(window.frame.rgb, y, self.scale, self.grid)


@register_stage("upscale")
def _upscale(scale: int = 2, radius: int = 3, psf: float | None = None, grid: str = "centre", fidelity: bool = False,
             steps: int = 1000, detail_radius: int = 2) -> Upscale:
    return Upscale(scale, radius, psf, grid, fidelity, steps, detail_radius)
