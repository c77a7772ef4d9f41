"""Relative sharpness: how sharp each frame is compared with its neighbours, on the same content.

The variance of the Laplacian (SelfHVD's measure, `vidrestore.selfhvd.selection`) also measures
the scene: as a handheld camera pans, the texture in view changes its value more than a pixel
of blur does, so Otsu's threshold in a block of frames then separates textured from plain views
as much as sharp from blurry ones. Here each frame is compared with the frames up to `reach`
before it on the part of the scene both show:

1. Per frame, the energy of the luma's second differences in four directions (horizontal,
   vertical, both diagonals) at full resolution, then area-averaged down to the working scale
   of the flow (a quarter of the size, at least 160 pixels wide). Motion blur removes detail
   along its direction, so a streak of a pixel or two shows in one direction even where the
   Laplacian's sum over directions hardly moves.
2. For a pair (j, i), the flow i -> j (DIS, fast preset, at the working scale) carries j's
   energy maps onto frame i; the log ratio of the two energies summed over the pixels both
   frames show is the difference of their log sharpness in that direction (the content
   cancels). A pair whose warped luma does not match (a cut, a failed flow) is dropped.
3. Per direction, the log sharpness of every frame is the least-squares solution of those pair
   differences (weighted 1/distance; a banded system, so any length solves in linear time),
   made relative to the sharpest frame of each stretch of frames the pairs connect.
4. A frame is as sharp as its worst direction: the minimum over directions, as a ratio in
   (0, 1] to the sharpest frame.

Measured on handheld clips from `vidrestore synth handheld` (benchmarks/selfhvd_analysis.py,
figures in the README): selecting with Otsu per block on this measure instead of the Laplacian
variance raises the selection accuracy by about ten points. It is not the default (see
`vidrestore.selfhvd.selection`). Second differences at full resolution are what see a pixel of
blur; they also see the softening that resampling at a half-pixel offset causes, which
synthetic pans of noise-like texture show and camera footage hardly does.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
from scipy.linalg import solveh_banded

from ..flow import FlowEstimator, create_flow
from ..io.colour import luma

RELATIVE_SCALE = 0.25
MIN_WORKING_WIDTH = 160  # small videos are compared at a larger scale, so that the flow still has pixels to match
RELATIVE_REACH = 3
MISMATCH = 0.1  # mean |low-passed luma difference| after warping, above which a pair is dropped
MIN_OVERLAP = 0.25
_DIFFS = (
    np.array([[1.0, -2.0, 1.0]], np.float32),
    np.array([[1.0], [-2.0], [1.0]], np.float32),
    np.array([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 1.0]], np.float32) / 2,
    np.array([[0.0, 0.0, 1.0], [0.0, -2.0, 0.0], [1.0, 0.0, 0.0]], np.float32) / 2,
)


def directional_energy(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(4, h, w) energy of `grey`'s second differences in four directions, area-averaged to size = (w, h)."""
    y = np.ascontiguousarray(grey, np.float32)
    return np.stack([cv2.resize(cv2.filter2D(y, -1, k) ** 2, size, interpolation=cv2.INTER_AREA) for k in _DIFFS])


class RelativeSharpness:
    """Streaming relative sharpness (module docstring): `add` every frame in order, then `solve`.

    Holds the last `reach` frames' working-scale luma and energy maps; memory does not grow with
    the video's length beyond a few numbers per frame.
    """

    def __init__(self, reach: int = RELATIVE_REACH, scale: float = RELATIVE_SCALE, preset: str = "fast"):
        self.reach, self.scale, self.preset = int(reach), scale, preset
        self.flow: FlowEstimator | None = None
        self.recent: deque[tuple[int, np.ndarray, np.ndarray]] = deque(maxlen=self.reach)
        self.pairs: list[tuple[int, int, np.ndarray]] = []
        self.count = 0

    def add(self, rgb: np.ndarray) -> None:
        """Take the next frame (float RGB in [0, 1])."""
        if self.flow is None:
            scale = min(1.0, max(self.scale, MIN_WORKING_WIDTH / rgb.shape[1]))
            self.flow = create_flow("dis", scale=scale, preset=self.preset)
        grey = self.flow.prepare(rgb)
        h, w = grey.shape
        energy = directional_energy(luma(rgb) * 255.0, (w, h))
        i = self.count
        border = 2
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        low_i = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 2.0)
        for j, grey_j, energy_j in self.recent:
            f = self.flow.flow_prepared(grey, grey_j)
            mx, my = gx + f[..., 0], gy + f[..., 1]
            inside = (mx >= border) & (my >= border) & (mx <= w - 1 - border) & (my <= h - 1 - border)
            inside[:border], inside[-border:], inside[:, :border], inside[:, -border:] = False, False, False, False
            if inside.mean() < MIN_OVERLAP:
                continue
            warped = cv2.GaussianBlur(cv2.remap(grey_j.astype(np.float32), mx, my, cv2.INTER_LINEAR), (0, 0), 2.0)
            if np.abs(warped - low_i)[inside].mean() / 255.0 > MISMATCH:
                continue
            mine = energy[:, inside].sum(1)
            theirs = np.array([cv2.remap(e, mx, my, cv2.INTER_LINEAR)[inside].sum() for e in energy_j])
            self.pairs.append((j, i, np.log((mine + 1e-6) / (theirs + 1e-6))))
        self.recent.append((i, grey, energy))
        self.count += 1

    def solve(self) -> np.ndarray:
        """Per frame, sharpness relative to the sharpest frame of its stretch, in (0, 1]."""
        n, u = self.count, self.reach
        if n == 0:
            return np.zeros(0, np.float32)
        normal = np.zeros((u + 1, n))  # upper banded form: normal[u + a - b, b] = N[a, b]
        normal[u] = 1e-6
        rhs = np.zeros((n, len(_DIFFS)))
        linked = np.zeros(n + 1, np.int64)
        for j, i, diff in self.pairs:
            w2 = 1.0 / (i - j) ** 2
            normal[u, i] += w2
            normal[u, j] += w2
            normal[u + j - i, i] -= w2
            rhs[i] += w2 * diff
            rhs[j] -= w2 * diff
            linked[j + 1] += 1
            linked[i + 1] -= 1
        logs = solveh_banded(normal, rhs)
        starts = np.flatnonzero(np.cumsum(linked)[:n] == 0)  # frame k starts a stretch when no pair spans k-1 -> k
        for a, b in zip(starts, list(starts[1:]) + [n]):
            logs[a:b] -= logs[a:b].max(0)
        return np.exp(logs.min(1)).astype(np.float32)
