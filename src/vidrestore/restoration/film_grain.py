"""Film grain: measured as the AV1 film-grain model, kept through restoration, removed, or
re-synthesized after it.

The AV1 model (Norkin & Birkbeck, DCC 2018; AV1 specification sec. 7.18.3) describes grain as
white Gaussian noise through a causal autoregressive filter (coefficients on the neighbours up
to `lag` rows above and columns either side, then to the left), scaled at each pixel by a
piecewise-linear function of the intensity. `vidrestore.synth.film` synthesizes it; this module
measures it, in the same form (`ar_coeff_lag`, `ar_coeffs_y`, `scaling_points_y`), so the one
synthesizer re-makes it.

Measurement (`fit_grain`): grain is independent from frame to frame and the scene is not, so the
difference of a frame and its neighbour warped onto it is, where the scene is flat, the
difference of two independent grain fields -- the same autocorrelation, twice the variance.
Flat: the local standard deviation of the pair's mean, blurred, is among the lowest `FLAT` of
the frame. On the flat pixels of pairs spread through the video:

* strength curve: per intensity bin (of the pair's mean luma), the robust standard deviation
  (1.4826 MAD) of the difference / sqrt(2);
* AR coefficients: the difference divided by that strength (unit variance), regressed by least
  squares on its causal neighbours within `lag` (lag 2: 12 coefficients, as AV1's 4:2:0 luma).

The neighbour is warped with nearest-neighbour sampling: interpolation between pixels would
smooth its grain (less variance, more correlation) and in flat areas the half-pixel it misses is
invisible.

Handling in the film chain (`restoration/film.py`):

* remove: the `denoise` stage (flow-aligned temporal NLM + DCT shrinkage) before restoration;
* keep: the same, with the removed residual (grain) held per frame (`GrainSplit`) and added back
  after the other stages (`GrainMerge`): restoration never sees, smears or repairs the grain;
* resynth: the model is measured on the input first (`GrainMeasure`, an analysis pass), the grain
  removed, and after restoration grain of the measured model is synthesized onto the result
  (`GrainSynth`), a new field per frame (seeded by the frame index: a resumed run makes the same).

References:
    Norkin, Birkbeck, "Film grain synthesis for AV1 video codec", DCC 2018.
    AV1 Bitstream & Decoding Process Specification, sec. 7.18.3 (film grain synthesis).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import backward_warp, create_flow
from ..io.colour import luma
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window
from ..synth.film import GRAIN_BLOCK, add_grain, grain_field, grain_template
from .denoise import Denoise

FLAT = 0.3            # share of each frame's pixels (the flattest) the grain is measured on
PAIRS = 12            # frame pairs, spread over the video, it is measured on
BINS = 8              # intensity bins of the strength curve
_MIN_PIXELS = 500     # fewest flat pixels for a bin to count
_FLAT_SIGMA = 2.0     # Gaussian sigma (px) of the local-deviation map that finds flat areas
_INLIER = 4.0         # samples beyond this many grain deviations (of the difference) are left out of the AR fit


def _offsets(lag: int) -> list[tuple[int, int]]:
    """The AR filter's causal neighbours (dy, dx) in AV1's coefficient order."""
    return [(dy, dx) for dy in range(-lag, 1) for dx in range(-lag, lag + 1) if dy < 0 or dx < 0]


def flat_mask(y: np.ndarray, share: float = FLAT) -> np.ndarray:
    """Bool mask of the `share` of pixels where the Gaussian-weighted local deviation of `y` is lowest."""
    mean = cv2.GaussianBlur(y, (0, 0), _FLAT_SIGMA)
    dev = cv2.GaussianBlur((y - mean) ** 2, (0, 0), _FLAT_SIGMA)
    return dev <= np.quantile(dev, share)


def pair_samples(a: np.ndarray, b: np.ndarray, flow: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intensity, difference, neighbour differences (N, taps)) at the flat pixels of frame `a`
    against frame `b` warped onto it (nearest-neighbour), whose AR neighbourhood is flat too."""
    ya, yb = luma(a), luma(b)
    warped, inside = backward_warp(yb, flow, interpolation=cv2.INTER_NEAREST)
    d = ya - warped
    mean = 0.5 * (ya + warped)
    smooth = cv2.GaussianBlur(mean, (0, 0), _FLAT_SIGMA)
    ok = flat_mask(smooth) & (inside > 0)
    ok = cv2.erode(ok.astype(np.uint8), np.ones((lag + 1, 2 * lag + 1), np.uint8), anchor=(lag, lag)) > 0
    ok[:lag] = ok[:, :lag] = ok[:, -lag:] = False
    ys, xs = np.nonzero(ok)
    taps = np.stack([d[ys + dy, xs + dx] for dy, dx in _offsets(lag)], axis=1)
    return smooth[ys, xs], d[ys, xs], taps


