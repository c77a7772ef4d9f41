"""Linear light and sensor noise: the sRGB transfer function and Poisson-Gaussian noise.

Blur and noise happen on the sensor, in linear light; video frames are gamma-encoded. So
synthetic blur averages linear intensities and noise is added to them before re-encoding.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer function (IEC 61966-2-1) on float values in [0, 1]."""
    x = np.clip(x, 0.0, 1.0, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer function to linear values (clipped to [0, 1])."""
    x = np.clip(x, 0.0, 1.0, dtype=np.float32)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def poisson_gaussian_noise(linear: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise on linear intensities: Poisson photon noise plus Gaussian read noise.

    The signal x becomes shot * Poisson(x / shot) + N(0, read^2), so its variance is
    shot * x + read^2 (the Poisson-Gaussian model of Foi et al., IEEE TIP 2008). A phone in
    dim light: shot about 0.002-0.01, read about 0.002-0.005.
    """
    out = np.clip(linear, 0.0, None).astype(np.float64)
    if shot > 0:
        out = rng.poisson(out / shot) * shot
    if read > 0:
        out = out + rng.normal(0.0, read, out.shape)
    return out.astype(np.float32)
