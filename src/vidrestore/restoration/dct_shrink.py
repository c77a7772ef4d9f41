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

import math

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
    opp = torch.from_numpy(OPPONENT).to(device)

    def opponent(img: np.ndarray) -> torch.Tensor:
        return torch.einsum("ij,hwj->ihw", opp, torch.from_numpy(np.ascontiguousarray(img, np.float32)).to(device))

    shifts = [(dy, dx) for dy in range(0, B, step) for dx in range(0, B, step) if not (skip_grid and dy == dx == 0)]
    out = shrink_planes(opponent(rgb), sigma, shifts, threshold, spectrum, opponent(pilot) if pilot is not None else None)
    return torch.einsum("ij,ihw->hwj", opp, out).cpu().numpy()    # back to RGB: the transform is orthonormal


def shrink_planes(x: torch.Tensor, sigma: np.ndarray | float, shifts: list[tuple[int, int]], threshold: float = 2.7,
                  spectrum: np.ndarray | None = None, pilot: torch.Tensor | None = None, garrote: bool = False) -> torch.Tensor:
    """`dct_shrink` on planes (C, H, W) whose noise has the same sigma, with the 8x8 grids at `shifts` (dy, dx).

    `garrote`: instead of hard thresholding, the non-negative garrote (Gao, 1998): each coefficient c
    times max(0, 1 - (threshold sigma / c)^2), which goes to 1 continuously where hard thresholding
    jumps from 0 to 1 (a coefficient near the threshold then flickers less from frame to frame).

    The blocks stay where they lie in the image (rows of blocks as (C, n, 8, m*8)), so each 1D
    transform is one large matrix product and no block is copied out.
    """
    c, h, w = x.shape
    d = torch.from_numpy(DCT).to(x.device)
    dt = d.T.contiguous()
    shape = torch.from_numpy(np.ones((B, B), np.float32) if spectrum is None else np.asarray(spectrum, np.float32)).to(x.device)
    shape = shape[None, :, None, :]                                     # (u, v) laid out as (n, u, m, v)
    n, m = -(-h // B) + 1, -(-w // B) + 1
    pad = (B, m * B - w, B, n * B - h)                                  # left, right, top, bottom
    x = F.pad(x[None], pad, mode="reflect")[0]
    ref = F.pad(pilot[None], pad, mode="reflect")[0] if pilot is not None else None
    s = torch.from_numpy(np.array(np.broadcast_to(np.asarray(sigma, np.float32), (h, w)))).to(x.device)
    g = math.gcd(B, *(v for shift in shifts for v in shift))
    cells = F.avg_pool2d(F.pad(s[None, None], pad, mode="replicate"), g)[0]      # sigma of g x g cells

    down, up = d.expand(c * n, B, B), dt.expand(c * n, B, B)

    def transform(t: torch.Tensor, ys: slice, xs: slice) -> torch.Tensor:     # (C, n, u, m, v)
        rows = torch.bmm(down, t[:, ys, xs].reshape(c * n, B, m * B))
        return (rows.reshape(-1, B) @ dt).reshape(c, n, B, m, B)

    def inverse(coef: torch.Tensor) -> torch.Tensor:                           # (C, n*8, m*8)
        return torch.bmm(up, (coef.reshape(-1, B) @ d).reshape(c * n, B, m * B)).reshape(c, n * B, m * B)

    acc = torch.zeros_like(x)
    wsum = torch.zeros_like(cells[0])                                    # aggregation weight of each cell
    for dy, dx in shifts:
        ys, xs = slice(dy, dy + n * B), slice(dx, dx + m * B)
        coef = transform(x, ys, xs)
        block = F.avg_pool2d(cells[:, dy // g:(dy + n * B) // g, dx // g:(dx + m * B) // g][None], B // g)[0, 0]
        block = block[:, None, :, None]                                  # sigma of each block, as (n, 1, m, 1)
        if ref is None:
            if garrote:
                gain = (1.0 - (threshold * block * shape).square_() / coef.square().clamp_min(1e-12)).clamp_min_(0.0)
            else:
                gain = (coef.abs().div_(shape) >= threshold * block).to(coef.dtype)
            gain[:, :, 0, :, 0] = 1.0
            weight = 1.0 / (gain > 0).sum(dim=(0, 2, 4)).to(coef.dtype)
        else:
            p2 = transform(ref, ys, xs).square_()
            gain = p2 / (p2 + (block * shape).square_()).clamp_min(1e-12)
            weight = 1.0 / gain.square().sum(dim=(0, 2, 4)).clamp_min(1e-6)
        coef *= gain.mul_(weight[:, None, :, None])
        acc[:, ys, xs] += inverse(coef)
        k = B // g
        cell_weight = weight[:, None, :, None].expand(n, k, m, k).reshape(n * k, m * k)
        wsum[dy // g:(dy + n * B) // g, dx // g:(dx + m * B) // g] += cell_weight
    wsum = wsum.repeat_interleave(g, 0).repeat_interleave(g, 1)
    return acc[:, B:B + h, B:B + w] / wsum[B:B + h, B:B + w]