def fit_grain(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], lag: int = 2) -> dict:
    """The AV1 grain model (synth.film's form) from (frame, neighbour, flow frame -> neighbour) pairs."""
    samples = [pair_samples(a, b, f, lag) for a, b, f in pairs]
    if not samples:
        raise VidrestoreError("grain needs at least two frames to be measured")
    level = np.concatenate([s[0] for s in samples])
    d = np.concatenate([s[1] for s in samples])
    taps = np.concatenate([s[2] for s in samples])
    edges = np.linspace(0.0, 1.0, BINS + 1)
    xs, sd = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (level >= lo) & (level < hi)
        if sel.sum() >= _MIN_PIXELS:
            v = d[sel]
            xs.append(float(np.median(level[sel])))
            sd.append(float(1.4826 * np.median(np.abs(v - np.median(v))) / np.sqrt(2)))
    if not xs:
        raise VidrestoreError("no flat areas to measure the grain on")
    strength = np.maximum(np.interp(level, xs, sd), 1e-6)[:, None]
    unit, near = d / strength[:, 0], taps / strength
    inlier = (np.abs(unit) < _INLIER) & (np.abs(near) < _INLIER).all(axis=1)   # texture the flow did not align is not grain
    coeffs, *_ = np.linalg.lstsq(near[inlier], unit[inlier], rcond=None)
    points = [[0.0, sd[0]]] * (xs[0] > 0) + [[x, s] for x, s in zip(xs, sd)] + [[1.0, sd[-1]]] * (xs[-1] < 1)
    return {"ar_coeff_lag": lag, "ar_coeffs_y": np.round(coeffs, 4).tolist(),
            "scaling_points_y": [[round(x, 4), round(s, 6)] for x, s in points], "block": GRAIN_BLOCK}


class GrainMeasure(Stage):
    """Analysis-only stage: measures the AV1 grain model on the frames it sees (renders them unchanged)."""

    name = "grain-measure"
    two_pass = True

    def __init__(self, lag: int = 2):
        self.lag = int(lag)
        self.flow = create_flow("dis", preset="medium")
        self.model: dict | None = None

    def config(self) -> dict:
        return {"lag": self.lag, "pairs": PAIRS, "flat": FLAT, "bins": BINS}

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        count = max(2, info.frame_count or 2)
        picks = set(np.linspace(0, count - 2, min(count - 1, PAIRS)).round().astype(int).tolist())
        pairs, prev = [], None
        for f in frames:
            if prev is not None and prev.index in picks:
                pairs.append((prev.rgb, f.rgb, self.flow(prev.rgb, f.rgb)))
            prev = f
        (cache_dir / "grain.json").write_text(json.dumps(fit_grain(pairs, self.lag), indent=1))

    def load(self, cache_dir: Path) -> None:
        self.model = json.loads((cache_dir / "grain.json").read_text())

    def process(self, window: Window) -> np.ndarray:
        return window.frame.rgb


class GrainSynth(Stage):
    """Per-frame stage: grain of the model `measure` found, synthesized onto each frame (a new
    field per frame, seeded by `seed` and the frame index)."""

    name = "grain-synth"

    def __init__(self, measure: GrainMeasure, seed: int = 0):
        self.measure, self.seed = measure, int(seed)
        self._template: np.ndarray | None = None

    def config(self) -> dict:
        return {"seed": self.seed, "measure": self.measure.config()}

    def process(self, window: Window) -> np.ndarray:
        model = self.measure.model
        if model is None:
            raise VidrestoreError("grain re-synthesis needs the grain measured first: run it through vidrestore.restore()")
        if self._template is None:
            self._template = grain_template(model, np.random.default_rng([self.seed, 0x64A1]))
        rgb = window.frame.rgb
        field = grain_field(self._template, *rgb.shape[:2], np.random.default_rng([self.seed, 0x64A2, window.index]))
        return add_grain(rgb, model, field).astype(np.float32)


class GrainSplit(Stage):
    """The `denoise` stage, holding what it removed (the grain) per frame for `GrainMerge`."""

    name = "grain-split"
    two_pass = True

    def __init__(self, denoise: Denoise | None = None):
        self.denoise = denoise or Denoise()
        self.radius = self.denoise.radius
        self.held: dict[int, np.ndarray] = {}

    def config(self) -> dict:
        return {"denoise": self.denoise.config()}

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        self.denoise.analyze(frames, info, cache_dir)

    def load(self, cache_dir: Path) -> None:
        self.denoise.load(cache_dir)

    def process(self, window: Window) -> np.ndarray:
        clean = self.denoise.process(window)
        self.held[window.index] = window.frame.rgb - clean
        return clean


class GrainMerge(Stage):
    """Per-frame stage: the grain `split` removed from this frame, added back."""

    name = "grain-merge"

    def __init__(self, split: GrainSplit):
        self.split = split

    def config(self) -> dict:
        return {"split": self.split.config()}

    def process(self, window: Window) -> np.ndarray:
        grain = self.split.held.pop(window.index, None)
        if grain is None:
            raise VidrestoreError(f"no grain held for frame {window.index}: grain-merge must follow grain-split in one chain")
        for old in [i for i in self.split.held if i < window.index]:
            del self.split.held[old]
        return np.clip(window.frame.rgb + grain, 0.0, 1.0)
