"""Faded colour: the white point, black point and per-channel range of a faded print restored,
per shot, smoothed over time.

The dyes of a colour print fade at different rates (cyan fastest, so prints turn red-magenta):
each channel c becomes about offset_c + gain_c * x ** gamma_c, a monotone map of that channel
alone. A monotone map keeps each channel's order, so each channel's extremes stay the fading of
the scene's extremes in that channel; those are close to neutral in nearly all footage (a white
and a black somewhere in view), so fading shows as per-channel black and white points apart:

* black point: per channel, the `TAIL` quantile of its values; white point: the 1 - `TAIL`
  quantile. Each channel's own quantile finds the white of a white thing even where brighter
  coloured things (yellow blocks) fill the brightest pixels by luma;
* both read on the per-pixel median of the frame and its two neighbours, so that one-frame dust
  and dirt are not in the tails, with the pixels of line scratches (`film_scratches.find_lines`,
  unconfirmed) left out: a scratch through the emulsion is near white.

Each channel is mapped linearly so that its black point goes to the channels' mean black and its
white point to the highest channel's white (a dye that fades loses density: the least dimmed
channel is the nearest to the print's range). Fading of gain and offset is undone closely when
the scene's extremes are grey; the gammas drifting apart are not (mid-tones keep that part of the
cast): estimates of them from the frame's own statistics (grey modes at several luma levels,
quantile matching of the channels, ratios of the channels' log gradients at edges) were thrown
off by the scenes' own colours by as much as the fading moves them (README, "Faded colour").
Unfaded footage is left alone: the correction fades in only where the largest gain
correction it needs exceeds `tolerance` (0.15), fully from `tolerance` + 0.1 (README: the gains
the shared clips need). A scene with no white or no black anywhere is taken for faded.

Over time: the points of each shot (cuts as `deflicker` finds them) are smoothed by a robust
local linear fit over `window` seconds (Cleveland's LOWESS: tricube weights, two bisquare
reweightings against outliers), so the correction follows a drift of the fading, at a shot's ends
too, but never flickers.

References:
    Chambah, Besserer, Courtellemont, "Recent progress in automatic digital restoration of color
    motion pictures", SPIE 2002 (faded film, white-patch balance per channel).
    Cleveland, "Robust locally weighted regression and smoothing scatterplots", JASA 1979.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import correlate1d

from ..errors import VidrestoreError
from ..io.colour import luma
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window, register_stage
from .deflicker import CUT_THRESHOLD, frame_statistics, shot_starts
from .film_scratches import find_lines, line_mask

TAIL = 0.005            # share of the pixels (per channel) that make the black and the white point
_RAMP = 0.1             # the correction fades in over this much imbalance above the tolerance
_ROBUST = 2             # bisquare reweightings of the local linear fit over time
_STATS_WIDTH = 256


def shrink(rgb: np.ndarray) -> np.ndarray:
    """The frame at most `_STATS_WIDTH` wide (its statistics are read there)."""
    h, w = rgb.shape[:2]
    if w > _STATS_WIDTH:
        rgb = cv2.resize(rgb, (_STATS_WIDTH, max(1, round(h * _STATS_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return rgb


def end_points(rgb: np.ndarray) -> np.ndarray:
    """(2, 3) the frame's black point and white point, per channel (module docstring), line
    scratches left out."""
    rgb = np.ascontiguousarray(shrink(rgb), dtype=np.float32)
    y = luma(rgb)
    keep = ~line_mask(find_lines(y), y.shape, grow=1).ravel()
    return np.quantile(rgb.reshape(-1, 3)[keep], [TAIL, 1 - TAIL], axis=0).astype(np.float64)


def local_linear(y: np.ndarray, half: int, weight: np.ndarray | None = None) -> np.ndarray:
    """Each column of `y` (frames, tracks) fitted at every frame by a line over the frames within
    `half` of it, tricube-weighted (times `weight` per sample, if given)."""
    d = np.arange(-half, half + 1, dtype=np.float64)
    k = (1 - (np.abs(d) / (half + 1)) ** 3) ** 3
    w = np.ones_like(y) if weight is None else weight
    corr = lambda x, kern: correlate1d(x, kern, axis=0, mode="constant")  # noqa: E731
    a0, a1, a2 = corr(w, k), corr(w, d * k), corr(w, d * d * k)
    b0, b1 = corr(w * y, k), corr(w * y, d * k)
    det = a0 * a2 - a1 * a1
    ok = det > 1e-9 * a0 * a2                     # not so for a shot of one frame: its weighted mean
    return np.where(ok, (a2 * b0 - a1 * b1) / np.where(ok, det, 1.0), b0 / a0)


def smooth_points(points: np.ndarray, starts: list[int], window: int) -> np.ndarray:
    """Per shot, each track of `points` (frames, ...) smoothed by a robust local linear fit over
    `window` frames (module docstring)."""
    out = np.empty_like(points)
    bounds = [*starts, len(points)]
    flat = points.reshape(len(points), -1)
    res = out.reshape(len(points), -1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        fit = local_linear(flat[a:b], window // 2)
        for _ in range(_ROBUST):
            err = flat[a:b] - fit
            scale = 6 * np.maximum(np.median(np.abs(err), axis=0), 1e-6)
            fit = local_linear(flat[a:b], window // 2, np.clip(1 - (err / scale) ** 2, 0, None) ** 2 + 1e-9)
        res[a:b] = fit
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
        return {"window": self.window, "tolerance": self.tolerance, "tail": TAIL, "per_channel": True}

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
