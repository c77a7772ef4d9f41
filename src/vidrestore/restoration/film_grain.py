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
difference of two independent grain fields -- the same autocorrelation, twice the variance. The
pair's mean holds the scene and the sum of the same two fields, which is independent of their
difference (sum and difference of two independent Gaussian fields of one law are independent):
flat pixels are chosen on the mean alone, so the choice does not bias what is measured on the
difference. Flat: the local energy of the mean's fine detail (its residual from a blur) is within
`FLAT` times what the grain alone puts there, per intensity bin -- a quarter of the difference's
energy on the flat pixels of that bin (the sum of two fields halved has half a field's variance,
the difference twice), found by a few rounds from the bin's least detailed `_SEED`. (A fixed share
of the flattest pixels takes fine texture for flat on densely textured scenes, and the neighbour's
texture, never aligned exactly, leaks into the difference: +23-52 % on the aerial city.) On the
flat pixels of pairs spread through the video:

* strength curve: per intensity bin (of the pair's blurred mean luma) the deviation of the grain
  whose clipped difference has the difference's robust deviation (`robust_sd`: trimmed at 3
  deviations, not held to whole code values as the median absolute deviation is): near black and
  white, grain clipped to [0, 1] measures weaker than it is (`clipped_deviation`);
* AR coefficients: the difference over its deviation, regressed by least squares on its causal
  neighbours within `lag` (lag 2: 12 coefficients, as AV1's luma), samples beyond 4 deviations
  of the difference left out.

The pairs' flow is Farneback's with 45 px windows: DIS (8 px patches at half size) follows the
grain itself in flat areas, so the aligned neighbour's grain there correlates with the frame's
(0.13 on the benchmark's strongly correlated grain on the dog clip, measured while choosing: the
deviation measured 7 % low, the correlation too weak). On smooth scenes under camera motion
(the benchmark's bedroom) those wide windows misalign shading and soft edges by a pixel or more:
the misaligned scene, smooth (lag-1 correlation 0.86), was 7.7 % of the difference's variance on
the flat pixels and made weak grain's fitted correlation 0.14 at lag 1 where the grain's own was
0.11. So each pair also gets Farneback's flow with 25 px windows on the frames blurred by
`FLOW_BLUR` (the blur takes the grain out of what the flow follows), and keeps the one whose warped
neighbour differs less from the frame (`closer_flow`; the misaligned scene's share fell to 3.1 %):
the blurred frames' flow on the bedroom, the frames' own on the aerial city, whose fine texture
the blur takes away. Where both align the scene alike (the nearly still dog) the frames' own can
win by following the grain a little: on the strongly correlated grain it is taken, and the model
implies 0.244 down at lag 3 where the blurred frames' flow gives 0.253 (the grain's own: 0.274). The
neighbour is warped with nearest-neighbour sampling: interpolation between pixels would smooth
its grain (less variance, more correlation) and in flat areas the half-pixel it misses is
invisible.

Handling in the film chain (`restoration/film.py`):

* remove: the `denoise` stage (flow-aligned temporal NLM + DCT shrinkage) before restoration;
* keep: the same, with the removed residual (grain) held per frame (`GrainSplit`) and added back
  after the other stages (`GrainMerge`): restoration never sees, smears or repairs the grain;
* resynth: the model is measured on the input first (`GrainMeasure`, an analysis pass), the grain
  removed, and after restoration grain of the measured model is synthesized onto the result
  (`GrainSynth`), a new template and field per frame (seeded by the frame index: a resumed run
  makes the same); or, with `film --grain-table`, written as the AV1 output's film-grain
  parameters instead (`io.grain_table`).

References:
    Norkin, Birkbeck, "Film grain synthesis for AV1 video codec", DCC 2018.
    AV1 Bitstream & Decoding Process Specification, sec. 7.18.3 (film grain synthesis).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.special import ndtr

from ..errors import VidrestoreError
from ..flow import backward_warp, create_flow
from ..io.colour import luma
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window
from ..synth.film import (
    GRAIN_BLOCK,
    add_grain,
    grain_field,
    grain_scaling,
    grain_template,
)
from .denoise import Denoise

FLAT = 1.5            # flat: the pair mean's fine-detail energy within this many times what grain alone puts there
PAIRS = 12            # frame pairs, spread over the video, it is measured on
BINS = 8              # intensity bins of the strength curve
_MIN_PIXELS = 500     # fewest flat pixels for a bin to count
_LEVEL_SIGMA = 2.0    # Gaussian sigma (px) of the blur of the pair's mean that gives each pixel's intensity
_DETAIL_SIGMA = 2.0   # fine detail: an image minus its Gaussian blur of this sigma (px)
_ENERGY_SIGMA = 4.0   # Gaussian sigma (px) of the window the detail's energy is averaged over
_SEED = 0.3           # the first estimate per bin is taken on this share of its pixels with the least detail
_ROUNDS = 3           # rounds of (estimate grain's energy, choose flat pixels) per bin
_TRIM = 3.0           # the strength is the deviation of the differences within this many deviations
_TRIMMED_SD = math.sqrt(1 - 2 * _TRIM * math.exp(-_TRIM ** 2 / 2) / math.sqrt(2 * math.pi) / math.erf(_TRIM / math.sqrt(2)))
FLOW_WINDOW = 45      # px: the averaging window of the pairs' (Farneback) flow, wide enough not to follow the grain
SMOOTH_WINDOW = 25    # px: the window of the other flow, on the frames blurred by FLOW_BLUR
FLOW_BLUR = 2.5       # Gaussian sigma (px) of that blur
_INLIER = 4.0         # samples beyond this many deviations of the difference are left out of the AR fit
_MATCH_ROUNDS = 3     # rounds of correcting the AR coefficients for what the synthesis loses (`match_synthesis`)
_MATCH_FIELDS = 24    # synthesized 128x128 grain fields (a template each) per round


@dataclass(frozen=True)
class PairMaps:
    """One frame pair's maps (frame size): the scene (the pair's mean RGB, blurred) and its luma, the
    difference (frame minus the warped neighbour, luma), the fine-detail energies of the mean's luma
    and of the difference, and where the pixel and its AR neighbourhood are inside the warp."""

    scene: np.ndarray
    level: np.ndarray
    diff: np.ndarray
    detail: np.ndarray
    diff_detail: np.ndarray
    valid: np.ndarray


def _offsets(lag: int) -> list[tuple[int, int]]:
    """The AR filter's causal neighbours (dy, dx) in AV1's coefficient order."""
    return [(dy, dx) for dy in range(-lag, 1) for dx in range(-lag, lag + 1) if dy < 0 or dx < 0]


def detail_energy(y: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local energy of `y`'s fine detail (`y` minus its blur)."""
    hp = y - cv2.GaussianBlur(y, (0, 0), _DETAIL_SIGMA)
    return cv2.GaussianBlur(hp * hp, (0, 0), _ENERGY_SIGMA)


def _with_neighbours(mask: np.ndarray, lag: int) -> np.ndarray:
    """`mask` where a pixel's causal AR neighbourhood of `lag` lies in `mask` too (and inside the frame)."""
    out = cv2.erode(mask.astype(np.uint8), np.ones((lag + 1, 2 * lag + 1), np.uint8), anchor=(lag, lag)) > 0
    out[:lag] = out[:, :lag] = out[:, -lag:] = False
    return out & mask


def pair_maps(a: np.ndarray, b: np.ndarray, flow: np.ndarray, lag: int) -> PairMaps:
    """The maps of frame `a` against frame `b` warped onto it (nearest-neighbour)."""
    warped, inside = backward_warp(b, flow, interpolation=cv2.INTER_NEAREST)
    mean = 0.5 * (a + warped)
    scene = cv2.GaussianBlur(mean, (0, 0), _LEVEL_SIGMA)
    d = luma(a) - luma(warped)
    return PairMaps(scene, luma(scene), d, detail_energy(luma(mean)), detail_energy(d), _with_neighbours(inside > 0, lag))


def _bin_of(level: np.ndarray) -> np.ndarray:
    return np.clip((level * BINS).astype(np.int64), 0, BINS - 1)


def flat_limits(maps: Iterable[PairMaps]) -> np.ndarray:
    """Per intensity bin, the most fine-detail energy of the pair's mean a flat pixel may have:
    `FLAT` times the grain's own, which is a quarter of the difference's median energy on the bin's
    flat pixels (found in `_ROUNDS` rounds from its least detailed `_SEED`); -1 where a bin has too few."""
    sub = [(_bin_of(m.level[::2, ::2]), m.detail[::2, ::2], m.diff_detail[::2, ::2], m.valid[::2, ::2]) for m in maps]
    bins, detail, diff = (np.concatenate([s[k][s[3]] for s in sub]) for k in range(3))
    limits = np.full(BINS, -1.0)
    for b in range(BINS):
        inbin = bins == b
        if inbin.sum() < _MIN_PIXELS:
            continue
        flat = inbin & (detail <= np.quantile(detail[inbin], _SEED))
        for _ in range(_ROUNDS):
            if flat.sum() < _MIN_PIXELS // 4:      # the subsample holds a quarter of the pixels
                break
            limits[b] = FLAT * float(np.median(diff[flat])) / 4
            flat = inbin & (detail <= limits[b])
    return limits


def pair_samples(m: PairMaps, limits: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(scene RGB (N, 3), intensity, difference, neighbour differences (N, taps)) at a pair's flat
    pixels whose AR neighbourhood is flat too."""
    ok = _with_neighbours(m.valid & (m.detail <= limits[_bin_of(m.level)]), lag)
    ys, xs = np.nonzero(ok)
    taps = np.stack([m.diff[ys + dy, xs + dx] for dy, dx in _offsets(lag)], axis=1)
    return m.scene[ys, xs], m.level[ys, xs], m.diff[ys, xs], taps


def robust_sd(x: np.ndarray) -> float:
    """Standard deviation of the bulk of `x`, as a Gaussian's: the deviation of the samples within
    `_TRIM` deviations of their mean (three rounds from 1.4826 times the median absolute deviation),
    corrected for the trimmed tails. Unlike the median absolute deviation alone it is not held to
    whole code values when `x` is (a difference of 8-bit frames: steps of 10-20 % at 0.03)."""
    centre = float(np.median(x))
    sd = 1.4826 * float(np.median(np.abs(x - centre)))
    for _ in range(3):
        kept = x[np.abs(x - centre) <= _TRIM * sd]
        if kept.size < 2:
            break
        centre, sd = float(kept.mean()), float(kept.std()) / _TRIMMED_SD
    return sd


def _excess(t: np.ndarray) -> np.ndarray:
    """E[max(Z - t, 0)] of a standard normal Z: how much clipping at t deviations takes off the mean."""
    return np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) - t * ndtr(-t)


def unclipped_scene(mean: np.ndarray, sd: float | np.ndarray) -> np.ndarray:
    """The scene under grain of deviation `sd` (a value, or one per element) whose clipped ([0, 1])
    mean is `mean`: near black and white the clipped grain pulls the mean inward, by
    sd * _excess(distance / sd)."""
    scene = mean
    for _ in range(4):
        scene = np.clip(mean + sd * (_excess((1 - scene) / sd) - _excess(scene / sd)), 0.0, 1.0)
    return scene.astype(np.float32)


def unclipped_frame(rgb: np.ndarray, model: dict) -> np.ndarray:
    """A grain-free (denoised) frame made from grainy input, as the scene under the grain: where
    the input's grain was clipped at black or white, removing it left the clipped mean, darker
    than the scene near white (brighter near black), so new grain would clip less than the old."""
    sd = np.repeat(grain_scaling(model, luma(rgb))[..., None], 3, axis=2)
    near = (rgb < 4 * sd) | (rgb > 1 - 4 * sd)
    out = rgb.copy()
    out[near] = unclipped_scene(rgb[near], np.maximum(sd[near], 1e-6))
    return out


def clipped_deviation(mean: np.ndarray, d: np.ndarray, seed: int = 0) -> float:
    """The grain deviation whose frame-to-frame difference has `d`'s robust deviation once the grain
    is added to the scene (whose blurred mean RGB (N, 3) is `mean`) on every channel and clipped to
    [0, 1] (as `add_grain` does, and as any picture is): near black and white the clipped grain
    measures weaker than it is, and a model of the clipped deviation, synthesized and clipped again,
    would be weaker still. Solved by bisection on simulated pairs (at most 20000); without clipping
    it is `d`'s deviation / sqrt(2)."""
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(d))[:20000]
    mean, target = mean[pick].reshape(1, -1, 3), robust_sd(d[pick])
    z = rng.standard_normal((2, 1, len(pick), 1)).astype(np.float32)

    def measured(sd: float) -> float:
        scene = unclipped_scene(mean, sd)
        a, b = (luma(np.clip(scene + sd * zz, 0.0, 1.0)) for zz in z)
        return robust_sd(a - b) * np.sqrt(2) / robust_sd(z[0] - z[1])   # exactly sd * sqrt(2) where nothing clips

    lo, hi = 1e-6, 8.0 * target
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if measured(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def closer_flow(a: np.ndarray, b: np.ndarray, flows: list[np.ndarray]) -> np.ndarray:
    """Of candidate flows from frame `a` to frame `b`, the one whose nearest-neighbour warp of `b`
    differs least from `a` (mean absolute luma difference inside the warp)."""
    def misfit(flow: np.ndarray) -> float:
        warped, inside = backward_warp(b, flow, interpolation=cv2.INTER_NEAREST)
        return float(np.mean(np.abs(luma(a) - luma(warped))[inside > 0]))

    return min(flows, key=misfit)


def ar_fit(field: np.ndarray, lag: int) -> np.ndarray:
    """Least-squares AR coefficients (AV1's order) of a grain field on its causal neighbours."""
    h, w = field.shape
    core = field[lag:, lag:w - lag]
    taps = np.stack([field[lag + dy:h + dy, lag + dx:w - lag + dx].ravel() for dy, dx in _offsets(lag)], axis=1)
    coeffs, *_ = np.linalg.lstsq(taps, core.ravel(), rcond=None)
    return coeffs


def match_synthesis(measured: np.ndarray, lag: int, seed: int = 0) -> np.ndarray:
    """AR coefficients whose AV1 synthesis (a 73x82 template, 32x32 blocks at random offsets:
    `synth.film.grain_field`, and the decoder's film-grain synthesis) has the correlation that
    `measured` describes. The synthesis loses some of the model's correlation -- the template's
    first rows and columns start from white noise, and the blocks' seams cut it -- so grain re-made
    from the measured coefficients is less correlated than the grain they were measured on, most at
    the longest lags. Each round synthesizes grain from the current coefficients, fits them back, and
    adds the shortfall (a fixed-point iteration; seeded, so the same input gives the same model)."""
    coeffs = measured.copy()
    for r in range(_MATCH_ROUNDS):
        rng = np.random.default_rng([seed, 0x6A7C, r])
        model = {"ar_coeff_lag": lag, "ar_coeffs_y": coeffs.tolist()}
        fields = np.concatenate([grain_field(grain_template(model, rng), 128, 128, rng) for _ in range(_MATCH_FIELDS)])
        coeffs = coeffs + (measured - ar_fit(fields, lag))
    return coeffs


def fit_grain(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], lag: int = 2) -> dict:
    """The AV1 grain model (synth.film's form) from (frame, neighbour, flow frame -> neighbour) pairs."""
    if not pairs:
        raise VidrestoreError("grain needs at least two frames to be measured")
    limits = flat_limits(pair_maps(a, b, f, lag) for a, b, f in pairs)
    samples = [pair_samples(pair_maps(a, b, f, lag), limits, lag) for a, b, f in pairs]   # maps again: one pair's at a time
    scene, level, d, taps = (np.concatenate([s[k] for s in samples]) for k in range(4))
    xs, sd = [], []
    bins = _bin_of(level)
    for b in range(BINS):
        sel = bins == b
        if sel.sum() >= _MIN_PIXELS:
            xs.append(float(np.median(level[sel])))
            sd.append(clipped_deviation(scene[sel], d[sel]))
    if not xs:
        raise VidrestoreError("no flat areas to measure the grain on")
    strength = np.sqrt(2) * np.maximum(np.interp(level, xs, sd), 1e-6)[:, None]    # the difference's deviation
    unit, near = d / strength[:, 0], taps / strength
    inlier = (np.abs(unit) < _INLIER) & (np.abs(near) < _INLIER).all(axis=1)   # texture the flow did not align is not grain
    coeffs, *_ = np.linalg.lstsq(near[inlier], unit[inlier], rcond=None)
    coeffs = match_synthesis(coeffs, lag)
    points = [[0.0, sd[0]]] * (xs[0] > 0) + [[x, s] for x, s in zip(xs, sd)] + [[1.0, sd[-1]]] * (xs[-1] < 1)
    return {"ar_coeff_lag": lag, "ar_coeffs_y": np.round(coeffs, 4).tolist(),
            "scaling_points_y": [[round(x, 4), round(s, 6)] for x, s in points], "block": GRAIN_BLOCK}


class GrainMeasure(Stage):
    """Analysis-only stage: measures the AV1 grain model on the frames it sees (renders them unchanged)."""

    name = "grain-measure"
    two_pass = True

    def __init__(self, lag: int = 2):
        self.lag = int(lag)
        self.flow = create_flow("farneback", winsize=FLOW_WINDOW)
        self.smooth_flow = create_flow("farneback", winsize=SMOOTH_WINDOW)
        self.model: dict | None = None

    def config(self) -> dict:
        return {"lag": self.lag, "pairs": PAIRS, "flat": FLAT, "bins": BINS, "seed_share": _SEED, "flow": self.flow.config(),
                "smooth_flow": self.smooth_flow.config(), "flow_blur": FLOW_BLUR, "flow_choice": "closer"}

    def pair_flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The flow from `a` to `b`: of the frames' own and of the frames blurred by `FLOW_BLUR`, the closer (`closer_flow`)."""
        blur = [cv2.GaussianBlur(x, (0, 0), FLOW_BLUR) for x in (a, b)]
        return closer_flow(a, b, [self.flow(a, b), self.smooth_flow(*blur)])

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        count = max(2, info.frame_count or 2)
        picks = set(np.linspace(0, count - 2, min(count - 1, PAIRS)).round().astype(int).tolist())
        pairs, prev = [], None
        for f in frames:
            if prev is not None and prev.index in picks:
                pairs.append((prev.rgb, f.rgb, self.pair_flow(prev.rgb, f.rgb)))
            prev = f
        (cache_dir / "grain.json").write_text(json.dumps(fit_grain(pairs, self.lag), indent=1))

    def load(self, cache_dir: Path) -> None:
        self.model = json.loads((cache_dir / "grain.json").read_text())

    def process(self, window: Window) -> np.ndarray:
        return window.frame.rgb


class GrainSynth(Stage):
    """Per-frame stage: grain of the model `measure` found, synthesized onto each frame: a new
    template and field per frame (as AV1's decoder makes them from each frame's seed; one template
    for a whole clip gives every frame that template's chance correlations), seeded by `seed` and
    the frame index."""

    name = "grain-synth"

    def __init__(self, measure: GrainMeasure, seed: int = 0):
        self.measure, self.seed = measure, int(seed)

    def config(self) -> dict:
        return {"seed": self.seed, "template": "per frame", "onto": "unclipped scene", "measure": self.measure.config()}

    def process(self, window: Window) -> np.ndarray:
        model = self.measure.model
        if model is None:
            raise VidrestoreError("grain re-synthesis needs the grain measured first: run it through vidrestore.restore()")
        rgb = window.frame.rgb
        template = grain_template(model, np.random.default_rng([self.seed, 0x64A1, window.index]))
        field = grain_field(template, *rgb.shape[:2], np.random.default_rng([self.seed, 0x64A2, window.index]))
        return add_grain(unclipped_frame(rgb, model), model, field).astype(np.float32)


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
