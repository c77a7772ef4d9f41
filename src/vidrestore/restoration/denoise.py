"""Classical video denoising: flow-aligned temporal non-local means, then DCT shrinkage.

Neighbouring frames of a video are independent noisy observations of (nearly) the same scene.
For frame t and each neighbour j within `radius` frames:

1. **Align.** DIS optical flow t -> j, computed on the frames' luma blurred and halved (noise
   of sigma 50 on 8-bit defeats flow at full resolution), backward-warps frame j onto frame t
   (bilinear: bicubic gained 0.2-0.4 dB on synthesized noise but lost 0.66 dB on ViDeNN's real
   low-light frames and raised the warping error on a still-camera clip by a third).
2. **Weigh (temporal NLM).** The patch distance between frame t and the warped neighbour,
   d_j(p) = mean over a 5x5 patch and the channels of (x_t - W x_j)^2 / sigma^2(x), is about 2
   where the alignment holds (two independent noises) and larger where it fails (occlusion,
   motion the flow missed, a cut). The weight w_j = exp(-max(d_j - 2, 0) / h) * valid masks the
   failures pixel by pixel: non-local means (Buades et al. 2005) with the one candidate the flow
   points at instead of a search window, as in motion-compensated NLM video denoisers.
   Misaligned fine texture (the walking GoPro clip's water) differs from the frame by less than
   the noise pixel by pixel, but not in the means of 4x4 pixels, whose noise is 4x smaller (more
   for correlated noise: `box_factor` reads how much from the noise spectrum). So a second test
   compares the luma of those means over 3x3 of them, with its own weight
   exp(-max(d' - COARSE_MARGIN, 0) / h): the generous margin lets pass what real frames change
   between them besides the noise (ViDeNN's real low-light frames lost 1.3 dB at a margin of 2,
   about 0.3 dB at 4, nothing at 8 or 16). On the GoPro clip at sigma 25 it gained 1.4 dB at a
   margin of 8 and 0.9 dB at 16, which is used: at 8 the still-camera dog clip flickered more
   (warping error 1.27x the clean clip's against 1.17x at 16). (A forward-backward occlusion mask
   instead, slope 0.8 as SelfHVD's labels, gained 1.95 dB there but lost 0.81 dB on the real
   frames.)
3. **Average.** P = (x_t + sum_j w_j W x_j) / (1 + sum_j w_j); the noise left in P has variance
   sigma^2 / n_eff with n_eff = (1 + sum w)^2 / (1 + sum w^2) (1 where every neighbour failed).
   Each w_j is first scaled by the taper 1 - d^2 / (radius + 1)^2 of its distance d in frames,
   over 4 neighbours each side (the fast path: 2). On a still camera the residual the spatial step
   keeps in texture is what flickers: consecutive frames' averages differ by the frames that leave
   and enter the window, and a wider window with tapered ends shares more between them. On
   sam2_01_dog at sigma 50 the warping error went from 1.58x the clean clip's (2 each side, equal
   weights) to 1.50 (tapered), 1.23 (3 each side, tapered) and 1.12 (4, tapered; 1.21 untapered),
   and PSNR from 27.02 to 27.35 dB. Neither the rejected neighbours (1.55 with no test at all)
   nor the flow (1.88 with zero flow on this still shot) was the cause.
4. **Spatial step.** Sliding 8x8 DCT hard thresholding of P (`dct_shrink`) at that residual
   sigma, pixel by pixel, then the empirical Wiener filter of P with the thresholded image as its
   pilot (BM3D's two steps, without block matching): it removes what the temporal average could
   not (moving regions, occlusions, the ends of the video, and the residual everywhere). The
   DCT thresholds follow the noise's measured spectrum (camera noise is stronger in the low
   frequencies). The Wiener step added 0.2-0.3 dB on synthesized and real noise.

**Fast path** (`fast=True`, `vidrestore denoise --fast`): the same steps, cut for speed (about 6x the
full path per CPU second; at 1280x720 about 8 frames/s of CPU time and 14.7 by the clock on two free
cores, benchmarks/denoise.py). Frames are taken
to opponent colour (the DCT step's orthonormal luma/chroma transform); DIS at its ULTRAFAST
preset runs on the luma at half size; the chroma channels (which 4:2:0 video stores at half size
anyway) and the patch distances (3x3 patches at half size, against the variance of a 2x2 mean,
`box_factor`, and the second test on 4x4 means) stay at half size; only the luma is warped and
averaged at full size, with the half-size weights. The spatial step is one shrinkage alone, on
two 8x8 grids (offsets 0 and 4) instead of sixteen for the luma and one for the chroma, without
the Wiener step: the non-negative garrote at 0.7x the hard threshold (`dct_shrink.shrink_planes`),
whose gain rises continuously where hard thresholding switches a coefficient on and off from
frame to frame (sam2_01_dog at sigma 50: warping error 2.65x the clean clip's with hard
thresholding, 1.66 with the garrote, PSNR 26.49 -> 26.57 dB; set8_gopro_hypersmooth at sigma 25:
28.84 -> 28.90 dB). Last, each frame's estimate is averaged with its neighbours' at distance 1,
warped along the same flows with the same weights, each pixel's weight also times
exp(-d / (SMOOTH_SCALE sigma_r^2)), d the mean squared difference of the two estimates over 3x3
pixels at half size (the luma's area average and the chroma) and sigma_r the noise left in the
centre's average there: what the shrinkage keeps of the residual noise differs from frame to frame
by less than sigma_r, misaligned content by more (without that factor the GoPro clip lost 0.3 dB).
sam2_01_dog (8 frames, half size): warping error 1.22 -> 1.01x the clean clip's at sigma 25 and
1.66 -> 1.13 at sigma 50, PSNR within 0.06 dB on all 12 synthesized clips (SMOOTH_SCALE 0.1: 1.22
at sigma 50; 1: -0.2 dB at sigma 25). Each estimate is computed once, on two threads: the window
reaches two frames further, one for the smoothing and one computed ahead meanwhile.

sigma^2(x) comes from the noise profile, level against intensity per channel
(`noise_level.estimate_noise`), scaled to the level consecutive aligned frames show
(`noise_level.temporal_scale`: camera noise is correlated between neighbouring pixels), measured
in an analysis pass over frames spread through the video and reported. `strength` blends the input (0) and the full result (1).

**Learned path** (`learned=True`, `vidrestore denoise --learned`; `denoise_net`): Noise2Noise
across aligned frames (Dewil et al., WACV 2021; Sheth et al., ICCV 2021). In the analysis pass a
small residual CNN (`residual_cnn`) is trained, for a step budget, on runs of frames spread over the
video to correct the full path's estimate of a frame made without one of its neighbours, towards
that neighbour warped onto it (masked where the warp cannot be trusted); it then corrects every
frame's estimate. It is cached with the noise analysis (resumable).

References:
    Buades, Coll, Morel, "A non-local algorithm for image denoising", CVPR 2005.
    Buades, Coll, Morel, "Denoising image sequences does not require motion estimation", AVSS 2005.
    Yu, Sapiro, "DCT image denoising: a simple and effective image denoising algorithm", IPOL 2011.
    Dabov, Foi, Katkovnik, Egiazarian, "Image denoising by sparse 3-D transform-domain
    collaborative filtering", IEEE TIP 2007.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import VidrestoreError
from ..flow import FlowEstimator, backward_warp, create_flow
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window, register_stage
from . import denoise_net, residual_cnn
from .dct_shrink import B, DCT, OPPONENT, dct_shrink, shrink_planes
from .noise_level import NoiseProfile, estimate_noise, noise_spectrum, pair_level, scaled, temporal_scale

ANALYSIS_VERSION = 2  # bump when the analysis (noise.json) changes meaning: cached analyses are keyed on it
NET_VERSION = 1       # bump when the learned path's training changes meaning (its cached network is keyed on it)
STEPS = 1000          # the learned path's default training steps
PROFILE_FRAMES = 8   # frames, spread over the video, the noise is measured on
PATCH = 5            # side of the patch of the temporal distance
FLOW_SIGMA = 1.0     # Gaussian blur (pixels, at full size) before the half-size flow
COARSE = 4           # side of the pixel blocks whose means the second temporal test compares
COARSE_PATCH = 3     # its patch, in those blocks (12x12 pixels)
COARSE_MARGIN = 16.0  # the distance that test lets pass free (2 expected; see step 2 of the module docstring)
FAST_PATCH = 3       # side of the fast path's patch, at half size (6x6 pixels of the frame)
FAST_SHIFTS = [(0, 0), (4, 4)]   # the fast path's DCT grids for the luma; the half-size chroma takes the first
RADIUS = 4           # neighbours each side on the full path (module docstring, step 3: the taper)
FAST_RADIUS = 2      # and on the fast path
FAST_GARROTE = 0.7   # the fast path's garrote threshold, as a fraction of the hard threshold (module docstring)
SMOOTH_PATCH = 3     # the fast path's smoothing: side of its patch (at half size)
SMOOTH_SCALE = 0.25  # and the squared difference it lets pass, in squared residual sigmas (module docstring)


def _flow_input(rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), FLOW_SIGMA)


def taper(distance: int, radius: int) -> float:
    """A neighbour's weight at `distance` frames, before the tests: 1 - d^2 / (radius + 1)^2 (Epanechnikov)."""
    return 1.0 - distance ** 2 / (radius + 1) ** 2


