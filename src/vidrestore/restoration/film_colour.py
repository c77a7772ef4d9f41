"""Faded colour: the white point, black point and per-channel range of a faded print restored,
per shot, smoothed over time.

The dyes of a colour print fade at different rates (cyan fastest, so prints turn red-magenta):
each channel c becomes about offset_c + gain_c * x ** gamma_c. A scene's deepest shadows and its
brightest highlights are close to neutral in nearly all footage, so fading shows as a black
point and a white point off the grey axis:

* black point: the mean colour of the darkest `TAIL` of the pixels by luma (read on the per-pixel
  median of the frame and its two neighbours, so that one-frame dust and dirt are not in the
  tails);
* white point: among the brightest `TAIL` by luma, the colour nearest the grey axis -- the mode
  of their chroma found by mean shift started on the axis (Comaniciu & Meer 2002), so that a
  bright coloured object beside a white one does not pull it; when less than 2 % of them
  is near grey (kernel mass), from their median chroma instead: the cast is then everywhere, and
  a few pixels that only look grey through it must not set the white.

Both leave out the pixels of line scratches (`film_scratches.find_lines`, unconfirmed): a scratch
through the emulsion is near white and grey, and would pass for the white point.

Each channel is mapped linearly so that its black point goes to the channels' mean black and its
white point to the highest channel's white (a dye that fades loses density: the least dimmed
channel is the nearest to the print's range). Fading of gain and offset is undone closely when
the scene's extremes are grey; the gammas drifting apart are not (mid-tones keep that part of the
cast). Unfaded footage is left alone: the correction fades in only where the largest gain
correction it needs exceeds `tolerance` (0.15), fully from `tolerance` + 0.1. Measured over the
first 24 frames of the shared sharp clips: 0.03-0.08 needed, 0.18 on the yellow letter blocks
(whose brightest parts are yellow); on them faded synthetically (`benchmarks/film.py --colour`)
0.21-0.84. A scene whose brightest parts are all strongly coloured (no white anywhere)
is taken for faded.

Over time: the points of each shot (cuts as `deflicker` finds them) are smoothed by a running
median and a Gaussian over `window` seconds before the maps are made, so the correction follows
a slow drift of the fading but never flickers.

References:
    Chambah, Besserer, Courtellemont, "Recent progress in automatic digital restoration of color
    motion pictures", SPIE 2002 (faded film, white-patch balance per channel).
    Comaniciu, Meer, "Mean shift: a robust approach toward feature space analysis", TPAMI 2002.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from ..errors import VidrestoreError
from ..io.colour import luma
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window, register_stage
from .deflicker import CUT_THRESHOLD, frame_statistics, shot_starts
from .film_scratches import find_lines, line_mask

TAIL = 0.005            # share of the pixels (by luma) that make the black and the white point
_SIGMA = 0.03           # mean-shift bandwidth in chroma (0-1 scale)
_SHIFTS = 10            # mean-shift iterations
_GREY_MASS = 0.02       # share of the brightest pixels near grey (kernel mass) for the search to start on the grey axis
_RAMP = 0.1             # the correction fades in over this much imbalance above the tolerance
_STATS_WIDTH = 256


def _chroma_mode(px: np.ndarray) -> np.ndarray:
    """The colour of `px` (N, 3) at the mode of their chroma nearest the grey axis (mean shift from
    it, or from their median chroma when too few are near it)."""
    level = px.mean(axis=1)
    chroma = px - level[:, None]
    c = np.zeros(3)
    if np.exp(-0.5 * (chroma ** 2).sum(axis=1) / _SIGMA ** 2).sum() < _GREY_MASS * len(px):   # no white thing: the cast is all
        c = np.median(chroma, axis=0)
    for _ in range(_SHIFTS):
        w = np.exp(-0.5 * ((chroma - c) ** 2).sum(axis=1) / _SIGMA ** 2)
        c = (w[:, None] * chroma).sum(axis=0) / w.sum()
    w = np.exp(-0.5 * ((chroma - c) ** 2).sum(axis=1) / _SIGMA ** 2)
    return float((w * level).sum() / w.sum()) + c


def shrink(rgb: np.ndarray) -> np.ndarray:
    """The frame at most `_STATS_WIDTH` wide (its statistics are read there)."""
    h, w = rgb.shape[:2]
    if w > _STATS_WIDTH:
        rgb = cv2.resize(rgb, (_STATS_WIDTH, max(1, round(h * _STATS_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return rgb


def end_points(rgb: np.ndarray) -> np.ndarray:
    """(2, 3) the frame's black point and white point (module docstring), line scratches left out."""
    rgb = np.ascontiguousarray(shrink(rgb), dtype=np.float32)
    y = luma(rgb)
    keep = ~line_mask(find_lines(y), y.shape, grow=1).ravel()
    px = rgb.reshape(-1, 3).astype(np.float64)[keep]
    y = y.ravel()[keep]
    lo, hi = np.quantile(y, [TAIL, 1 - TAIL])
    return np.stack([px[y <= lo].mean(axis=0), _chroma_mode(px[y >= hi])])


