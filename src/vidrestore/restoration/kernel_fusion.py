"""Multi-frame super-resolution of luma by kernel regression (Wronski et al., SIGGRAPH 2019).

Neighbouring low-resolution frames hold sub-pixel-shifted samples of the same scene. For the
centre frame t and each frame j of the window:

1. **Align** at the low resolution: DIS flow t -> j, and j -> t for a forward-backward
   occlusion mask (`flow.occlusion_mask`).
2. **Robustness** (Wronski et al., section 5): j warped onto t is compared with t on 3x3 local
   means; a difference large against t's local standard deviation (plus a noise floor) means
   the motion is not to be trusted there: R_j = exp(-d^2 / (k * (sigma^2 + floor^2))) times the
   visibility, eroded by a 3x3 minimum (as the paper does) so that misaligned edges stay out.
3. **Gather** (the paper's accumulation, done per output pixel): each high-resolution pixel,
   at low-resolution position p, reads from frame j the 2x2 samples around p + flow(p); a sample
   at offset delta from p weighs exp(-|delta|^2 / (2 kernel^2)) * R_j. What is averaged is each
   sample's innovation: its value less the centre frame's bicubic interpolation where it lies.
   The innovation is computed once per neighbour at the low resolution, from flow j -> t.
   The centre frame's own samples (innovation 0) join with their kernel weights, and the
   average is added to the centre frame's bicubic upsampling. Where the neighbours add no new
   positions (a still camera) or are not trusted (R_j = 0: occluded, misaligned) the result is
   the single-frame bicubic upsampling. Averaging the samples themselves (as the paper does,
   with anisotropic kernels) lost 1.25 dB to bicubic on a nearly still crop of sam2_01_dog at x2
   with this isotropic kernel (0.35 px), the innovations 0.3 dB; on Vid4 calendar x4 (ground truth moved
   onto the centred sampling grid) the samples were 0.1 dB below bicubic, the innovations 0.4 dB
   above.
4. **Back-projection** (Irani & Peleg 1991) onto the centre frame (`back_project`). Back-
   projecting every trusted frame's error instead was within 0.05 dB on Vid4 calendar and lost
   0.3-0.5 dB on the real x2 crops (flow errors), so only the centre frame is used.

Chroma carries little detail and is upsampled bicubically (`upscale`).

References:
    Wronski, Garcia-Dorado, Ernst, Kelly, Krainin, Liang, Levoy, Milanfar, "Handheld multi-frame
    super-resolution", ACM TOG (SIGGRAPH) 2019.
    Irani, Peleg, "Improving resolution by image registration", CVGIP 1991.
    Takeda, Farsiu, Milanfar, "Kernel regression for image processing and reconstruction",
    IEEE TIP 2007.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..flow import backward_warp, occlusion_mask, resize_field

NOISE_FLOOR = 2.0 / 255  # luma difference the robustness test always tolerates


GRIDS = ("centre", "corner")


def origin(scale: int, grid: str) -> float:
    """Where input pixel 0 lies, in output pixels, under a sampling convention (the phase of the
    degradation's decimation): "centre", the centre of its block of scale x scale output pixels (as
    area, bicubic and Lanczos resizers assume), or "corner", the block's first pixel (`blur(x)[::s, ::s]`,
    the "BD" degradation of Vid4 in the video super-resolution literature). A global shift cannot be
    told from the input alone, so the convention is stated, not estimated."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, not {grid!r}")
    return (scale - 1) / 2 if grid == "centre" else 0.0


