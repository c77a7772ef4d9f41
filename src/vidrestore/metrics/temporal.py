"""Temporal warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).

E_warp = 1/(T-1) * sum_t  sum_p M_t(p) ||O_t(p) - W(O_{t+1})(p)||^2 / sum_p M_t(p)

where W warps frame t+1 of the output onto frame t with flow computed on the reference video
(the input, so that the output cannot hide its flicker from the flow), and M_t masks pixels whose
forward-backward flow round trip fails (occlusions, out of view).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..flow import FlowEstimator, backward_warp, create_flow, occlusion_mask


@dataclass
class WarpingError:
    """Per-pair warping errors (frame t vs warped t+1) and their mean."""

    per_pair: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_pair)) if self.per_pair else 0.0


def warping_error_pair(out_t: np.ndarray, out_t1: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Masked mean squared difference between out_t and out_t1 warped onto t by `flow` (t -> t+1)."""
    warped, valid = backward_warp(out_t1, flow)
    m = mask * valid
    if m.sum() == 0:
        return 0.0
    sq = np.sum((out_t.astype(np.float32) - warped) ** 2, axis=-1) / out_t.shape[-1]
    return float((sq * m).sum() / m.sum())


def warping_error(
    output: Iterable[np.ndarray],
    reference: Iterable[np.ndarray] | None = None,
    flow: FlowEstimator | None = None,
) -> WarpingError:
    """Warping error of `output` frames, with flow from `reference` frames (default: the output itself).

    Frames are float32 RGB (H, W, 3) in [0, 1]; both sequences are consumed in step, two frames at a time.
    """
    flow = flow or create_flow("dis")
    out_it = iter(output)
    ref_it = iter(reference) if reference is not None else None
    errors: list[float] = []
    prev_out = next(out_it, None)
    prev_ref = next(ref_it, None) if ref_it is not None else prev_out
    if prev_out is None:
        return WarpingError([])
    prev_prep = flow.prepare(prev_ref)
    for cur_out in out_it:
        cur_ref = next(ref_it) if ref_it is not None else cur_out
        cur_prep = flow.prepare(cur_ref)
        size = cur_out.shape[:2]
        f_fw = flow.flow_prepared(prev_prep, cur_prep, size)
        f_bw = flow.flow_prepared(cur_prep, prev_prep, size)
        mask = (occlusion_mask(f_fw, f_bw) >= 0.5).astype(np.float32)
        errors.append(warping_error_pair(prev_out, cur_out, f_fw, mask))
        prev_out, prev_prep = cur_out, cur_prep
    return WarpingError(errors)