def smooth_points(points: np.ndarray, starts: list[int], window: int) -> np.ndarray:
    """Per shot, each track of `points` (frames, ...) smoothed by a running median of `window`
    frames, then a Gaussian of window/6."""
    out = np.empty_like(points)
    bounds = [*starts, len(points)]
    flat = points.reshape(len(points), -1)
    res = out.reshape(len(points), -1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        q = median_filter(flat[a:b], size=(min(window, b - a), 1), mode="nearest")
        res[a:b] = gaussian_filter1d(q, max(window / 6, 1e-3), axis=0, mode="nearest")
    return out


def channel_maps(points: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset) per channel taking the black point to the channels' mean black and the white
    point to the highest channel's white (module docstring), faded in over an imbalance of
    `tolerance` to `tolerance` + `_RAMP` in gain (none below: unfaded footage keeps its colour)."""
    black, white = points
    span = np.maximum(white - black, 1e-3)
    gain = (white.max() - black.mean()) / span
    offset = black.mean() - gain * black
    s = float(np.clip((np.abs(gain - 1).max() - tolerance) / _RAMP, 0.0, 1.0))
    return 1 + s * (gain - 1), s * offset


def despeckled_points(window: deque[tuple[np.ndarray, bool]]) -> np.ndarray:
    """End points of the second-last of up to three consecutive shrunk frames (each with whether
    a cut comes before it), read on the per-pixel median of the three: dust and dirt, one frame
    each, are not in it (Kokaram's premise), though they fill the tails of a dusty frame. Next to
    a cut, or with one neighbour, the frame alone."""
    frame, cut = window[-2]
    if len(window) == 3 and not cut and not window[-1][1]:
        return end_points(np.median(np.stack([w[0] for w in window]), axis=0))
    return end_points(frame)


class Colour(Stage):
    """Two-pass stage `colour` (`vidrestore film --colour auto`, `restore -s colour`): faded colour restored.

    Args:
        window: seconds over which each shot's black and white points are smoothed.
        tolerance: the largest gain correction left undone (unfaded footage; module docstring).
    """

    name = "colour"
    two_pass = True

    def __init__(self, window: float = 2.0, tolerance: float = 0.15):
        if window <= 0 or tolerance < 0:
            raise VidrestoreError(f"colour needs window > 0 and tolerance >= 0 (got {window}, {tolerance})")
        self.window, self.tolerance = float(window), float(tolerance)
        self.maps: list[tuple[np.ndarray, np.ndarray]] = []
        self.summary: dict = {}

    def config(self) -> dict:
        return {"window": self.window, "tolerance": self.tolerance, "tail": TAIL}

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        window: deque[tuple[np.ndarray, bool]] = deque(maxlen=3)   # shrunk frames, each with "a cut before it"
        points, scores, prev = [], [0.0], None
        for f in frames:
            _, z = frame_statistics(f.rgb)
            if prev is not None:
                scores.append(float(np.abs(z - prev).mean()))
            prev = z
            window.append((shrink(f.rgb), scores[-1] > CUT_THRESHOLD))
            if len(window) >= 2:
                points.append(despeckled_points(window))
        if not window:
            raise VidrestoreError("no frames to restore the colour of")
        points.append(end_points(window[-1][0]))
        raw = np.array(points)
        starts = shot_starts(np.array(scores))
        window_frames = max(3, round(self.window * float(info.fps or 25)) | 1)
        np.savez(cache_dir / "points.npz", raw=raw, smooth=smooth_points(raw, starts, window_frames))
        (cache_dir / "summary.json").write_text(json.dumps({"frames": len(raw), "window_frames": window_frames, "shots": starts}))

    def load(self, cache_dir: Path) -> None:
        smooth = np.load(cache_dir / "points.npz")["smooth"]
        self.maps = [channel_maps(p, self.tolerance) for p in smooth]
        self.summary = json.loads((cache_dir / "summary.json").read_text())

    def process(self, window: Window) -> np.ndarray:
        if not self.maps:
            raise VidrestoreError("colour needs its analysis pass: run it through vidrestore.restore()")
        if window.index >= len(self.maps):
            raise VidrestoreError(f"frame {window.index} is past the {len(self.maps)} frames the analysis saw")
        gain, offset = self.maps[window.index]
        return np.clip(window.frame.rgb * gain.astype(np.float32) + offset.astype(np.float32), 0.0, 1.0)


@register_stage("colour")
def _colour(window: float = 2.0, tolerance: float = 0.15) -> Colour:
    return Colour(window, tolerance)
