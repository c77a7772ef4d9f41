"""Noise level against intensity, per channel, from the frames themselves.

Sensor noise is signal-dependent (Poisson-Gaussian, Foi et al. 2008): its variance grows with
the intensity, sigma^2(y) = a * y + b on raw data, and demosaicing, white balance and the gamma
curve bend that line per channel (after sRGB encoding, photon noise is nearly flat and read noise
is largest in the shadows, so the level usually falls with intensity). A denoiser that assumes one
sigma over-smooths some tones and leaves others noisy. So, per channel, as in Foi et al. but
without the raw-data line:

1. Haar wavelet analysis on 2x2 blocks: the diagonal detail d = (x00 - x01 - x10 + x11) / 2 holds
   noise of the pixel's own sigma and little of a smooth image; the block mean is the intensity.
   (scikit-image's `estimate_sigma` does the same on the finest diagonal subband, with one sigma
   per image and PyWavelets, which vidrestore does not depend on.)
2. Blocks where the image is not smooth (the mean's Laplacian, on the 2x coarser grid, in the
   upper half of its level set) are left out: texture there would count as noise. The detail and
   the mean are orthogonal Haar components, so this choice does not bias the noise estimate.
3. Blocks are grouped by intensity into `BINS` level sets; in each, sigma is the median absolute
   detail / 0.6745 (Donoho's robust estimator). Between the level sets' mean intensities the
   variance is interpolated linearly, beyond them held constant; level sets with fewer than
   `_MIN_BLOCKS` smooth blocks take their neighbours' values.

The Haar detail sees white noise only: noise correlated between neighbouring pixels (demosaiced,
denoised-in-camera, compressed video) reads lower than its per-pixel level (on the real low-light
frames of ViDeNN's "mountains", 3.0-5.9 against 5.0-7.8 on the 8-bit scale). Consecutive frames
see the same scene through independent noise, so `temporal_scale` measures the per-pixel level
from the difference of a frame and its flow-aligned successor, d = x_t - W x_{t+1}, whose
variance is 2 sigma^2 where the alignment holds (nearest-pixel warping, which does not smooth the
noise; smooth areas only; median absolute value, robust to the pixels where the flow fails), and
scales the profile by that level over the Haar level at the same pixels: 1 for white noise,
up to `MAX_SCALE`. The same differences, in 8x8 DCT blocks, give the noise's spectrum
(`noise_spectrum`): the denoiser's DCT thresholds follow it, coefficient by coefficient (the
mountains' noise has 3x the level in the lowest frequencies that it has in the highest).

The profile is read per channel of the video's RGB in [0, 1]; `sigma_8bit` reports it on the
8-bit scale of denoising papers (sigma = 25 means 25/255).

References:
    Foi, Trimeche, Katkovnik, Egiazarian, "Practical Poissonian-Gaussian noise modeling and
    fitting for single-image raw-data", IEEE TIP 2008.
    Donoho, Johnstone, "Ideal spatial adaptation by wavelet shrinkage", Biometrika 1994.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import VidrestoreError

BINS = 16
MAX_SCALE = 2.0    # largest factor the temporal level may put on the Haar sigma
_MIN_BLOCKS = 200  # level sets with fewer smooth blocks are not used for the fit


_LUT = 256  # intensity steps of the variance look-up table


@dataclass(frozen=True)
class NoiseProfile:
    """Noise sigma of each channel against intensity (RGB in [0, 1]).

    Attributes:
        intensity: (BINS, 3) mean intensity of each level set, per channel (NaN where too few blocks).
        sigma: (BINS, 3) measured sigma there (NaN likewise).
    """

    intensity: np.ndarray
    sigma: np.ndarray

    def curve(self, y: np.ndarray, channel: int) -> np.ndarray:
        """Noise variance of `channel` at intensities y (interpolated between level sets, constant beyond)."""
        ok = ~np.isnan(self.sigma[:, channel])
        if not ok.any():
            raise VidrestoreError("the noise profile has no level set with enough smooth blocks")
        return np.interp(y, self.intensity[ok, channel], self.sigma[ok, channel] ** 2).astype(np.float32)

    def variance(self, rgb: np.ndarray) -> np.ndarray:
        """Per-pixel, per-channel noise variance (H, W, 3) of a frame of intensities `rgb`."""
        lut = np.stack([self.curve(np.linspace(0, 1, _LUT), c) for c in range(3)], axis=1)  # (_LUT, 3)
        codes = cv2.convertScaleAbs(np.ascontiguousarray(rgb, np.float32), alpha=_LUT - 1)   # rounded, saturated
        return np.maximum(cv2.LUT(codes, lut[None].astype(np.float32)), 1e-8)

    def sigma_8bit(self, y: float = 0.5) -> list[float]:
        """Per-channel sigma at intensity y on the 8-bit scale."""
        return [float(255 * np.sqrt(self.curve(np.array([y]), c)[0])) for c in range(3)]

    def to_dict(self) -> dict:
        """JSON form: per level set, intensity and sigma on the 8-bit scale (null where unmeasured)."""
        clean = lambda a: [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in a]  # noqa: E731
        return {"intensity": clean(self.intensity), "sigma_8bit": clean(255 * self.sigma),
                "sigma_8bit_at": {str(y): np.round(self.sigma_8bit(y), 2).tolist() for y in (0.1, 0.5, 0.9)}}

    @classmethod
    def from_dict(cls, d: dict) -> NoiseProfile:
        arr = lambda a: np.array([[np.nan if v is None else v for v in row] for row in a], np.float64)  # noqa: E731
        return cls(arr(d["intensity"]), arr(d["sigma_8bit"]) / 255)


def haar_blocks(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(diagonal detail, block mean, roughness) of the 2x2 blocks of one channel."""
    h, w = channel.shape[0] // 2 * 2, channel.shape[1] // 2 * 2
    x = channel[:h, :w]
    a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
    detail = (a - b - c + d) / 2
    mean = (a + b + c + d) / 4
    rough = np.abs(cv2.Laplacian(mean, cv2.CV_32F, ksize=1))
    return detail, mean, rough


