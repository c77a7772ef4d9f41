"""Random camera-shake blur kernels: the synthetic blur of Ren et al.'s "fitting to test data".

A kernel is the path of a random walk with inertia (in the spirit of Boracchi & Foi, "Modeling
the performance of image restoration from motion blur", TIP 2012), rasterised with sub-pixel
(bilinear) splatting and normalised to sum 1.
"""

from __future__ import annotations

import numpy as np


def random_motion_kernel(rng: np.random.Generator, max_length: float = 15.0, min_length: float = 1.0,
                         samples: int = 64) -> np.ndarray:
    """A float32 (K, K) motion-blur kernel whose path is `min_length`..`max_length` pixels long."""
    length = rng.uniform(min_length, max_length)
    angle = rng.uniform(0, 2 * np.pi)
    turn = rng.normal(0, 0.25, samples).cumsum() * rng.uniform(0, 1)
    steps = np.stack([np.cos(angle + turn), np.sin(angle + turn)], axis=1)
    path = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    path *= length / max(seg, 1e-9)
    path -= (path.max(0) + path.min(0)) / 2
    size = int(np.ceil(np.abs(path).max() * 2)) + 3
    size += 1 - size % 2
    k = np.zeros((size, size), np.float64)
    c = size // 2
    for x, y in path:
        x0, y0 = int(np.floor(x + c)), int(np.floor(y + c))
        fx, fy = x + c - x0, y + c - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return (k / k.sum()).astype(np.float32)