def bicubic(image: np.ndarray, scale: int, grid: str = "centre") -> np.ndarray:
    """Single-frame bicubic upsampling by an integer factor, input pixels placed as `grid` says (`origin`)."""
    h, w = image.shape[:2]
    if grid == "centre":
        return cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    shift = -origin(scale, grid) / scale
    m = np.float32([[1 / scale, 0, shift], [0, 1 / scale, shift]])
    return cv2.warpAffine(image, m, (w * scale, h * scale), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def robustness(centre: np.ndarray, warped: np.ndarray, visible: np.ndarray, k: float) -> np.ndarray:
    """Step 2: trust in [0, 1] of a neighbour warped onto the centre (both low-resolution luma)."""
    mean_c = cv2.blur(centre, (3, 3))
    var_c = np.maximum(cv2.blur(centre * centre, (3, 3)) - mean_c * mean_c, 0)
    d = cv2.blur(warped, (3, 3)) - mean_c
    r = np.exp(-d * d / (k * (var_c + NOISE_FLOOR ** 2))) * visible
    return cv2.erode(r.astype(np.float32), np.ones((3, 3), np.uint8))


@dataclass
class Alignment:
    """One neighbour at the low resolution: flow t -> j, trust R_j in t's grid, and the innovation of each
    of its samples (its value less the centre frame's bicubic interpolation where it lies, by flow j -> t)."""

    to_j: np.ndarray
    trust: np.ndarray
    innovation: np.ndarray


def align(lumas: list[np.ndarray], centre: int, flow_between: Callable[[int, int], np.ndarray],
          k: float = 4.0) -> dict[int, Alignment]:
    """Steps 1-2 for every frame of the window but the centre.

    Args:
        lumas: float32 (h, w) luma of each frame of the window.
        centre: index of the frame being upscaled.
        flow_between: flow_between(a, b) is the low-resolution flow from frame a to frame b.
        k: tolerance of the robustness test.
    """
    yc = lumas[centre]
    h, w = yc.shape
    gx = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    gy = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    out = {}
    for j, yj in enumerate(lumas):
        if j != centre:
            f_tj, f_jt = flow_between(centre, j), flow_between(j, centre)
            warped, valid = backward_warp(yj, f_tj)
            trust = robustness(yc, warped, occlusion_mask(f_tj, f_jt) * valid, k)
            predicted = cv2.remap(yc, gx + f_jt[..., 0], gy + f_jt[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            out[j] = Alignment(f_tj, trust, yj - predicted)
    return out


def _lowres_grid(h: int, w: int, scale: int, grid: str) -> tuple[np.ndarray, np.ndarray]:
    """Position of every high-resolution pixel in low-resolution pixels (input pixels placed as `grid` says)."""
    o = origin(scale, grid)
    px = ((np.arange(w * scale, dtype=np.float32) - o) / scale)[None, :].repeat(h * scale, 0)
    py = ((np.arange(h * scale, dtype=np.float32) - o) / scale)[:, None].repeat(w * scale, 1)
    return px, py


def _axis_weights(u: np.ndarray, inv: np.float32, n: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Along one axis: the sample below each position u, and the kernel factors of it and the next
    (0 outside 0..n-1); the 2-D Gaussian is the product of the two axes' factors."""
    q0 = np.floor(u)
    f = u - q0
    w0 = np.exp(f * f * inv) * ((q0 >= 0) & (q0 <= n - 1))
    w1 = np.exp((1 - f) * (1 - f) * inv) * ((q0 >= -1) & (q0 <= n - 2))
    return q0, (w0, w1)


def _taps(ux: np.ndarray, uy: np.ndarray, inv: np.float32, h: int, w: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The 2x2 samples around each (ux, uy) of an h x w frame: (x, y, kernel weight; 0 outside the frame)."""
    x0, wx = _axis_weights(ux, inv, w)
    y0, wy = _axis_weights(uy, inv, h)
    for dy in (0, 1):
        for dx in (0, 1):
            yield x0 + dx, y0 + dy, wx[dx] * wy[dy]


def fuse_luma(lumas: list[np.ndarray], centre: int, scale: int, aligned: dict[int, Alignment],
              grid: str = "centre", kernel: float = 0.25) -> np.ndarray:
    """Step 3: the centre frame's luma at `scale` times its size from the window's lumas.

    Args:
        lumas: float32 (h, w) luma of each frame of the window.
        centre: index of the frame being upscaled.
        scale: integer factor.
        aligned: `align`'s result.
        grid: where the input pixels lie on the output grid (`origin`).
        kernel: standard deviation of the sample kernel, in low-resolution pixels (0.25 against
            0.35: +0.17 dB on Vid4 calendar and city x4, -0.05 dB on the x2 crops of benchmarks/upscale.py).
    """
    yc = lumas[centre]
    h, w = yc.shape
    big = (h * scale, w * scale)
    px, py = _lowres_grid(h, w, scale, grid)
    inv = np.float32(-0.5 / kernel ** 2)
    num = np.zeros(big, np.float32)
    den = sum(wgt for _, _, wgt in _taps(px, py, inv, h, w))   # the centre frame's samples, innovation 0
    for j, a in aligned.items():
        f_big = resize_field(a.to_j, big)
        r = resize_field(a.trust, big)
        for qx, qy, wgt in _taps(px + f_big[..., 0], py + f_big[..., 1], inv, h, w):
            wgt *= r
            num += wgt * cv2.remap(a.innovation, qx, qy, cv2.INTER_NEAREST)
            den += wgt
    return bicubic(yc, scale, grid) + num / den


def back_project(estimate: np.ndarray, observed: np.ndarray, scale: int, psf: float, grid: str = "centre",
                 iterations: int = 3) -> np.ndarray:
    """Step 5: iterative back-projection (Irani & Peleg 1991) of `estimate` onto the centre frame `observed`.

    The estimate, degraded as `downscale` does, is corrected by its error against the
    observation, upsampled bicubically.
    """
    x = estimate
    for _ in range(iterations):
        x = x + bicubic(observed - downscale(x, scale, psf, grid), scale, grid)
    return x


def downscale(image: np.ndarray, scale: int, psf: float, grid: str = "centre") -> np.ndarray:
    """The degradation back-projection assumes: Gaussian blur of `psf` low-resolution pixels (none at 0), then a
    sample at each input pixel's place under `grid` (`origin`; a remainder of the size that `scale` does not
    divide is left out)."""
    h, w = image.shape[0] // scale, image.shape[1] // scale
    blurred = cv2.GaussianBlur(image, (0, 0), psf * scale) if psf > 0 else image
    if grid == "corner":
        return np.ascontiguousarray(blurred[:h * scale:scale, :w * scale:scale])
    o = origin(scale, grid)
    gx = (np.arange(w, dtype=np.float32) * scale + o)[None, :].repeat(h, 0)
    gy = (np.arange(h, dtype=np.float32) * scale + o)[:, None].repeat(w, 1)
    return cv2.remap(blurred, gx, gy, cv2.INTER_LINEAR)


PSF_CANDIDATES = np.arange(0.0, 0.81, 0.05)   # Gaussian widths (input pixels) `estimate_psf` chooses among


def _octave_ratio(y: np.ndarray) -> float:
    """Log ratio of the luma's energy in its finest octave to the next (difference of Gaussians of 0.8 and
    1.6 of its own pixels, 4 px of border left out): lower when the image is blurrier."""
    a = cv2.GaussianBlur(y, (0, 0), 0.8)
    b = cv2.GaussianBlur(a, (0, 0), 1.6)
    return float(np.log(np.mean((y - a)[4:-4, 4:-4] ** 2) + 1e-12) - np.log(np.mean((a - b)[4:-4, 4:-4] ** 2) + 1e-12))


def estimate_psf(lumas: list[np.ndarray], scale: int, grid: str = "centre") -> float:
    """The width (input pixels) of the Gaussian blur the frames were downscaled with, from the frames alone.

    Natural scenes look alike across scales (Michaeli & Irani, "Nonparametric blind super-resolution",
    ICCV 2013; KernelGAN, Bell-Kligler et al., NeurIPS 2019): the input downscaled by the factor with
    the right kernel is as sharp, relative to its own pixels, as the input. Sharpness is measured as
    `_octave_ratio`, averaged over the frames; the width whose downscaled frames match the input's is
    interpolated among `PSF_CANDIDATES` (0 when even no blur leaves them blurrier: an area kernel at x2).
    """
    if min(min(y.shape) for y in lumas) < 16 * scale:
        raise ValueError(f"frames too small to estimate the blur at x{scale} (at least {16 * scale} px a side)")
    target = np.mean([_octave_ratio(y) for y in lumas])
    ratios = np.array([np.mean([_octave_ratio(downscale(y, scale, float(p), grid)) for y in lumas])
                       for p in PSF_CANDIDATES])
    below = np.nonzero(ratios <= target)[0]
    if len(below) == 0:
        return float(PSF_CANDIDATES[-1])
    k = int(below[0])
    if k == 0:
        return 0.0
    t = (ratios[k - 1] - target) / (ratios[k - 1] - ratios[k])
    return float(PSF_CANDIDATES[k - 1] + t * (PSF_CANDIDATES[k] - PSF_CANDIDATES[k - 1]))