def estimate_noise(frames: Iterable[np.ndarray]) -> NoiseProfile:
    """Noise profile (level against intensity, per channel) of float RGB frames (H, W, 3) in [0, 1]."""
    details: list[list[np.ndarray]] = [[], [], []]
    means: list[list[np.ndarray]] = [[], [], []]
    for rgb in frames:
        for ch in range(3):
            detail, mean, rough = haar_blocks(np.ascontiguousarray(rgb[..., ch], dtype=np.float32))
            bins = np.clip((mean * BINS).astype(np.int32), 0, BINS - 1)
            keep = np.zeros(bins.shape, bool)
            for k in np.unique(bins):
                sel = bins == k
                keep |= sel & (rough <= np.median(rough[sel]))
            details[ch].append(detail[keep])
            means[ch].append(mean[keep])
    if not details[0]:
        raise VidrestoreError("no frames to estimate the noise from")
    intensity, sigma = np.full((BINS, 3), np.nan), np.full((BINS, 3), np.nan)
    for ch in range(3):
        d, m = np.concatenate(details[ch]), np.concatenate(means[ch])
        bins = np.clip((m * BINS).astype(np.int32), 0, BINS - 1)
        for k in range(BINS):
            sel = bins == k
            if sel.sum() >= _MIN_BLOCKS:
                intensity[k, ch] = m[sel].mean()
                sigma[k, ch] = np.median(np.abs(d[sel])) / 0.6745
    if np.isnan(sigma).all(axis=0).any():
        raise VidrestoreError("too few smooth areas to estimate the noise (frames too small or all texture)")
    return NoiseProfile(intensity, sigma)


