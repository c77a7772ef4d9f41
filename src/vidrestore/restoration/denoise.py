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
   A forward-backward occlusion mask on top (slope 0.8, as SelfHVD's labels) gained 1.95 dB at
   sigma 25 on the walking GoPro clip, whose misaligned water differs from the frame by less
   than the noise, but lost 0.81 dB on ViDeNN's real low-light frames (0.29 dB at slope 0.2),
   so it is not used.
3. **Average.** P = (x_t + sum_j w_j W x_j) / (1 + sum_j w_j); the noise left in P has variance
   sigma^2 / n_eff with n_eff = (1 + sum w)^2 / (1 + sum w^2) (1 where every neighbour failed).
4. **Spatial step.** Sliding 8x8 DCT hard thresholding of P (`dct_shrink`) at that residual
   sigma, pixel by pixel, then the empirical Wiener filter of P with the thresholded image as its
   pilot (BM3D's two steps, without block matching): it removes what the temporal average could
   not (moving regions, occlusions, the ends of the video, and the residual everywhere). The
   DCT thresholds follow the noise's measured spectrum (camera noise is stronger in the low
   frequencies). The Wiener step added 0.2-0.3 dB on synthesized and real noise.

sigma^2(x) comes from the noise profile, level against intensity per channel
(`noise_level.estimate_noise`), scaled to the level consecutive aligned frames show
(`noise_level.temporal_scale`: camera noise is correlated between neighbouring pixels), measured
in an analysis pass over frames spread through the video and reported. `strength` blends the input (0) and the full result (1).

This is the classical path and the start the learned path (Noise2Noise across aligned frames:
Dewil et al., WACV 2021; Sheth et al., ICCV 2021) would refine.

References:
    Buades, Coll, Morel, "A non-local algorithm for image denoising", CVPR 2005.
    Buades, Coll, Morel, "Denoising image sequences does not require motion estimation", AVSS 2005.
    Yu, Sapiro, "DCT image denoising: a simple and effective image denoising algorithm", IPOL 2011.
    Dabov, Foi, Katkovnik, Egiazarian, "Image denoising by sparse 3-D transform-domain
    collaborative filtering", IEEE TIP 2007.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import backward_warp, create_flow
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Stage, Window, register_stage
from .dct_shrink import dct_shrink
from .noise_level import NoiseProfile, estimate_noise, noise_spectrum, pair_level, scaled, temporal_scale

ANALYSIS_VERSION = 1  # bump when the analysis (noise.json) changes meaning: cached analyses are keyed on it
PROFILE_FRAMES = 8   # frames, spread over the video, the noise is measured on
PATCH = 5            # side of the patch of the temporal distance
FLOW_SIGMA = 1.0     # Gaussian blur (pixels, at full size) before the half-size flow


def _flow_input(rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), FLOW_SIGMA)


