"""Film flicker measured on the same content: the deflicker of `vidrestore film`.

`Deflicker` maps each frame's luma quantiles onto their running median over the shot; when the
camera moves, the quantiles change with what is in view, and it takes that for flicker (a GoPro
walkway clip, not flickering, changed by a mean CIEDE2000 of 1.8). Flicker is a change of tone of
the same picture, so here it is measured between consecutive frames aligned by the flow:

* per pair (t-1, t) in a shot, on the pixels where the flow from t lands inside t-1 and was
  followed (luma at `_WIDTH` px wide, DIS MEDIUM; `pair_curve`), the quantiles of frame t and of the warped frame t-1 at
  `deflicker.LEVELS` give a monotone curve from t-1's tones to t's (`deflicker.tone_curve`):
  the same content, so the curve is the exposure change alone;
* chained from the shot's first frame, the curves give each frame's tone curve C_t from the
  shot's first tones (a grid of 33) to its own;
* each grid point's track is smoothed over the shot as `Deflicker` smooths its quantiles (running
  median over `window` seconds, then a Gaussian of a sixth of that), S_t;
* frame t is mapped by S_t after the inverse of C_t, on R, G and B alike: only the part of its
  exposure that jumps against its neighbours is taken out.

Errors of the pairwise curves add up along the shot, but slowly, and the slow part is what the
smoothing keeps. Cuts as `Deflicker` finds them start a new chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import VidrestoreError
from ..flow import backward_warp, create_flow
from ..io.probe import VideoInfo
from ..io.reader import Frame
from .deflicker import (CUT_THRESHOLD, LEVELS, Deflicker, _luma_small, frame_statistics, reference_quantiles, shot_starts,
                        tone_curve)

_WIDTH = 256                       # luma width the pairs are aligned and compared at
_GRID = np.linspace(0.0, 1.0, 33)  # the shot's first tones, whose path through the shot is followed


def pair_curve(y: np.ndarray, prev: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of the monotone curve from the tones of `prev` to those of `y` on the same content:
    their quantiles at LEVELS over the pixels where `flow` (y -> prev) lands inside `prev` and
    was followed (the difference from the frame's median difference within 3 robust deviations
    and 0.01: occlusions and motion the flow missed are left out)."""
    warped, inside = backward_warp(prev, flow)
    ok = inside > 0
    if ok.sum() < len(LEVELS):
        return _GRID, _GRID
    r = y - warped
    dev = np.abs(r - np.median(r[ok]))
    ok &= dev <= 3 * 1.4826 * np.median(dev[ok]) + 0.01
    return tone_curve(np.quantile(warped[ok], LEVELS), np.quantile(y[ok], LEVELS))


class FilmDeflicker(Deflicker):
    """Two-pass deflicker of the film chain (`vidrestore film`): film flicker measured between
    aligned consecutive frames (module docstring).

    Args:
        window: length in seconds of the running median that makes the reference tone.
    """

    name = "deflicker"

    def __init__(self, window: float = 1.0):
        super().__init__(window)
        self.flow = create_flow("dis", preset="medium")

    def config(self) -> dict:
        return {"window": self.window, "aligned": True, "flow": self.flow.config()}

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        paths, scores, prev, prev_z = [], [0.0], None, None
        for f in frames:
            y = _luma_small(f.rgb, _WIDTH)
            _, z = frame_statistics(f.rgb)
            if prev_z is not None:
                scores.append(float(np.abs(z - prev_z).mean()))
            if prev is None or scores[-1] > CUT_THRESHOLD:
                paths.append(_GRID.copy())
            else:
                flow = self.flow.flow_prepared(self.flow.prepare(y), self.flow.prepare(prev), y.shape)
                paths.append(np.interp(paths[-1], *pair_curve(y, prev, flow)))
            prev, prev_z = y, z
        if not paths:
            raise VidrestoreError("no frames to deflicker")
        path = np.maximum.accumulate(np.array(paths), axis=1)
        starts = shot_starts(np.array(scores))
        window = max(3, round(self.window * float(info.fps or 25)) | 1)
        np.savez(cache_dir / "paths.npz", path=path, reference=reference_quantiles(path, starts, window))
        (cache_dir / "summary.json").write_text(json.dumps({"frames": len(path), "window_frames": window, "shots": starts}))

    def load(self, cache_dir: Path) -> None:
        data = np.load(cache_dir / "paths.npz")
        ramp = 1e-6 * np.arange(len(_GRID))          # strictly increasing knots for np.interp
        self.curves = [(c + ramp, np.clip(s, 0.0, 1.0)) for c, s in zip(data["path"], data["reference"])]
        self.summary = json.loads((cache_dir / "summary.json").read_text())