def temporal_average(centre: np.ndarray, neighbours: list[np.ndarray], flows: list[np.ndarray], variance: np.ndarray,
                     h: float = 2.0, coarse_variance: np.ndarray | None = None,
                     priors: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-3 of the module docstring: (P, n_eff) from the centre frame and its neighbours.

    Args:
        centre: float32 (H, W, 3).
        neighbours: frames to align onto it; flows[k] is the flow centre -> neighbours[k].
        variance: per-pixel noise variance (H, W) of the centre frame (mean over the channels).
        h: how fast a neighbour's weight falls as its patch distance exceeds 2.
        coarse_variance: noise variance of the means of COARSE x COARSE pixels (at 1/COARSE size):
            when given, the second test of step 2 on the luma of those means.
        priors: each neighbour's weight where it passes both tests (`taper`; default 1).
    """
    acc = centre.astype(np.float32).copy()
    size = centre.shape[1::-1]
    if coarse_variance is not None:
        small = coarse_variance.shape[1::-1]
        coarse_scale = np.float32(-1.0 / h) / coarse_variance
    wsum = np.ones(centre.shape[:2], np.float32)
    wsq = np.ones(centre.shape[:2], np.float32)
    scale = np.float32(-1.0 / h) / (3.0 * variance)
    for frame, flow, prior in zip(neighbours, flows, priors or [1.0] * len(neighbours)):
        warped, valid = backward_warp(frame, flow)
        diff = cv2.subtract(warped, centre)
        sq = cv2.transform(cv2.multiply(diff, diff), np.ones((1, 3), np.float32))    # sum over the channels
        excess = cv2.blur(sq, (PATCH, PATCH)) * scale + np.float32(2.0 / h)          # -(d - 2) / h
        w = cv2.exp(np.minimum(excess, 0.0)) * (valid * np.float32(prior))
        if coarse_variance is not None:
            means = cv2.transform(cv2.resize(diff, small, interpolation=cv2.INTER_AREA), OPPONENT[:1])   # luma
            excess = cv2.blur(cv2.multiply(means, means), (COARSE_PATCH, COARSE_PATCH)) * coarse_scale + np.float32(COARSE_MARGIN / h)
            w *= cv2.resize(cv2.exp(np.minimum(excess, 0.0)), size)
        acc += w[..., None] * warped
        wsum += w
        wsq += w * w
    return acc / wsum[..., None], wsum * wsum / wsq


@dataclass
class HalfFrame:
    """A frame as the fast path keeps it: opponent colour (`dct_shrink.OPPONENT`), luma at full size."""

    luma: np.ndarray    # (H, W) opponent luma
    rgb: np.ndarray     # (H/2, W/2, 3) RGB at half size (area average)
    half: np.ndarray    # (H/2, W/2, 3) its opponent channels
    grey: np.ndarray    # (H/2, W/2) 8-bit luma at half size, the flow's input

    @classmethod
    def of(cls, rgb: np.ndarray) -> HalfFrame:
        rgb = rgb.astype(np.float32, copy=False)
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        half = cv2.transform(small, OPPONENT)
        grey = cv2.convertScaleAbs(cv2.GaussianBlur(cv2.extractChannel(half, 0), (0, 0), FLOW_SIGMA / 2), alpha=255 / np.sqrt(3))
        return cls(cv2.transform(rgb, OPPONENT[:1]), small, half, grey)


def box_factor(spectrum: np.ndarray | None, size: int = 2) -> float:
    """Variance of the mean of size x size pixels over 1/size^2 of the pixels' variance: 1 for white
    noise, more for noise correlated between neighbouring pixels (the noise spectrum says how much)."""
    if spectrum is None:
        return 1.0
    mean = np.zeros((B, B), np.float32)
    lo = (B - size) // 2
    mean[lo:lo + size, lo:lo + size] = 1.0 / size ** 2
    coef = DCT @ mean @ DCT.T                       # the 2x2 mean in the DCT basis
    s2 = np.asarray(spectrum, np.float64) ** 2
    return float(size ** 2 * np.sum(s2 * coef ** 2) / np.mean(s2))


@dataclass
class Shrunk:
    """A frame's fast-path estimate before the smoothing, and its links to its neighbours at distance 1."""

    luma: np.ndarray         # (H, W) shrunk opponent luma
    half: np.ndarray         # (H/2, W/2, 3) its area average and the shrunk opponent chroma
    half_sigma: np.ndarray   # (H/2, W/2) noise sigma left in the half-size average (before the shrinkage)
    links: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]  # index -> full-size map, half-size map and weight


