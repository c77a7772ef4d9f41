"""Global camera motion between two frames: a similarity transform (shift, rotation, uniform scale).

Sparse features first: Shi-Tomasi corners of the earlier frame, tracked into the later one with
pyramidal Lucas-Kanade, kept only when tracking back lands within a pixel of the start
(forward-backward check), and fitted with RANSAC (`cv2.estimateAffinePartial2D`), so points on
a moving foreground fall out as outliers as long as the background holds most of the points.
Frames with too little texture for enough inliers fall back to dense DIS flow, sampled on a grid
where the forward-backward round trip holds, and fitted the same way. When that fails too, the
motion is the identity and `method` says "none".

Convention (as in `vidrestore.flow`): the matrix maps pixel coordinates of the later frame to
the earlier frame's, ``x_prev ~ M @ [x, y, 1]``.

References:
    Shi, Tomasi, "Good features to track", CVPR 1994.
    Bouguet, "Pyramidal implementation of the Lucas Kanade feature tracker", Intel 2000.
    Fischler, Bolles, "Random sample consensus", CACM 1981.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from .estimators import create_flow, to_grey_u8
from .warp import occlusion_mask

WORK_SIDE = 640      # frames are analysed with their longer side at most this many pixels
MIN_INLIERS = 30     # fewer RANSAC inliers than this: too little texture, use dense flow
MIN_DENSE = 50       # dense fallback: grid samples that must agree for its fit to count
_RANSAC_PX = 1.5     # inlier threshold at the working scale
_FB_PX = 1.0         # forward-backward tracking tolerance at the working scale
_GRID_STEP = 8       # dense fallback: one sample every this many working pixels


@dataclass(frozen=True)
class Prepared:
    """A frame ready for motion estimation: 8-bit luma at the working scale."""

    grey: np.ndarray
    scale: float


@dataclass(frozen=True)
class GlobalMotion:
    """Similarity from a frame to the one before it (2x3, full-resolution pixels).

    Attributes:
        matrix: maps later-frame pixel coordinates to earlier-frame ones.
        inliers: points that agreed with it.
        method: "features", "dense" (low-texture fallback) or "none" (identity, nothing fitted).
    """

    matrix: np.ndarray
    inliers: int
    method: str


def prepare(rgb: np.ndarray, work_side: int = WORK_SIDE) -> Prepared:
    """Luma of a float RGB frame, shrunk so its longer side is at most `work_side` pixels."""
    grey = to_grey_u8(rgb)
    scale = min(1.0, work_side / max(grey.shape))
    if scale < 1.0:
        h, w = grey.shape
        grey = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return Prepared(grey, scale)


def _fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray | None, int]:
    if len(src) < 3:
        return None, 0
    m, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_PX,
                                         maxIters=2000, confidence=0.995, refineIters=10)
    if m is None:
        return None, 0
    return m, int(inl.sum())


def _features(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray | None, int]:
    side = max(prev.shape)
    pts = cv2.goodFeaturesToTrack(prev, maxCorners=600, qualityLevel=0.01, minDistance=max(5, side // 80), blockSize=7)
    if pts is None or len(pts) < MIN_INLIERS:
        return None, 0
    lk = dict(winSize=(21, 21), maxLevel=4, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, **lk)
    good = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm(back - pts, axis=-1)[:, 0] < _FB_PX)
    return _fit(nxt[good, 0], pts[good, 0])


def _dense(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray | None, int]:
    flow = create_flow("dis", preset="fast")
    f_cp = flow.flow_prepared(cur, prev)   # cur(p) ~ prev(p + d)
    f_pc = flow.flow_prepared(prev, cur)
    h, w = cur.shape
    m = _GRID_STEP
    ys, xs = np.mgrid[m:max(m, h - m):_GRID_STEP, m:max(m, w - m):_GRID_STEP]  # none in frames under 17 px
    keep = occlusion_mask(f_cp, f_pc)[ys, xs] >= 0.5
    src = np.stack([xs[keep], ys[keep]], axis=-1).astype(np.float32)
    return _fit(src, src + f_cp[ys[keep], xs[keep]])


def estimate(prev: Prepared, cur: Prepared) -> GlobalMotion:
    """Similarity mapping `cur`'s pixel coordinates onto `prev`'s (see the module docstring)."""
    method = "features"
    m, n = _features(prev.grey, cur.grey)
    if m is None or n < MIN_INLIERS:
        method = "dense"
        m, n = _dense(prev.grey, cur.grey)
        if m is None or n < MIN_DENSE:
            return GlobalMotion(np.eye(2, 3), n, "none")
    full = m.astype(np.float64)
    full[:, 2] /= cur.scale
    return GlobalMotion(full, n, method)


def frame_motions(frames: Iterable[np.ndarray], work_side: int = WORK_SIDE) -> tuple[np.ndarray, list[str]]:
    """Motions of a frame sequence: (N, 2, 3) with [0] the identity and [t] mapping frame t onto t-1.

    Streams: only the previous frame is kept. Also returns each pair's method ("features",
    "dense", "none"; "first" for frame 0).
    """
    mats, methods = [np.eye(2, 3)], ["first"]
    prev = None
    for rgb in frames:
        cur = prepare(rgb, work_side)
        if prev is not None:
            g = estimate(prev, cur)
            mats.append(g.matrix)
            methods.append(g.method)
        prev = cur
    if prev is None:
        return np.zeros((0, 2, 3)), []
    return np.array(mats), methods
