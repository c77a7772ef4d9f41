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
texture, never aligned exactly, leaks into the difference: +23-52 % on the aerial city.) Each of
`FRAMES` frames spread through the video is paired with the nearest frame before and after it
that does not repeat it (`repeats`: a frame repeated by telecine pulldown holds the same grain, so
its difference holds none); on the flat pixels:

* strength curve: per intensity bin (of the pair's blurred mean luma) the deviation of the grain
  whose clipped difference has the difference's robust deviation (`robust_sd`: trimmed at 3
  deviations, not held to whole code values as the median absolute deviation is): near black and
  white, grain clipped to [0, 1] measures weaker than it is (`clipped_deviation`);
* AR coefficients: Yule-Walker's equations on the grain's autocovariance, measured as the product
  of the frame's two differences, one at p and the other at p+k (`grain_covariance`): both hold the
  frame's grain, and the neighbours' grains are independent of it and of each other, so the product
  is the frame's own grain's autocovariance alone. A difference's own autocovariance also holds
  the warped neighbour's grain, which a nearest-neighbour warp along a flow that varies from pixel
  to pixel (as flows on fine texture do) scatters, so that it is less correlated than it was: on
  the aerial city that measured the diagonal offsets 0.03-0.04 low, and grain re-made from it was
  5-19 % less correlated at lags 1-3 (a smooth zoom's rounding seams alone change little). Samples
  beyond 4 deviations of either difference are left out; where the product makes no
  autocovariance (Yule-Walker's matrix not positive definite: misaligned scene, with opposite signs
  in the two differences, outweighing the grain), each difference's own is used, and where neither
  is one, white grain (`grain_correlation`). The coefficients are those whose AV1 synthesis re-makes
  that autocorrelation (`match_synthesis`). A filter that is not stable (what a codec left of a
  film's grain can fit one) is scaled down until its synthesis is stationary (`stable`).

The measurement passes over the triples (frame, neighbours, flows) three times: flat limits,
strength curve, coefficients. They wait on disk in the analysis' folder and are loaded one at a
time (`SpilledTriples`), and the first two passes read at most `_LIMIT_PIXELS` / `_SAMPLE_PIXELS`
pixels of a pair, so that memory does not grow with the frames' size times their number (4K scans).

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
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.special import ndtr

from ..errors import VidrestoreError
from ..flow import backward_warp, create_flow
from ..io.colour import luma
from ..io.npy_rows import NpyRows
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window
from ..synth.film import (
    GRAIN_BLOCK,
    add_grain,
    grain_field,
    grain_scaling,
    grain_template,
    grain_templates,
)
from .denoise import Denoise

FLAT = 1.5            # flat: the pair mean's fine-detail energy within this many times what grain alone puts there
FRAMES = 12           # frames, spread over the video, it is measured on (each against both neighbours)
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
_MATCH_FIELDS = 512   # synthesized 128x128 grain fields (a template each) it is measured on
GROWTH = 1.2          # most a template's deviation may grow from its first rows to its last (`stable`)
REPEAT = 1 / 255      # a frame within this mean absolute luma difference of another repeats it (pulldown, a duplicate)
_REPEAT_SEARCH = 4    # frames each side searched for a neighbour that does not repeat the frame
_ROUNDING = (1 / 255) ** 2 / 12   # fine-detail energy of 8-bit rounding alone (a uniform error of one code value)
_LIMIT_PIXELS = 2 ** 18    # most pixels of a pair the flat limits are found on (every 2nd row and column up to 720p)
_SAMPLE_PIXELS = 2 ** 19   # most flat pixels of a pair the strength curve is measured on (all up to 720x576)


@dataclass(frozen=True)
class PairMaps:
    """One frame pair's maps (frame size): the scene (the pair's mean RGB, blurred) and its luma, the
    difference (frame minus the warped neighbour, luma), the fine-detail energies of the mean's luma
    and of the difference, and where the pixel is inside the warp."""

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


def pair_maps(a: np.ndarray, b: np.ndarray, flow: np.ndarray) -> PairMaps:
    """The maps of frame `a` against frame `b` warped onto it (nearest-neighbour)."""
    warped, inside = backward_warp(b, flow, interpolation=cv2.INTER_NEAREST)
    mean = 0.5 * (a + warped)
    scene = cv2.GaussianBlur(mean, (0, 0), _LEVEL_SIGMA)
    d = luma(a) - luma(warped)
    return PairMaps(scene, luma(scene), d, detail_energy(luma(mean)), detail_energy(d), inside > 0)


def _bin_of(level: np.ndarray) -> np.ndarray:
    return np.clip((level * BINS).astype(np.int64), 0, BINS - 1)


def flat_limits(maps: Iterable[PairMaps]) -> np.ndarray:
    """Per intensity bin, the most fine-detail energy of the pair's mean a flat pixel may have:
    `FLAT` times the grain's own, which is a quarter of the difference's median energy on the bin's
    flat pixels (found in `_ROUNDS` rounds from its least detailed `_SEED`), and at least what 8-bit
    rounding alone puts there (`_ROUNDING`: grain-free footage whose frames align exactly differs by
    nothing); -1 where a bin has too few. Found on every k-th row and column, so that a pair gives at
    most `_LIMIT_PIXELS`."""
    sub = []
    for m in maps:
        k = max(2, math.ceil(math.sqrt(m.level.size / _LIMIT_PIXELS)))
        sub.append(tuple(np.ascontiguousarray(x[::k, ::k]) for x in (_bin_of(m.level), m.detail, m.diff_detail, m.valid)))
    bins, detail, diff = (np.concatenate([s[k][s[3]] for s in sub]) for k in range(3))
    limits = np.full(BINS, -1.0)
    for b in range(BINS):
        inbin = bins == b
        if inbin.sum() < _MIN_PIXELS:
            continue
        flat = inbin & (detail <= np.quantile(detail[inbin], _SEED))
        for _ in range(_ROUNDS):
            if flat.sum() < _MIN_PIXELS // 4:      # the subsample holds a quarter of the pixels or fewer
                break
            limits[b] = FLAT * max(float(np.median(diff[flat])) / 4, _ROUNDING)
            flat = inbin & (detail <= limits[b])
    return limits


def pair_samples(m: PairMaps, limits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scene RGB (N, 3), intensity, difference) at a pair's flat pixels (every k-th of them, in raster
    order, where there are more than `_SAMPLE_PIXELS`)."""
    ok = m.valid & (m.detail <= limits[_bin_of(m.level)])
    at = np.flatnonzero(ok)
    at = at[::max(1, math.ceil(at.size / _SAMPLE_PIXELS))]
    return m.scene.reshape(-1, 3)[at], m.level.ravel()[at], m.diff.ravel()[at]


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


def repeats(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether frame `b` repeats frame `a` (within `REPEAT` mean absolute luma difference: what a codec
    changes in a repeated frame, where a new frame's grain or motion changes several code values)."""
    return float(np.mean(np.abs(luma(a) - luma(b)))) < REPEAT


def closer_flow(a: np.ndarray, b: np.ndarray, flows: list[np.ndarray]) -> np.ndarray:
    """Of candidate flows from frame `a` to frame `b`, the one whose nearest-neighbour warp of `b`
    differs least from `a` (mean absolute luma difference inside the warp)."""
    def misfit(flow: np.ndarray) -> float:
        warped, inside = backward_warp(b, flow, interpolation=cv2.INTER_NEAREST)
        return float(np.mean(np.abs(luma(a) - luma(warped))[inside > 0]))

    return min(flows, key=misfit)


def synthesized_correlation(coeffs: np.ndarray, lag: int, seed: int = 0) -> dict[tuple[int, int], float]:
    """The autocorrelation at `_lags(lag)` of AV1 grain synthesized from `coeffs` (as `synth.film` and
    the decoder make it: a 73x82 template per field, 32x32 blocks of it at random offsets), measured on
    `_MATCH_FIELDS` seeded 128x128 fields stacked (their seams are block seams)."""
    rngs = [np.random.default_rng([seed, 0x6A7C, i]) for i in range(_MATCH_FIELDS)]
    templates = grain_templates({"ar_coeff_lag": lag, "ar_coeffs_y": list(coeffs)}, rngs)
    f = np.concatenate([grain_field(t, 128, 128, rng) for t, rng in zip(templates, rngs)]).astype(np.float64)
    h, w = f.shape
    cov = {(dy, dx): float(np.mean(f[:h - dy, max(0, -dx):w - max(0, dx)] * f[dy:, max(0, dx):w + min(0, dx)]))
           for dy, dx in _lags(lag)}
    return {k: v / cov[(0, 0)] for k, v in cov.items()}


def match_synthesis(rho: dict[tuple[int, int], float], lag: int, seed: int = 0) -> np.ndarray:
    """AR coefficients whose AV1 synthesis has the autocorrelation `rho` (at `_lags(lag)`, as
    `grain_correlation` gives it). Yule-Walker's coefficients do not quite re-make it: a template's
    first rows and columns start from white noise, and the blocks' seams cut the correlation (most at
    the longest lags), and a two-dimensional causal filter solved from its taps' autocorrelation does
    not reproduce that autocorrelation exactly. Each round synthesizes grain from the current
    coefficients (`synthesized_correlation`, the same seeded fields every round) and adds what it
    misses to the autocorrelation the coefficients are solved from (a fixed-point iteration)."""
    solved_from = dict(rho)
    coeffs = yule_walker(solved_from, lag)
    for _ in range(_MATCH_ROUNDS):
        got = synthesized_correlation(coeffs, lag, seed)
        trial = {k: v + rho[k] - got[k] for k, v in solved_from.items()}
        moved = yule_walker(trial, lag)
        if moved is None:           # no autocorrelation any more: keep the last coefficients
            break
        solved_from, coeffs = trial, moved
    return coeffs


Triple = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _lags(lag: int) -> list[tuple[int, int]]:
    """Every offset between two of the AR filter's taps or a tap and the pixel, one of each pair
    (k, -k): the autocovariances Yule-Walker's equations ask for."""
    taps = _offsets(lag) + [(0, 0)]
    return sorted({max((a[0] - b[0], a[1] - b[1]), (b[0] - a[0], b[1] - a[1])) for a in taps for b in taps})


def cross_covariance(u1: np.ndarray, u2: np.ndarray, ok: np.ndarray, lags: list[tuple[int, int]]) -> np.ndarray:
    """Per offset k: the sum over p of (u1(p) u2(p+k) + u2(p) u1(p+k)) / 2 where `ok` holds at p and
    p+k, and the count of those p."""
    h, w = ok.shape
    out = np.zeros((len(lags), 2))
    for i, (dy, dx) in enumerate(lags):
        y0, y1, x0, x1 = max(0, -dy), h - max(0, dy), max(0, -dx), w - max(0, dx)
        here, there = (slice(y0, y1), slice(x0, x1)), (slice(y0 + dy, y1 + dy), slice(x0 + dx, x1 + dx))
        both = ok[here] & ok[there]
        out[i] = 0.5 * float(np.sum((u1[here] * u2[there] + u2[here] * u1[there])[both])), float(both.sum())
    return out


def yule_walker(cov: dict[tuple[int, int], float], lag: int) -> np.ndarray | None:
    """AR coefficients (AV1's order) from the autocovariance at `_lags(lag)` (Yule-Walker's
    equations); None where it is not an autocovariance (its matrix not positive definite)."""
    def rho(k: tuple[int, int]) -> float:
        return cov[max(k, (-k[0], -k[1]))] / cov[(0, 0)]

    if cov[(0, 0)] <= 0:
        return None
    taps = _offsets(lag)
    r = np.array([[rho((a[0] - b[0], a[1] - b[1])) for b in taps] for a in taps])
    if np.linalg.eigvalsh(r).min() <= 0:
        return None
    return np.linalg.solve(r, np.array([rho(k) for k in taps]))


def grain_covariance(triples: Iterable[Triple], limits: np.ndarray, xs: list[float], sd: list[float],
                     lag: int) -> tuple[dict, dict]:
    """The grain's autocovariance (of the grain over its strength) at `_lags(lag)`, from each
    triple's two differences (the frame minus either neighbour warped onto it) where both are flat:
    the product of one at p and the other at p+k (the frame's own grain alone), and each one's own
    (two fields, the warped one scattered by the warp, misaligned scene included)."""
    lags = _lags(lag)
    cross, own = np.zeros((len(lags), 2)), np.zeros((len(lags), 2))
    for a, b, fb, c, fc in triples:
        m1, m2 = pair_maps(a, b, fb), pair_maps(a, c, fc)
        s = np.sqrt(2) * np.maximum(np.interp(m1.level, xs, sd), 1e-6)     # a difference's deviation
        u1, u2 = m1.diff / s, m2.diff / s
        ok = m1.valid & m2.valid & (np.abs(u1) < _INLIER) & (np.abs(u2) < _INLIER)   # texture the flow missed is not grain
        for m in (m1, m2):
            ok &= m.detail <= limits[_bin_of(m.level)]
        cross += cross_covariance(u1, u2, ok, lags)
        own += cross_covariance(u1, u1, ok, lags) + cross_covariance(u2, u2, ok, lags)
    return tuple(dict(zip(lags, x[:, 0] / np.maximum(x[:, 1], 1))) for x in (cross, own))


def grain_correlation(cross: dict, own: dict, lag: int) -> dict[tuple[int, int], float] | None:
    """The grain's autocorrelation from `grain_covariance`'s two estimates: the product of the two
    differences; where that is no autocovariance (its Yule-Walker matrix not positive definite), each
    difference's own; where neither is (no grain the differences show: on a film whose grain its codec
    took, what is left between frames is smooth and the correlations come out at 1 or above), None:
    white grain."""
    for cov in (cross, own):
        if yule_walker(cov, lag) is not None:
            return {k: v / cov[(0, 0)] for k, v in cov.items()}
    return None


def template_growth(coeffs: np.ndarray, lag: int, seed: int = 0) -> float:
    """How much the deviation of templates synthesized from `coeffs` grows from their first 24 rows to
    their last (mean over four seeded templates): about 1 for a stable AR filter, far more for one that
    is not (its recursion amplifies row after row)."""
    model = {"ar_coeff_lag": lag, "ar_coeffs_y": list(coeffs)}
    ratios = []
    for k in range(4):
        with np.errstate(all="ignore"):
            t = grain_template(model, np.random.default_rng([seed, 0x57AB, k]))
        ratios.append(float(t[-24:].std() / max(float(t[:24].std()), 1e-12)))
    return float(np.mean(ratios)) if np.all(np.isfinite(ratios)) else math.inf


def stable(coeffs: np.ndarray, lag: int) -> np.ndarray:
    """`coeffs` scaled down (by 3 % steps) until their AR filter is stable (`template_growth` at most
    `GROWTH`): an unstable filter's synthesis is not stationary -- grain re-made from it changes strength
    from block to block. Stable filters are returned as they are."""
    for _ in range(100):
        if template_growth(coeffs, lag) <= GROWTH:
            break
        coeffs = 0.97 * coeffs
    return coeffs


def _pairs(triples: Iterable[Triple]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for a, b, fb, c, fc in triples:
        yield a, b, fb
        yield a, c, fc


class SpilledTriples(Sequence):
    """Up to `capacity` triples kept in a folder (`io.npy_rows`: read back one at a time through the file
    descriptor): `fit_grain` passes over them three times, and `FRAMES` triples of 4K frames with their
    flows held in memory are about 5 GB."""

    def __init__(self, folder: Path, capacity: int):
        self.folder, self.capacity, self.count = folder, capacity, 0
        shutil.rmtree(folder, ignore_errors=True)     # an interrupted analysis's
        folder.mkdir(parents=True)
        self._frames: NpyRows | None = None
        self._flows: NpyRows | None = None

    def append(self, triple: Triple) -> None:
        a, b, fb, c, fc = triple
        if self._frames is None:
            self._frames = NpyRows.create(self.folder / "frames.npy", (self.capacity, 3, *a.shape), np.float32)
            self._flows = NpyRows.create(self.folder / "flows.npy", (self.capacity, 2, *fb.shape), np.float32)
        self._frames[self.count] = np.stack([a, b, c])
        self._flows[self.count] = np.stack([fb, fc])
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> Triple:
        if not 0 <= k < self.count:
            raise IndexError(k)
        frames, flows = self._frames[k], self._flows[k]
        return frames[0], frames[1], flows[0], frames[2], flows[1]

    def remove(self) -> None:
        """Close the files and delete the folder."""
        for rows in (self._frames, self._flows):
            if rows is not None:
                rows.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def strength_curve(triples: Sequence[Triple], limits: np.ndarray) -> tuple[list[float], list[float]]:
    """Per intensity bin with enough flat pixels: its median intensity and the grain's deviation
    there (`clipped_deviation` of the differences' robust deviation)."""
    samples = [pair_samples(pair_maps(*p), limits) for p in _pairs(triples)]   # maps again: one pair's at a time
    scene, level, d = (np.concatenate([s[k] for s in samples]) for k in range(3))
    del samples
    xs, sd = [], []
    bins = _bin_of(level)
    for b in range(BINS):
        sel = bins == b
        if sel.sum() >= _MIN_PIXELS:
            xs.append(float(np.median(level[sel])))
            sd.append(clipped_deviation(scene[sel], d[sel]))
    return xs, sd


def fit_grain(triples: Sequence[Triple], lag: int = 2) -> dict:
    """The AV1 grain model (synth.film's form) from (frame, neighbour before, flow frame -> before,
    neighbour after, flow frame -> after) triples, passed over three times, one at a time."""
    if not triples:
        raise VidrestoreError("grain needs at least three frames to be measured")
    limits = flat_limits(pair_maps(*p) for p in _pairs(triples))
    xs, sd = strength_curve(triples, limits)
    if not xs:
        raise VidrestoreError("no flat areas to measure the grain on")
    rho = grain_correlation(*grain_covariance(triples, limits, xs, sd, lag), lag)
    coeffs = np.zeros(len(_offsets(lag))) if rho is None else stable(match_synthesis(rho, lag), lag)
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
        return {"lag": self.lag, "frames": FRAMES, "estimator": "both neighbours", "match": ["autocorrelation", _MATCH_FIELDS, _MATCH_ROUNDS], "repeat": REPEAT, "growth": GROWTH, "flat": FLAT, "bins": BINS, "seed_share": _SEED,
                "rounding": _ROUNDING, "limit_pixels": _LIMIT_PIXELS, "sample_pixels": _SAMPLE_PIXELS,
                "flow": self.flow.config(), "smooth_flow": self.smooth_flow.config(), "flow_blur": FLOW_BLUR, "flow_choice": "closer"}

    def pair_flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The flow from `a` to `b`: of the frames' own and of the frames blurred by `FLOW_BLUR`, the closer (`closer_flow`)."""
        blur = [cv2.GaussianBlur(x, (0, 0), FLOW_BLUR) for x in (a, b)]
        return closer_flow(a, b, [self.flow(a, b), self.smooth_flow(*blur)])

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        """Measure the model on `FRAMES` frames spread over the video, each with the nearest frame
        before and after it that does not repeat it: a repeated frame (telecine pulldown, a
        duplicate) holds the same grain, so its difference holds none."""
        count = max(3, info.frame_count or 3)
        picks = set(np.linspace(1, count - 2, min(count - 2, FRAMES)).round().astype(int).tolist())
        triples, recent, waiting = SpilledTriples(cache_dir / "grain-triples", len(picks)), deque(maxlen=_REPEAT_SEARCH), None
        for f in frames:
            if waiting is not None:
                centre, before = waiting
                if not repeats(f.rgb, centre.rgb):
                    triples.append((centre.rgb, before.rgb, self.pair_flow(centre.rgb, before.rgb),
                                    f.rgb, self.pair_flow(centre.rgb, f.rgb)))
                    waiting = None
                elif f.index - centre.index >= _REPEAT_SEARCH:
                    waiting = None
            if waiting is None and f.index in picks:
                before = next((r for r in reversed(recent) if not repeats(r.rgb, f.rgb)), None)
                waiting = None if before is None else (f, before)
            recent.append(f)
        try:
            model = fit_grain(triples, self.lag)
        except VidrestoreError as e:
            raise VidrestoreError(e.message, info.path) from None
        finally:
            triples.remove()
        (cache_dir / "grain.json").write_text(json.dumps(model, indent=1))

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