class Denoise(Stage):
    """Two-pass windowed denoiser (`vidrestore denoise IN -o OUT`, `restore -s denoise`).

    Args:
        radius: neighbours each side averaged along the flow (0: spatial only; default RADIUS, FAST_RADIUS
            on the fast path).
        strength: blend between the input (0) and the full result (1).
        h: fall-off of a neighbour's weight with its patch distance (larger: more averaging;
            2 against 1: +0.3 dB on the real low-light frames, -0.1 dB on sigma 25).
        threshold: hard threshold of the first DCT step, in residual sigmas (Yu & Sapiro's 2.7;
            2.0 gained 0.46 dB on a synthesized sigma-25 clip and lost 0.8 dB on ViDeNN's real
            low-light frames).
        flow_preset: DIS preset of the alignment ("ultrafast", "fast", "medium").
        device: where the DCT step runs ("auto": CUDA when present, "cpu", "cuda"); flow and
            warping run on the CPU (OpenCV).
        fast: the fast path of the module docstring (its own flow; `flow_preset` is not used).
        learned: the learned path of the module docstring, started from the full path (not with `fast`).
        steps: the learned path's training steps.
    """

    name = "denoise"
    two_pass = True
    tapered = True   # neighbours weighted by `taper` before the tests (step 3 of the module docstring)
    step = 4    # DCT block spacing: step 2 gained 0.4 dB at sigma 25 for 3x the time

    def __init__(self, radius: int | None = None, strength: float = 1.0, h: float = 2.0, threshold: float = 2.7,
                 flow_preset: str = "medium", device: str = "auto", fast: bool = False, learned: bool = False,
                 steps: int = STEPS):
        from ..selfhvd.train import resolve_device

        radius = (FAST_RADIUS if fast else RADIUS) if radius is None else radius
        if radius < 0 or not 0 <= strength <= 1 or h <= 0 or threshold <= 0 or steps < 1:
            raise VidrestoreError(f"{self.name} needs radius >= 0, strength in [0, 1], h > 0, threshold > 0 and steps >= 1 "
                                  f"(got {radius}, {strength}, {h}, {threshold}, {steps})")
        if fast and learned:
            raise VidrestoreError(f"{self.name}'s learned path starts from the full path: --fast and --learned do not go together")
        self.n2n_steps = int(steps) if learned else 0    # the learned path's training steps (0: classical)
        self.net: nn.Module | None = None
        self.reach, self.strength, self.h, self.threshold = int(radius), float(strength), float(h), float(threshold)
        self.fast = bool(fast)
        # the window: the fast path smooths over one frame more and computes the estimate one further ahead meanwhile
        self.radius = self.reach + (2 if self.fast and self.reach > 0 else 0)
        self.flow = create_flow("dis", preset=flow_preset, scale=0.5)
        self.fast_flow = create_flow("dis", preset="ultrafast")
        self.device = resolve_device(device)
        self.profile: NoiseProfile | None = None
        self.spectrum: np.ndarray | None = None
        self._prepared: dict[int, np.ndarray] = {}
        self._halves: dict[int, HalfFrame] = {}
        self._shrunk: dict[int, Future[Shrunk]] = {}
        self._last = -1     # the index of the last frame processed
        self._pool: ThreadPoolExecutor | None = None    # the fast path's two estimates at a time
        self._local = threading.local()                 # each thread's own DIS (one is not shared between threads)
        self._grid: np.ndarray | None = None    # pixel coordinates at half size (the fast path's)

    def __getstate__(self) -> dict:
        """Pickled without the fast path's threads and their pending estimates (`batch` sends stages to its
        worker processes); `__setstate__` gives the copy its own."""
        state = {**self.__dict__, "_pool": None, "_shrunk": {}}
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def config(self) -> dict:
        return {"version": ANALYSIS_VERSION, "radius": self.reach, "strength": self.strength, "h": self.h, "threshold": self.threshold,
                "tapered": self.tapered, "flow": self.flow.config(), **({"fast": True, "fast_flow": self.fast_flow.config()} if self.fast else {}),
                **({"n2n": {"version": NET_VERSION, "steps": self.n2n_steps}} if self.n2n_steps else {})}

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        count = max(1, info.frame_count or 1)
        picks = set(np.linspace(0, count - 1, min(count, PROFILE_FRAMES)).round().astype(int).tolist())
        runs = self._training_runs(count) if self.n2n_steps else []
        wanted = {i for run in runs for i in run}
        singles, levels, prev, kept = [], [], None, {}
        for f in frames:
            if f.index in picks:
                singles.append(f.rgb)
            if f.index in wanted:
                kept[f.index] = replace(f, rgb=denoise_net.centre_crop(f.rgb))
            if prev is not None and prev.index in picks:
                level = pair_level(prev.rgb, f.rgb, self.flow(_flow_input(prev.rgb), _flow_input(f.rgb)))
                levels += [level] if level is not None else []
            prev = f
        profile = estimate_noise(singles)
        factor = temporal_scale(profile, levels)
        noise = {**scaled(profile, factor).to_dict(), "temporal_scale": factor, "spectrum": noise_spectrum(levels).tolist()}
        (cache_dir / "noise.json").write_text(json.dumps(noise, indent=1))
        if self.n2n_steps:
            self.load(cache_dir)
            residual_cnn.save(self._train([[kept[i] for i in run if i in kept] for run in runs]), cache_dir / "denoiser.safetensors")

    @staticmethod
    def _training_runs(count: int) -> list[list[int]]:
        starts = np.linspace(0, max(0, count - denoise_net.SEGMENT_FRAMES), denoise_net.TRAIN_SEGMENTS).round().astype(int)
        return [list(r) for r in dict.fromkeys(tuple(range(s, min(count, s + denoise_net.SEGMENT_FRAMES))) for s in starts.tolist())]

    def _train(self, runs: list[list[Frame]]) -> nn.Module:
        """The learned path's network (module docstring): each frame's full-path estimate without its partner
        (the next frame for even positions in the run, the previous for odd ones), the partner warped onto it
        as the target, the mask of `denoise_net.target_and_mask`."""
        inputs, targets, masks = [], [], []
        for run in runs:
            for c, f in enumerate(run):
                d = c + 1 if c % 2 == 0 else c - 1
                d = d if 0 <= d < len(run) else c - 1
                if not 0 <= d < len(run):
                    continue
                others = [g for k, g in enumerate(run) if k not in (c, d) and abs(k - c) <= self.reach]
                estimate = self._full(Window((f, *others), 0), f.rgb)
                partner = run[d]
                target, mask = denoise_net.target_and_mask(
                    f.rgb, partner.rgb, self.flow(_flow_input(f.rgb), _flow_input(partner.rgb)),
                    self.flow(_flow_input(partner.rgb), _flow_input(f.rgb)), self.variance(f.rgb, f.index))
                inputs.append(denoise_net.stack(estimate, self._full(Window((f,), 0), f.rgb), f.rgb))
                targets.append(target)
                masks.append(mask)
        self._prepared.clear()      # the crops' flow inputs, keyed by the frames' indices
        if not inputs:
            return residual_cnn.residual_cnn(9, 3).eval()     # a one-frame video: the identity
        return residual_cnn.train(inputs, targets, self.n2n_steps, self.device, masks=masks)

    def load(self, cache_dir: Path) -> None:
        noise = json.loads((cache_dir / "noise.json").read_text())
        self.profile = NoiseProfile.from_dict(noise)
        self.spectrum = np.array(noise["spectrum"], np.float32)
        if self.n2n_steps and (cache_dir / "denoiser.safetensors").exists():
            self.net = residual_cnn.load(cache_dir / "denoiser.safetensors", self.device)

    @property
    def summary(self) -> dict:
        """The noise measured (per channel, 8-bit scale, at dark, mid and bright intensities)."""
        return self.profile.to_dict()["sigma_8bit_at"] if self.profile else {}

    def _prepare(self, frame: Frame) -> np.ndarray:
        if frame.index not in self._prepared:
            self._prepared[frame.index] = self.flow.prepare(_flow_input(frame.rgb))
        return self._prepared[frame.index]

    def variance(self, x: np.ndarray, index: int) -> np.ndarray:
        """Per-pixel noise variance (H, W) of frame `index`, whose pixels are x."""
        if self.profile is None:
            raise VidrestoreError(f"{self.name} needs its analysis pass: run it through vidrestore.restore()")
        return self.profile.variance(cv2.GaussianBlur(x, (5, 5), 0)).mean(axis=2)

    def _neighbours(self, window: Window) -> list[Frame]:
        """The window's other frames, each once (near the ends the window repeats the first/last frame)."""
        seen, out = {window.index}, []
        for f in window.frames:
            if f.index not in seen:
                seen.add(f.index)
                out.append(f)
        return out

    def process(self, window: Window) -> np.ndarray:
        caches = (self._prepared, self._halves, self._shrunk)
        if window.index <= self._last:      # a new run (another video, or the same one again): nothing carries over
            for cache in caches:
                cache.clear()
        self._last = window.index
        x = window.frame.rgb.astype(np.float32, copy=False)
        out = self._fast(window) if self.fast else self._full(window, x)
        if self.n2n_steps:
            if self.net is None:
                raise VidrestoreError(f"{self.name}'s learned path needs its analysis pass: run it through vidrestore.restore()")
            spatial = self._full(Window((window.frame,), 0), x)
            out = np.ascontiguousarray(residual_cnn.apply(self.net, denoise_net.stack(out, spatial, x)).transpose(1, 2, 0))
        for cache in caches:
            for old in [i for i in cache if i < window.index - self.radius]:
                del cache[old]
        if self.strength < 1:
            out = cv2.addWeighted(x, 1.0 - self.strength, out, self.strength, 0.0)
        return np.clip(out, 0.0, 1.0, out=out)

    def _prior(self, frame: Frame, centre: Frame) -> float:
        return taper(frame.index - centre.index, self.reach) if self.tapered else 1.0

    def _full(self, window: Window, x: np.ndarray) -> np.ndarray:
        """Steps 1-4 of the module docstring at full size."""
        variance = self.variance(x, window.index)
        neighbours = self._neighbours(window)
        flows = self.flow.flow_pairs([(self._prepare(window.frame), self._prepare(f)) for f in neighbours], x.shape[:2])
        h, w = x.shape[:2]
        coarse = cv2.resize(variance, (max(1, w // COARSE), max(1, h // COARSE)), interpolation=cv2.INTER_AREA)
        coarse *= np.float32(box_factor(self.spectrum, COARSE) / COARSE ** 2)
        priors = [self._prior(f, window.frame) for f in neighbours]
        pilot, n_eff = temporal_average(x, [f.rgb for f in neighbours], flows, variance, self.h, coarse, priors)
        sigma = np.sqrt(variance / n_eff)
        first = dct_shrink(pilot, sigma, self.step, self.threshold, spectrum=self.spectrum, device=self.device)
        return dct_shrink(pilot, sigma, self.step, spectrum=self.spectrum, pilot=first, device=self.device)

    def _half(self, frame: Frame) -> HalfFrame:
        if frame.index not in self._halves:
            self._halves[frame.index] = HalfFrame.of(frame.rgb)
        return self._halves[frame.index]

    def _fast(self, window: Window) -> np.ndarray:
        """The fast path (module docstring): each frame's estimate (`_estimate`), then the temporal
        smoothing of the centre's with its neighbours' at distance 1, along the same flows."""
        if self.profile is None:
            raise VidrestoreError(f"{self.name} needs its analysis pass: run it through vidrestore.restore()")
        k, centre = window.center, window.frame
        own = self._estimated(window, k)
        for p in (k + 1, k + 2) if self.reach > 0 else ():
            self._estimated(window, p)      # started now: the one after next runs on the other thread meanwhile
        own = own.result()
        luma = own.luma.copy()
        half, hsum = own.half.copy(), np.ones(own.half.shape[:2], np.float32)
        scale = np.float32(-1 / (3 * SMOOTH_SCALE)) / (own.half_sigma * own.half_sigma)
        h, w = luma.shape
        for d in (-1, 1) if self.reach > 0 else ():
            if window.frames[k + d].index == centre.index:
                continue
            other = self._estimated(window, k + d).result()
            full, where, wt = own.links[window.frames[k + d].index]
            warped = cv2.remap(other.half, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            diff = cv2.subtract(warped, own.half)
            sq = cv2.transform(cv2.multiply(diff, diff), np.ones((1, 3), np.float32))
            weight = cv2.exp(cv2.blur(sq, (SMOOTH_PATCH, SMOOTH_PATCH)) * scale) * wt
            half += weight[..., None] * warped
            hsum += weight
            warped = cv2.remap(other.luma, full, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            cv2.accumulateProduct(cv2.resize(weight, (w, h)), warped, luma)
        chroma = cv2.resize(half[..., 1:] / hsum[..., None], (w, h))    # (the luma's weights: resizing is linear)
        return cv2.transform(cv2.merge([luma / cv2.resize(hsum, (w, h)), chroma]), np.ascontiguousarray(OPPONENT.T))

    def _estimated(self, window: Window, position: int) -> Future[Shrunk]:
        """`_estimate` of the window's frame at `position` on the frames within `reach` of it, started
        on the stage's two threads unless it already was (each frame's estimate is computed once)."""
        frame = window.frames[position]
        if frame.index not in self._shrunk:
            start = max(0, position - self.reach)
            near = Window(window.frames[start:position + self.reach + 1], position - start)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(2, thread_name_prefix="denoise-fast")
            self._shrunk[frame.index] = self._pool.submit(self._estimate, frame, self._neighbours(near))
        return self._shrunk[frame.index]

    def _dis(self) -> FlowEstimator:
        if not hasattr(self._local, "flow"):
            self._local.flow = create_flow(self.fast_flow.name, scale=self.fast_flow.scale, **self.fast_flow.params)
        return self._local.flow

    def _estimate(self, centre: Frame, neighbours: list[Frame]) -> Shrunk:
        """The fast path's estimate of one frame before the smoothing: flow, weights and chroma at half size,
        luma averaged at full size along the same flow, then the garrote (two DCT grids for the luma, one for the chroma)."""
        c = self._half(centre)
        (hh, hw), (h, w) = c.half.shape[:2], c.luma.shape
        box = box_factor(self.spectrum)
        pixel_var = cv2.transform(self.profile.variance(c.rgb), np.full((1, 3), 1 / 3, np.float32))    # (hh, hw)
        var = pixel_var * np.float32(box / 4)                  # of the half-size samples
        scale = np.float32(-1.0 / (3.0 * self.h)) / var
        quarter = (max(1, hw // 2), max(1, hh // 2))          # the means of 4x4 pixels of the second test
        coarse = cv2.resize(pixel_var, quarter, interpolation=cv2.INTER_AREA)
        coarse *= np.float32(box_factor(self.spectrum, COARSE) / COARSE ** 2)
        coarse_scale = np.float32(-1.0 / self.h) / coarse
        if self._grid is None or self._grid.shape[:2] != (hh, hw):
            self._grid = np.dstack(np.meshgrid(np.arange(hw, dtype=np.float32), np.arange(hh, dtype=np.float32)))
        grid = self._grid
        to_full = np.float32([[w / hw, 0, (w / hw - 1) / 2], [0, h / hh, (h / hh - 1) / 2]])    # half-size pixel -> full-size
        acc, wsum, wsq = c.half.copy(), np.ones((hh, hw), np.float32), np.ones((hh, hw), np.float32)
        luma = c.luma.copy()
        links = {}
        for f in neighbours:
            nb = self._half(f)
            where = grid + self._dis().flow_prepared(c.grey, nb.grey)
            warped = cv2.remap(nb.half, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            diff = cv2.subtract(warped, c.half)
            sq = cv2.transform(cv2.multiply(diff, diff), np.ones((1, 3), np.float32))
            excess = cv2.blur(sq, (FAST_PATCH, FAST_PATCH)) * scale + np.float32(2.0 / self.h)
            inside = cv2.inRange(where, (0, 0), (hw - 1, hh - 1)).astype(np.float32) / np.float32(255)
            wt = cv2.exp(np.minimum(excess, 0.0)) * (inside * np.float32(self._prior(f, centre)))
            means = cv2.resize(cv2.extractChannel(diff, 0), quarter, interpolation=cv2.INTER_AREA)
            excess = cv2.blur(cv2.multiply(means, means), (COARSE_PATCH, COARSE_PATCH)) * coarse_scale
            excess += np.float32(COARSE_MARGIN / self.h)
            wt *= cv2.resize(cv2.exp(np.minimum(excess, 0.0)), (hw, hh))
            acc += wt[..., None] * warped
            wsum += wt
            wsq += wt * wt
            full = cv2.resize(cv2.transform(where, to_full), (w, h))    # the same flow, at full size
            cv2.accumulateProduct(cv2.resize(wt, (w, h)), cv2.remap(nb.luma, full, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), luma)
            if abs(f.index - centre.index) == 1:
                links[f.index] = (full, where, wt)
        n_eff = wsum * wsum / wsq
        half_sigma = np.sqrt(var / n_eff)
        cut = self.threshold * FAST_GARROTE
        chroma = torch.from_numpy(acc / wsum[..., None]).permute(2, 0, 1)[1:].to(self.device)
        chroma = shrink_planes(chroma, half_sigma, FAST_SHIFTS[:1], cut, garrote=True).permute(1, 2, 0).cpu().numpy()
        sigma = cv2.resize(np.sqrt(pixel_var / n_eff), (w, h), interpolation=cv2.INTER_NEAREST)
        luma = shrink_planes(torch.from_numpy(luma / cv2.resize(wsum, (w, h)))[None].to(self.device), sigma, FAST_SHIFTS, cut,
                             self.spectrum, garrote=True)[0].cpu().numpy()
        small = cv2.resize(luma, (hw, hh), interpolation=cv2.INTER_AREA)
        return Shrunk(luma, cv2.merge([small, chroma]), half_sigma, links)


@register_stage("denoise")
def _denoise(radius: int | None = None, strength: float = 1.0, h: float = 2.0, threshold: float = 2.7,
             flow_preset: str = "medium", device: str = "auto", fast: bool = False, learned: bool = False,
             steps: int = STEPS) -> Denoise:
    return Denoise(radius, strength, h, threshold, flow_preset, device, fast, learned, steps)
