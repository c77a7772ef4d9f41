"""Backward warping by a flow field, and forward-backward consistency."""

from __future__ import annotations

import math

import cv2
import numpy as np

ROW_MARGIN = 3  # rows (and columns) beyond the samples' extent that interpolation taps (bicubic: -1..+2) and OpenCV's fixed-point rounding reach


def remap(image, xs: np.ndarray, ys: np.ndarray, interpolation: int = cv2.INTER_LINEAR,
          border: int = cv2.BORDER_REPLICATE, dtype: type | None = None) -> np.ndarray:
    """``cv2.remap`` of `image` (converted to `dtype` if given) sampled at (xs, ys).

    `image` is an array, or anything sliced by rows like one (`io.npy_rows.NpyRows.item`, an item
    on disk): then, when every sample lies inside it, only the rows the samples reach are read,
    and of those only the columns they reach are converted and sampled, with the same result (the
    samples move by a whole number of pixels, exactly in float32). A training crop's part of a
    frame or a flow then costs what the crop costs, whatever the frame's size.
    """
    if isinstance(image, np.ndarray):
        return cv2.remap(np.ascontiguousarray(image, dtype), xs, ys, interpolation, borderMode=border)
    (r0, r1), (c0, c1) = _reach(ys, image.shape[0]), _reach(xs, image.shape[1])
    part = np.ascontiguousarray(image[r0:r1][:, c0:c1], dtype)
    return cv2.remap(part, xs - np.float32(c0) if c0 else xs, ys - np.float32(r0) if r0 else ys, interpolation,
                     borderMode=border)


def _reach(coords: np.ndarray, n: int) -> tuple[int, int]:
    """The range of rows (or columns) of n that samples at `coords` and their interpolation taps reach;
    all n when a sample falls outside (one far outside a part rounds differently in OpenCV's bicubic)."""
    lo, hi = float(np.min(coords)), float(np.max(coords))
    if not (0 <= lo and hi <= n - 1):
        return 0, n
    return max(0, math.floor(lo) - ROW_MARGIN), min(n, math.floor(hi) + ROW_MARGIN + 1)


def _grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return xs, ys


def resize_field(field: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int] | None = None,
                 is_flow: bool = False) -> np.ndarray:
    """Bilinearly resize a map (flow or mask, computed at a working scale) to `size` = (H, W).

    With `box` = (y0, y1, x0, x1) only that part of the resized map is made (what
    ``cv2.resize(field, (W, H))[y0:y1, x0:x1]`` gives, without resizing the rest): training
    crops and tiles read flows kept at a quarter of the frame's size. A flow's vectors are
    scaled by the size ratio per axis.
    """
    h, w = field.shape[:2]
    big_h, big_w = size
    y0, y1, x0, x1 = box if box is not None else (0, big_h, 0, big_w)
    rx, ry = w / big_w, h / big_h
    xs = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * rx - 0.5)[None, :].repeat(y1 - y0, 0)
    ys = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * ry - 0.5)[:, None].repeat(x1 - x0, 1)
    out = remap(field, xs, ys, dtype=np.float32)
    if is_flow:
        out[..., 0] *= 1 / rx
        out[..., 1] *= 1 / ry
    return out


def backward_warp(image: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE,
                  interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, np.ndarray]:
    """Sample `image` at p + flow(p) (bilinear by default).

    Args:
        image: (H, W) or (H, W, C) float32 (or 8-bit), or an item on disk read by rows (`remap`).
        flow: (H, W, 2) float32 displacement in pixels (x, y).
        border: how samples outside the image are filled (they are marked invalid either way).
        interpolation: OpenCV interpolation; cv2.INTER_CUBIC keeps more detail of a sharp image
            (bilinear sampling at half-pixel offsets is itself a blur).

    Returns:
        (warped, valid): the warped image and a float32 (H, W) mask, 1 where p + flow(p) falls
        inside the image, 0 outside.
    """
    xs, ys = _grid(flow)
    warped = remap(image, xs, ys, interpolation, border)
    h, w = image.shape[:2]
    valid = ((xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)).astype(np.float32)
    return warped, valid


def fb_consistency_error(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Round-trip error ||f_ab(p) + f_ba(p + f_ab(p))|| in pixels; inf where the trip leaves the image."""
    back, valid = backward_warp(flow_ba, flow_ab)
    err = np.linalg.norm(flow_ab + back, axis=-1).astype(np.float32)
    err[valid == 0] = np.inf
    return err


def occlusion_mask(flow_ab: np.ndarray, flow_ba: np.ndarray, slope: float = 0.8) -> np.ndarray:
    """Soft visibility mask 1 - min(1, slope * round-trip error): 1 visible, 0 occluded or out of view.

    The form of the SelfHVD authors' label code (slope 0.8 per pixel of round-trip error, applied
    at the flow's working resolution).
    """
    err = fb_consistency_error(flow_ab, flow_ba)
    return (1.0 - np.minimum(1.0, slope * err)).astype(np.float32)