def temporal_average(centre: np.ndarray, neighbours: list[np.ndarray], flows: list[np.ndarray], variance: np.ndarray,
                     h: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-3 of the module docstring: (P, n_eff) from the centre frame and its neighbours.

    Args:
        centre: float32 (H, W, 3).
        neighbours: frames to align onto it; flows[k] is the flow centre -> neighbours[k].
        variance: per-pixel noise variance (H, W) of the centre frame (mean over the channels).
        h: how fast a neighbour's weight falls as its patch distance exceeds 2.
    """
    acc = centre.astype(np.float32).copy()
    wsum = np.ones(centre.shape[:2], np.float32)
    wsq = np.ones(centre.shape[:2], np.float32)
    scale = np.float32(-1.0 / h) / (3.0 * variance)
    for frame, flow in zip(neighbours, flows):
        warped, valid = backward_warp(frame, flow)
        diff = cv2.subtract(warped, centre)
        sq = cv2.transform(cv2.multiply(diff, diff), np.ones((1, 3), np.float32))    # sum over the channels
        excess = cv2.blur(sq, (PATCH, PATCH)) * scale + np.float32(2.0 / h)          # -(d - 2) / h
        w = cv2.exp(np.minimum(excess, 0.0)) * valid
        acc += w[..., None] * warped
        wsum += w
        wsq += w * w
    return acc / wsum[..., None], wsum * wsum / wsq


class Denoise(Stage):
    """Two-pass windowed denoiser (`vidrestore denoise IN -o OUT`, `restore -s denoise`).

    Args:
        radius: neighbours each side averaged along the flow (0: spatial only).
        strength: blend between the input (0) and the full result (1).
        h: fall-off of a neighbour's weight with its patch distance (larger: more averaging;
            2 against 1: +0.3 dB on the real low-light frames, -0.1 dB on sigma 25).
        threshold: hard threshold of the first DCT step, in residual sigmas (Yu & Sapiro's 2.7;
            2.0 gained 0.46 dB on a synthesized sigma-25 clip and lost 0.8 dB on ViDeNN's real
            low-light frames).
        flow_preset: DIS preset of the alignment ("ultrafast", "fast", "medium").
        device: where the DCT step runs ("auto": CUDA when present, "cpu", "cuda"); flow and
            warping run on the CPU (OpenCV).
    """

    name = "denoise"
    two_pass = True
    step = 4    # DCT block spacing: step 2 gained 0.4 dB at sigma 25 for 3x the time

    def __init__(self, radius: int = 2, strength: float = 1.0, h: float = 2.0, threshold: float = 2.7,
                 flow_preset: str = "medium", device: str = "auto"):
        from ..selfhvd.train import resolve_device

        if radius < 0 or not 0 <= strength <= 1 or h <= 0 or threshold <= 0:
            raise VidrestoreError(f"{self.name} needs radius >= 0, strength in [0, 1], h > 0 and threshold > 0 "
                                  f"(got {radius}, {strength}, {h}, {threshold})")
        self.radius, self.strength, self.h, self.threshold = int(radius), float(strength), float(h), float(threshold)
        self.flow = create_flow("dis", preset=flow_preset, scale=0.5)
        self.device = resolve_device(device)
        self.profile: NoiseProfile | None = None
        self.spectrum: np.ndarray | None = None
        self._prepared: dict[int, np.ndarray] = {}

    def config(self) -> dict:
        return {"version": ANALYSIS_VERSION, "radius": self.radius, "strength": self.strength, "h": self.h, "threshold": self.threshold,
                "flow": self.flow.config()}

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        count = max(1, info.frame_count or 1)
        picks = set(np.linspace(0, count - 1, min(count, PROFILE_FRAMES)).round().astype(int).tolist())
        singles, levels, prev = [], [], None
        for f in frames:
            if f.index in picks:
                singles.append(f.rgb)
            if prev is not None and prev.index in picks:
                level = pair_level(prev.rgb, f.rgb, self.flow(_flow_input(prev.rgb), _flow_input(f.rgb)))
                levels += [level] if level is not None else []
            prev = f
        profile = estimate_noise(singles)
        factor = temporal_scale(profile, levels)
        noise = {**scaled(profile, factor).to_dict(), "temporal_scale": factor, "spectrum": noise_spectrum(levels).tolist()}
        (cache_dir / "noise.json").write_text(json.dumps(noise, indent=1))

    def load(self, cache_dir: Path) -> None:
        noise = json.loads((cache_dir / "noise.json").read_text())
        self.profile = NoiseProfile.from_dict(noise)
        self.spectrum = np.array(noise["spectrum"], np.float32)

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

    def process(self, window: Window) -> np.ndarray:
        x = window.frame.rgb.astype(np.float32)
        variance = self.variance(x, window.index)
        neighbours, flows = [], []
        seen = {window.index}   # near the ends the window repeats the first/last frame: use each once
        for f in window.frames:
            if f.index in seen:
                continue
            seen.add(f.index)
            neighbours.append(f.rgb)
            flows.append(self.flow.flow_prepared(self._prepare(window.frame), self._prepare(f), x.shape[:2]))
        for old in [i for i in self._prepared if i < window.index - self.radius]:
            del self._prepared[old]
        pilot, n_eff = temporal_average(x, neighbours, flows, variance, self.h)
        sigma = np.sqrt(variance / n_eff)
        first = dct_shrink(pilot, sigma, self.step, self.threshold, spectrum=self.spectrum, device=self.device)
        out = dct_shrink(pilot, sigma, self.step, spectrum=self.spectrum, pilot=first, device=self.device)
        return np.clip(x + self.strength * (out - x), 0.0, 1.0)


@register_stage("denoise")
def _denoise(radius: int = 2, strength: float = 1.0, h: float = 2.0, threshold: float = 2.7,
             flow_preset: str = "medium", device: str = "auto") -> Denoise:
    return Denoise(radius, strength, h, threshold, flow_preset, device)
