"""Fidelity mode (`vidrestore deblur --fidelity`): every output pixel a convex combination of observed pixels.

Forensic users cannot accept pixels a network made up. In fidelity mode nothing is trained or
generated: a frame the analysis selected as sharp is kept as it is (unless a frame of its window
is clearly sharper, `selection.kept_sharp`), and every other frame i becomes lucky-frame fusion of itself and the sharper frames of its window, warped onto it along
the analysis' flows (the same fusion the window network starts from, `vidrestore.selfhvd.window`):

    out_i(p) = sum_t w_t tau_t(p) x_t->i(p) / sum_t w_t tau_t(p)

over the sources t of frame i: i itself (w_i = 1, tau_i = 1) and each frame t of the window
i-k..i+k sharper than i, with its per-frame weight w_t = strength (s_t / s_i - 1)^power (s: the
analysis' Laplacian variance; `vidrestore.flow.fusion.frame_weight`) and its per-pixel trust
tau_t in [0, 1] (visible by the forward-backward round trip, times photometric agreement with
frame i once both are low-passed; `vidrestore.flow.fusion.trust`). The weights are positive and
normalised, so each output pixel lies between the source pixels it came from. A frame the fusion
would leave less sharp than it was (`flow.fusion.blurrier`: sharper neighbours misaligned by a pixel
or two blend into blur) is passed through as it is: its only source is itself.

`frame_sources` lists each frame's candidate sources and weights from the analysis alone; the stage
records, per fused frame, whether it was passed through instead (in the analysis' folder, so that a
resumed job still knows the frames an earlier run rendered), and `FidelityStage.sources` lists what
each output frame was made of. The job record and its report keep that list, so anyone can
recompute an output frame from its sources.
"""

from __future__ import annotations

import os

import numpy as np

from ..flow.fusion import blurrier, frame_weight, low_luma, trust
from ..io import read_frames
from ..pipeline import Stage, Window
from .analysis import VideoAnalysis
from .selection import kept_sharp
from .window import visibility, warp_onto

RADIUS = 4  # frames on each side: the default window network's


def frame_sources(analysis: VideoAnalysis, i: int, radius: int = RADIUS) -> list[tuple[int, float]]:
    """Frame i's sources and their per-frame weights, frame i first (module docstring)."""
    if kept_sharp(analysis.selection.sharp, analysis.laplacian, radius)[i]:
        return [(i, 1.0)]
    s_i = max(float(analysis.laplacian[i]), 1e-12)
    window = sorted({min(max(t, 0), analysis.count - 1) for t in range(i - radius, i + radius + 1)} - {i})
    weights = [(t, frame_weight(float(analysis.laplacian[t]) / s_i)) for t in window]
    return [(i, 1.0)] + [(t, w) for t, w in weights if w > 0]


def fuse(analysis: VideoAnalysis, i: int, sources: list[tuple[int, float]], frame_of) -> np.ndarray:
    """Frame i of fidelity mode from its `sources` (`frame_sources`); `frame_of(t)`: frame t, float RGB in [0, 1]."""
    centre = np.asarray(frame_of(i), np.float32)
    if len(sources) == 1:
        return centre
    box = (0, centre.shape[0], 0, centre.shape[1])
    low = low_luma(centre)
    acc = centre.copy()
    total = np.ones(centre.shape[:2], np.float32)
    for t, w in sources[1:]:
        there = analysis.positions(i, t, box)
        aligned = warp_onto(analysis, i, t, frame_of(t), box, there)
        weight = np.float32(w) * trust(low, aligned, visibility(analysis, i, t, box, there=there))
        acc += weight[..., None] * aligned
        total += weight
    return np.clip(acc / total[..., None], 0.0, 1.0)


class FidelityStage(Stage):
    """Windowed stage of `deblur --fidelity` (module docstring).

    Args:
        analysis: the input video's analysis (selection, sharpness and flows).
        radius: frames on each side a frame may take pixels from.
    """

    name = "selfhvd-fidelity"

    def __init__(self, analysis: VideoAnalysis, radius: int = RADIUS):
        self.analysis, self.radius = analysis, int(radius)
        self.passed = analysis.dir / f"fidelity-r{self.radius}"   # one file per fused frame: "1" if passed through

    def config(self) -> dict:
        return {"analysis": self.analysis.dir.name, "radius": self.radius, "never_blurrier": "edge_variance: laplacian variance at half size less the noise's"}

    def _render(self, i: int, frame_of) -> tuple[np.ndarray, list[tuple[int, float]]]:
        """Frame i of the output and its sources; the decision to pass it through is recorded."""
        sources = frame_sources(self.analysis, i, self.radius)
        frame = np.asarray(frame_of(i), np.float32)
        if len(sources) == 1:
            return frame, sources
        fused = fuse(self.analysis, i, sources, frame_of)
        passed = blurrier(frame, fused)
        self.passed.mkdir(exist_ok=True)
        (self.passed / str(i)).write_text("1" if passed else "0")
        return (frame, [(i, 1.0)]) if passed else (fused, sources)

    def sources(self, video: str | os.PathLike) -> list[list[tuple[int, float]]]:
        """What every output frame was made of: its sources and weights. A frame no run has rendered
        yet (its decision unrecorded) is rendered from `video`, the analysed input, to decide."""
        out = []
        for i in range(self.analysis.count):
            sources = frame_sources(self.analysis, i, self.radius)
            record = self.passed / str(i)
            decided = record.read_text() if len(sources) > 1 and record.is_file() else ""
            if decided in ("0", "1"):
                out.append([(i, 1.0)] if decided == "1" else sources)
            elif len(sources) > 1:
                lo = min(t for t, _ in sources)
                frames = [f.rgb for f in read_frames(video, lo, max(t for t, _ in sources) + 1)]
                out.append(self._render(i, lambda t: frames[t - lo])[1])
            else:
                out.append(sources)
        return out

    def process(self, window: Window) -> np.ndarray:
        frames = {f.index: f.rgb for f in window.frames}
        return self._render(window.index, frames.__getitem__)[0]
