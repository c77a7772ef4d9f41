"""Drift: how far an output frame's content sits from the reference frame's (the SCSCM failure).

A restored frame can be sharp and still be shifted against the truth; PSNR then drops for
reasons no sharpness metric shows. Drift is read from the optical flow reference -> output of
the same frame: `ref(p) ~ out(p + d(p))`.

* global drift: the per-component median of d over the frame (robust to the flow's noise in
  flat or blurred areas), and its norm in pixels;
* local drift: the median of |d| over blocks, a map that shows regions that moved (a warped
  face, a bent edge) even when the frame as a whole did not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VidrestoreError
from ..flow import FlowEstimator, create_flow

DEFAULT_MARGIN = 8  # pixels at the border left out: flow there is extrapolated


@dataclass
class Drift:
    """Global drift of one frame: median displacement (dx, dy) in pixels, and its norm."""

    dx: float
    dy: float

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.dx, self.dy))


def drift_flow(output: np.ndarray, reference: np.ndarray, flow: FlowEstimator | None = None) -> np.ndarray:
    """Flow reference -> output (H, W, 2): where each reference pixel's content lies in the output."""
    if output.shape != reference.shape:
        raise VidrestoreError(f"output frame {output.shape} and reference frame {reference.shape} differ in size")
    return (flow or create_flow("dis"))(reference, output)


def _interior(flow: np.ndarray, margin: int) -> np.ndarray:
    h, w = flow.shape[:2]
    m = min(margin, (min(h, w) - 1) // 4)
    return flow[m:h - m, m:w - m] if m > 0 else flow


def global_drift(flow: np.ndarray, margin: int = DEFAULT_MARGIN) -> Drift:
    """Median displacement of a reference -> output flow, leaving out `margin` border pixels."""
    inner = _interior(flow, margin)
    return Drift(float(np.median(inner[..., 0])), float(np.median(inner[..., 1])))


def local_drift(flow: np.ndarray, block: int = 32) -> np.ndarray:
    """Median displacement magnitude per block of `block` x `block` pixels: (ceil(H/block), ceil(W/block))."""
    mag = np.linalg.norm(flow, axis=-1)
    h, w = mag.shape
    gh, gw = -(-h // block), -(-w // block)
    padded = np.full((gh * block, gw * block), np.nan, np.float32)
    padded[:h, :w] = mag
    tiles = padded.reshape(gh, block, gw, block).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    return np.nanmedian(tiles, axis=-1).astype(np.float32)


def drift(output: np.ndarray, reference: np.ndarray, flow: FlowEstimator | None = None,
          margin: int = DEFAULT_MARGIN) -> Drift:
    """Global drift of `output` against `reference` (float RGB frames of the same size)."""
    return global_drift(drift_flow(output, reference, flow), margin)
