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
4. **Back-projection** (Irani & Peleg 1991) onto the centre frame (`back_project`), under the
   degradation `downscale` models: a Gaussian blur whose width `estimate_psf` estimates from the
   frames, then a sample per input pixel at the place the sampling grid says (`origin`). Back-
   projecting every trusted frame's error instead was within 0.05 dB on Vid4 calendar and lost
   0.3-0.5 dB on the real x2 crops (flow errors), so only the centre frame is used. One step, not
   three: each step fits the frame's own aliased samples more closely, detail that changes from
   frame to frame (on Vid4 city x4 the fusion's warping error was 1.72x bicubic's after three
   steps, 0.91x after one, 0.23x with none, at 26.00, 25.91 and 25.59 dB Y-PSNR).

Chroma carries little detail and is upsampled bicubically (`upscale`).

References:
    Wronski, Garcia-Dorado, Ernst, Kelly, Krainin, Liang, Levoy, Milanfar, "Handheld multi-frame
    super-resolution", ACM TOG (SIGGRAPH) 2019.
    Irani, Peleg, "Improving resolution by image registration", CVGIP 1991.
    Takeda, Farsiu, Milanfar, "Kernel regression for image processing and reconstruction",
    IEEE TIP 2007.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..flow import backward_warp, occlusion_mask

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


def _upsample(image: np.ndarray, scale: int, grid: str, interpolation: int) -> np.ndarray:
    """`image` interpolated onto the grid `scale` times finer, input pixels placed as `grid` says (`origin`)."""
    h, w = image.shape[:2]
    if grid == "centre":
        return cv2.resize(image, (w * scale, h * scale), interpolation=interpolation)
    shift = -origin(scale, grid) / scale
    m = np.float32([[1 / scale, 0, shift], [0, 1 / scale, shift]])
    return cv2.warpAffine(image, m, (w * scale, h * scale), flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def bicubic(image: np.ndarray, scale: int, grid: str = "centre") -> np.ndarray:
    """Single-frame bicubic upsampling by an integer factor, input pixels placed as `grid` says (`origin`)."""
    return _upsample(image, scale, grid, cv2.INTER_CUBIC)


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


def _lowres_axis(n: int, scale: int, grid: str) -> np.ndarray:
    """Position of every high-resolution pixel along one axis, in low-resolution pixels (`origin`)."""
    return (np.arange(n * scale, dtype=np.float32) - np.float32(origin(scale, grid))) / np.float32(scale)


def _kernel_tables(kernel: float) -> tuple[np.ndarray, np.ndarray]:
    """For 256 fractions f in [0, 1] of a position past the sample below it: the sum of the Gaussian kernel
    factors of the two samples around it, and the position between them at which linear interpolation
    weighs them as the kernel does (the normalised weight of the second)."""
    f = np.arange(256, dtype=np.float32) / 255
    w0, w1 = np.exp(-0.5 * f * f / kernel ** 2), np.exp(-0.5 * (1 - f) ** 2 / kernel ** 2)
    return (w0 + w1).astype(np.float32), (w1 / (w0 + w1)).astype(np.float32)


def _axis_weights(u: np.ndarray, tables: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis, for each position u: `_kernel_tables`' kernel sum, and the interpolation position."""
    q0 = np.floor(u)
    f = cv2.convertScaleAbs(u - q0, alpha=255)   # the fraction in 1/255ths
    return cv2.LUT(f, tables[0]), q0 + cv2.LUT(f, tables[1])


def fuse_luma(lumas: list[np.ndarray], centre: int, scale: int, aligned: dict[int, Alignment],
              grid: str = "centre", kernel: float = 0.25) -> np.ndarray:
    """Step 3: the centre frame's luma at `scale` times its size from the window's lumas.

    The 2x2 Gaussian-weighted gather is separable: one linear interpolation per neighbour at positions
    moved so that its weights are the kernel's, times the sum of the kernel's weights (samples
    beyond the frame's edge read the edge sample).

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
    px, py = _lowres_axis(w, scale, grid)[None, :], _lowres_axis(h, scale, grid)[:, None]
    tables = _kernel_tables(kernel)
    num = np.zeros(big, np.float32)
    den = _axis_weights(py, tables)[0] * _axis_weights(px, tables)[0]   # the centre frame's samples, innovation 0
    for a in aligned.values():
        f_big = _upsample(a.to_j, scale, grid, cv2.INTER_LINEAR)
        fx, fy = cv2.split(f_big)
        sx, mx = _axis_weights(px + fx, tables)
        sy, my = _axis_weights(py + fy, tables)
        wgt = _upsample(a.trust, scale, grid, cv2.INTER_LINEAR) * sx * sy
        num += wgt * cv2.remap(a.innovation, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        den = den + wgt
    return bicubic(yc, scale, grid) + num / den


def average_aligned(images: dict[int, np.ndarray], aligned: dict[int, Alignment], centre: int, scale: int,
                    grid: str = "centre", weight: float = 1.0) -> np.ndarray:
    """High-resolution images of the window's frames (`centre`'s and those of `aligned`'s neighbours) warped
    onto the centre frame by the upsampled flows and averaged, each neighbour's pixels weighed by its trust
    (upsampled) times `weight`, the centre's by 1: where no neighbour is trusted, the centre's image is returned."""
    num, den = images[centre].copy(), np.ones_like(images[centre])
    for j, a in aligned.items():
        warped, valid = backward_warp(images[j], _upsample(a.to_j, scale, grid, cv2.INTER_LINEAR) * np.float32(scale))
        trust = _upsample(a.trust, scale, grid, cv2.INTER_LINEAR) * valid * np.float32(weight)
        num += trust * warped
        den += trust
    return num / den


def back_project(estimate: np.ndarray, observed: np.ndarray, scale: int, psf: float, grid: str = "centre",
                 iterations: int = 1) -> np.ndarray:
    """Step 4: iterative back-projection (Irani & Peleg 1991) of `estimate` onto the centre frame `observed`.

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
