"""Sliding-window DCT shrinkage: the spatial step of the denoiser and the deblocker.

Yu & Sapiro's DCT denoising (IPOL 2011): each 8x8 block of the image is taken to the 2D DCT,
coefficients below a threshold are set to zero (hard thresholding; the threshold is 2.7 sigma,
their choice), the block is transformed back and the overlapping blocks are averaged. Here the
blocks are taken every `step` pixels (Yu & Sapiro: every pixel; step 4 costs 1/16 of that), the
average is weighted by 1 / (kept coefficients) as in BM3D's aggregation (a block that kept few
coefficients is a confident one), colour is first taken to an orthonormal opponent space (so the
noise of each opponent channel has the RGB channels' mean variance), sigma may vary over the
image, read per block from a map, and over the coefficients, by a spectrum (coloured noise).
Given a pilot (a first estimate), the same loop applies BM3D's second step instead: the
empirical Wiener filter.

References:
    Yu, Sapiro, "DCT image denoising: a simple and effective image denoising algorithm",
    Image Processing On Line 1 (2011).
    Dabov, Foi, Katkovnik, Egiazarian, "Image denoising by sparse 3-D transform-domain
    collaborative filtering", IEEE TIP 2007 (the aggregation weights, the Wiener step).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.fft import dct
from torch.nn import functional as F

B = 8
DCT = dct(np.eye(B), norm="ortho", axis=0).astype(np.float32)    # rows: DCT basis vectors
OPPONENT = np.array([[1, 1, 1], [1, 0, -1], [1, -2, 1]], np.float32)
OPPONENT /= np.linalg.norm(OPPONENT, axis=1, keepdims=True)      # orthonormal opponent colour transform


def dct_shrink(rgb: np.ndarray, sigma: np.ndarray | float, step: int = 4, threshold: float = 2.7,
               skip_grid: bool = False, spectrum: np.ndarray | None = None, pilot: np.ndarray | None = None,
               device: str | torch.device = "cpu") -> np.ndarray:
    """Denoise a float RGB image (H, W, 3) by shrinking its 8x8 block DCTs.

    Without `pilot`, hard thresholding: coefficients below threshold * sigma are zeroed (the DC
    never is), blocks weighted by 1 / (kept coefficients). With `pilot` (a first estimate, such as
    the hard-thresholded image), the empirical Wiener filter of BM3D's second step: each
    coefficient is multiplied by P^2 / (P^2 + sigma^2), P the pilot's, and blocks are weighted by
    1 / sum of the squared gains.

    Args:
        rgb: float32 (H, W, 3).
        sigma: noise sigma, a number or an (H, W) map (on the image's scale).
        step: spacing of the block positions, a divisor of 8 (1: every pixel, as Yu & Sapiro).
        threshold: the hard threshold, in sigmas.
        skip_grid: leave out the block positions that coincide with the image's 8x8 grid.
        spectrum: (8, 8) relative sigma of each coefficient (coloured noise); None: white noise.
        pilot: float32 (H, W, 3) first estimate: Wiener shrinkage instead of hard thresholding.
        device: where the transforms run (torch device).
    """
    h, w = rgb.shape[:2]
    d = torch.from_numpy(DCT).to(device)
    opp = torch.from_numpy(OPPONENT).to(device)
    shape = torch.from_numpy(np.ones((B, B), np.float32) if spectrum is None else np.asarray(spectrum, np.float32)).to(device)
    n, m = -(-h // B) + 1, -(-w // B) + 1
    pad = (B, m * B - w, B, n * B - h)                                 # left, right, top, bottom

    def opponent(img: np.ndarray) -> torch.Tensor:
        x = torch.einsum("ij,hwj->ihw", opp, torch.from_numpy(np.ascontiguousarray(img, np.float32)).to(device))
        return F.pad(x[None], pad, mode="reflect")[0]

    def transform(x: torch.Tensor, ys: slice, xs: slice) -> torch.Tensor:
        return d @ x[:, ys, xs].reshape(3, n, B, m, B).permute(0, 1, 3, 2, 4) @ d.T    # (3, n, m, y, x)

    x = opponent(rgb)
    ref = opponent(pilot) if pilot is not None else None
    s = torch.from_numpy(np.array(np.broadcast_to(np.asarray(sigma, np.float32), (h, w)))).to(device)
    s = F.pad(s[None, None], pad, mode="replicate")[0, 0]
    acc = torch.zeros_like(x)
    wsum = torch.zeros_like(s)
    for dy in range(0, B, step):
        for dx in range(0, B, step):
            if skip_grid and dy == 0 and dx == 0:
                continue
            ys, xs = slice(dy, dy + n * B), slice(dx, dx + m * B)
            coef = transform(x, ys, xs)
            noise = s[ys, xs].reshape(n, B, m, B).mean(dim=(1, 3))[None, :, :, None, None] * shape
            if ref is None:
                gain = (coef.abs() >= threshold * noise).to(coef.dtype)
                gain[..., 0, 0] = 1.0
                weight = 1.0 / gain.sum(dim=(0, 3, 4))
            else:
                p2 = transform(ref, ys, xs) ** 2
                gain = p2 / (p2 + noise ** 2).clamp_min(1e-12)
                weight = 1.0 / (gain ** 2).sum(dim=(0, 3, 4)).clamp_min(1e-6)
            back = d.T @ (coef * gain * weight[None, :, :, None, None]) @ d
            acc[:, ys, xs] += back.permute(0, 1, 3, 2, 4).reshape(3, n * B, m * B)
            wsum[ys, xs] += weight.repeat_interleave(B, 0).repeat_interleave(B, 1)
    out = acc[:, B:B + h, B:B + w] / wsum[B:B + h, B:B + w]
    return torch.einsum("ij,ihw->hwj", opp, out).cpu().numpy()    # back to RGB: the transform is orthonormal
