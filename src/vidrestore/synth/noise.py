"""Noisy benchmark clips: `vidrestore synth noise` (gt.mkv, noisy.mkv, settings.json).

Two noise models:

* Gaussian: N(0, (sigma/255)^2) added to every channel of the gamma-encoded frame, sigma on the
  8-bit scale (the sigma = 15, 25, 50 of denoising papers), clipped to [0, 1];
* Poisson-Gaussian (Foi et al., IEEE TIP 2008): signal-dependent sensor noise of variance
  shot * x + read^2 on linear intensities x (`sensor.poisson_gaussian_noise`), re-encoded to sRGB,
  so its level on the video's scale grows with brightness far less than linearly and is largest
  in the shadows' gamma slope.

noisy.mkv is lossless FFV1 (8-bit), like gt.mkv: the noise is the only degradation. The same
source, settings and seed give the same files.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import VidrestoreError
from ..io import EncodeSettings
from .paired import PairedResult, write_paired
from .sensor import linear_to_srgb, poisson_gaussian_noise, srgb_to_linear
from .source import source_clip


def add_gaussian(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Frame plus Gaussian noise of `sigma` on the 8-bit scale, clipped to [0, 1]."""
    noise = rng.normal(0.0, sigma / 255.0, rgb.shape).astype(np.float32)
    return np.clip(rgb + noise, 0.0, 1.0)


def add_poisson_gaussian(rgb: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Frame with Poisson-Gaussian sensor noise added in linear light."""
    return linear_to_srgb(poisson_gaussian_noise(srgb_to_linear(rgb), shot, read, rng))


def synth_noise(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    sigma: float | None = 25.0,
    poisson: tuple[float, float] | None = None,
    seed: int = 0,
    start: int = 0,
    frames: int | None = None,
    scale: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
) -> PairedResult:
    """Make a noisy clip with its ground truth from a sharp video.

    Args:
        source: a clean video (or image folder).
        out_dir: output folder (created; its files are replaced only with `overwrite`).
        sigma: Gaussian noise level on the 8-bit scale (ignored when `poisson` is given).
        poisson: (shot, read) Poisson-Gaussian levels in linear light, e.g. (0.01, 0.005).
        seed: random seed; frame i draws from (seed, i).
        start, frames, scale: the part of the source to use and its size (see `source_clip`).
        overwrite: replace existing output files.
        progress: show progress bars.
    """
    if poisson is not None:
        if min(poisson) < 0:
            raise VidrestoreError(f"Poisson-Gaussian levels must be non-negative, not {poisson}")
        noise = {"model": "poisson-gaussian", "shot": float(poisson[0]), "read": float(poisson[1])}
        degrade = lambda i, rgb: add_poisson_gaussian(rgb, *poisson, np.random.default_rng([seed, i]))  # noqa: E731
    else:
        if sigma is None or not 0 < sigma <= 255:
            raise VidrestoreError(f"noise sigma must be in (0, 255] (8-bit scale), not {sigma}")
        noise = {"model": "gaussian", "sigma": float(sigma)}
        degrade = lambda i, rgb: add_gaussian(rgb, sigma, np.random.default_rng([seed, i]))  # noqa: E731
    clip = source_clip(source, start, frames, scale)
    return write_paired(clip, out_dir, "noise", "noisy.mkv", degrade, EncodeSettings("ffv1"),
                        {"noise": noise, "seed": seed}, overwrite, progress)