@dataclass(frozen=True)
class PairLevel:
    """What consecutive aligned frames show of the noise (`pair_level`)."""

    sigma: np.ndarray        # (3,) per-channel sigma per pixel
    intensity: np.ndarray    # (K, 3) smoothed intensities where it was measured
    spectrum: np.ndarray     # (8, 8) sigma of each 8x8 DCT coefficient of the luma-like opponent channel


def pair_level(a: np.ndarray, b: np.ndarray, flow: np.ndarray, samples: int = 20000) -> PairLevel | None:
    """The noise seen between consecutive frames a, b (flow a -> b) in their smooth, visible areas;
    None when too little is smooth and visible."""
    from .dct_shrink import B, DCT, OPPONENT

    h, w = a.shape[:2]
    xs = np.rint(np.arange(w, dtype=np.float32)[None, :] + flow[..., 0])
    ys = np.rint(np.arange(h, dtype=np.float32)[:, None] + flow[..., 1])
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    n, m = h // B, w // B
    if inside.sum() < _MIN_BLOCKS or n * m < 4:
        return None
    warped = cv2.remap(b, xs, ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    diff = (a - warped) / np.sqrt(2.0)
    smooth = cv2.GaussianBlur(a, (0, 0), 2.0)
    grad = np.abs(cv2.Laplacian(smooth.mean(axis=2), cv2.CV_32F, ksize=3))
    keep = inside & (grad <= np.quantile(grad[inside], 0.5))
    sigma = np.median(np.abs(diff[keep]), axis=0) / 0.6745
    where = smooth[keep]
    # the spectrum, over the smoother half of the 8x8 blocks that lie wholly in view
    block_grad = grad[:n * B, :m * B].reshape(n, B, m, B).mean(axis=(1, 3))
    in_view = inside[:n * B, :m * B].reshape(n, B, m, B).all(axis=(1, 3))
    if in_view.sum() < 4:
        return None
    blocks = in_view & (block_grad <= np.median(block_grad[in_view]))
    luma = np.tensordot(diff, OPPONENT[0], axes=([2], [0]))[:n * B, :m * B]
    coef = DCT @ luma.reshape(n, B, m, B).transpose(0, 2, 1, 3)[blocks] @ DCT.T
    spectrum = np.median(np.abs(coef), axis=0) / 0.6745
    return PairLevel(sigma, where[np.linspace(0, len(where) - 1, min(samples, len(where))).astype(int)], spectrum)


def temporal_scale(profile: NoiseProfile, levels: list[PairLevel]) -> float:
    """Factor (1 to MAX_SCALE) taking the Haar sigma to the per-pixel sigma seen between aligned
    frames: the median over pairs and channels of `pair_level`'s sigma over the profile's at the
    same intensities."""
    ratios = [float(np.median(lv.sigma / np.sqrt(np.median(profile.variance(lv.intensity[None]), axis=1)[0])))
              for lv in levels]
    return float(np.clip(np.median(ratios), 1.0, MAX_SCALE)) if ratios else 1.0


def noise_spectrum(levels: list[PairLevel]) -> np.ndarray:
    """(8, 8) relative sigma of each DCT coefficient (root mean square 1): flat for white noise, falling
    towards high frequencies for noise correlated between neighbouring pixels; flat without pairs or
    without noise to measure it on (a clean or heavily compressed video: the shape is then undefined,
    and a zero spectrum would divide the shrinkage's thresholds by zero)."""
    spectrum = np.median([lv.spectrum for lv in levels], axis=0) if levels else np.zeros((8, 8))
    rms = float(np.sqrt(np.mean(spectrum ** 2)))
    if not rms > 1e-9:
        return np.ones((8, 8), np.float32)
    return (spectrum / rms).astype(np.float32)


def scaled(profile: NoiseProfile, factor: float) -> NoiseProfile:
    """The profile with every sigma multiplied by `factor`."""
    return NoiseProfile(profile.intensity, profile.sigma * factor)
