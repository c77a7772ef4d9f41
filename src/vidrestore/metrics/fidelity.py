"""Full-reference fidelity: PSNR and SSIM on RGB or on BT.601 luma, with an optional border crop.

Conventions of restoration papers (BasicSR, Wang et al. 2004): images are float in [0, 1];
"Y" is the BT.601 luma of MATLAB's rgb2ycbcr, Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255;
SSIM uses an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population covariances,
averaged over the pixels whose window lies inside the image, and over channels for RGB. This
equals ``skimage.metrics.structural_similarity(a, b, data_range=1, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, channel_axis=-1)``, computed with OpenCV's separable
Gaussian filter, which is several times faster.

References:
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 2004.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io.colour import luma

_SSIM_RADIUS = 5  # int(3.5 * 1.5 + 0.5): scikit-image's truncation of the sigma-1.5 Gaussian
SSIM_MIN_SIDE = 2 * _SSIM_RADIUS + 1  # smallest frame side SSIM measures


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16/255, 235/255] from RGB in [0, 1] (the Y of papers' "PSNR on Y"); a grey
    (H, W) frame is taken as Y already."""
    if rgb.ndim == 2:
        return luma(rgb)
    return luma(rgb) * np.float32(219.0 / 255.0) + np.float32(16.0 / 255.0)


def _prepare(a: np.ndarray, b: np.ndarray, crop: int, channel: str) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise VidrestoreError(f"frames differ in size: {a.shape} vs {b.shape}")
    if channel not in ("rgb", "y"):
        raise VidrestoreError(f"channel must be 'rgb' or 'y', not {channel!r}")
    if crop:
        if 2 * crop >= min(a.shape[:2]):
            raise VidrestoreError(f"border crop {crop} leaves nothing of a {a.shape[1]}x{a.shape[0]} frame")
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    if channel == "y":
        a, b = rgb_to_y(a), rgb_to_y(b)
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, crop: int = 0, channel: str = "rgb") -> float:
    """Peak signal-to-noise ratio in dB (peak 1.0); inf for identical images.

    Args:
        a, b: float RGB (H, W, 3) in [0, 1].
        crop: pixels removed from every border first.
        channel: "rgb" (all channels) or "y" (BT.601 luma).
    """
    a, b = _prepare(a, b, crop, channel)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def _ssim_map_mean(a: np.ndarray, b: np.ndarray) -> float:
    blur = lambda x: cv2.GaussianBlur(x, (2 * _SSIM_RADIUS + 1,) * 2, 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    r = _SSIM_RADIUS
    return float(s[r:-r, r:-r].mean(dtype=np.float64))


def ssim(a: np.ndarray, b: np.ndarray, crop: int = 0, channel: str = "rgb") -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window); mean over channels for RGB.

    Args: as `psnr`.
    """
    a, b = _prepare(a, b, crop, channel)
    a, b = a.astype(np.float32), b.astype(np.float32)
    if min(a.shape[:2]) < SSIM_MIN_SIDE:
        raise VidrestoreError(f"SSIM needs frames larger than 11x11, not {a.shape[1]}x{a.shape[0]}")
    if a.ndim == 2:
        return _ssim_map_mean(a, b)
    return float(np.mean([_ssim_map_mean(a[..., c], b[..., c]) for c in range(a.shape[2])]))
