"""Temporal warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).

E_warp = 1/(T-1) * sum_t  sum_p M_t(p) ||O_t(p) - W(O_{t+1})(p)||^2 / sum_p M_t(p)

where W warps frame t+1 of the output onto frame t with flow computed on the reference video
(the input or the ground truth, so that the output cannot hide its flicker from the flow), and
M_t masks pixels whose forward-backward flow round trip fails (occlusions, out of view).

The absolute value also counts what no method can remove: interpolation error of the warp,
flow error, lighting that really changes. So the same flows and masks are applied to the
reference itself, and `WarpingError.excess` = E_warp(output) - E_warp(reference) is the
temporal inconsistency the output adds. It is exactly 0 for a video compared with itself,
grows with flicker, and is negative for an output steadier than its reference. (The absolute
E_warp of a static video is 0 too: its flow is zero and the warp is the identity.)

Global flicker is measured more simply, from the mean luma of each frame: `luminance_flicker`
is the RMS of its variation above 1 Hz (`highpass`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import butter, sosfiltfilt

from ..errors import VidrestoreError
from ..flow import FlowEstimator, backward_warp, create_flow, occlusion_mask
from .fidelity import rgb_to_y


@dataclass
class WarpingError:
    """Per-pair warping errors (frame t vs warped t+1) of the output and of the reference."""

    per_pair: list[float]
    reference_per_pair: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_pair)) if self.per_pair else 0.0

    @property
    def reference_mean(self) -> float:
        return float(np.mean(self.reference_per_pair)) if self.reference_per_pair else 0.0

    @property
    def excess(self) -> float:
        """Mean warping error the output adds over its reference's own."""
        return self.mean - self.reference_mean


def warping_error_pair(out_t: np.ndarray, out_t1: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Masked mean squared difference between out_t and out_t1 warped onto t by `flow` (t -> t+1)."""
    warped, valid = backward_warp(out_t1, flow)
    m = mask * valid
    if m.sum() == 0:
        return 0.0
    sq = np.sum((out_t.astype(np.float32) - warped) ** 2, axis=-1) / out_t.shape[-1]
    return float((sq * m).sum() / m.sum())


class WarpingErrorStream:
    """Warping error computed as frames arrive: feed (output, reference) pairs in order.

    `update` returns, from the second frame on, the errors of the pair (t-1, t) for the output
    and for the reference under the same flow and mask; None for the first frame.
    """

    def __init__(self, flow: FlowEstimator | None = None):
        self.flow = flow or create_flow("dis")
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def update(self, out: np.ndarray, ref: np.ndarray) -> tuple[float, float] | None:
        if out.shape != ref.shape:
            raise VidrestoreError(f"output frame {out.shape} and reference frame {ref.shape} differ in size")
        prep = self.flow.prepare(ref)
        result = None
        if self._prev is not None:
            prev_out, prev_ref, prev_prep = self._prev
            size = out.shape[:2]
            f_fw, f_bw = self.flow.flow_pairs([(prev_prep, prep), (prep, prev_prep)], size)
            mask = (occlusion_mask(f_fw, f_bw) >= 0.5).astype(np.float32)
            result = (warping_error_pair(prev_out, out, f_fw, mask), warping_error_pair(prev_ref, ref, f_fw, mask))
        self._prev = (out, ref, prep)
        return result


def warping_error(
    output: Iterable[np.ndarray],
    reference: Iterable[np.ndarray] | None = None,
    flow: FlowEstimator | None = None,
) -> WarpingError:
    """Warping error of `output` frames, with flow from `reference` frames (default: the output itself).

    Frames are float32 RGB (H, W, 3) in [0, 1]; both sequences are consumed in step, two frames
    at a time. Raises VidrestoreError when the sequences differ in length.
    """
    stream = WarpingErrorStream(flow)
    out_it = iter(output)
    ref_it = iter(reference) if reference is not None else None
    result = WarpingError([], [])
    for out in out_it:
        ref = out if ref_it is None else next(ref_it, None)
        if ref is None:
            raise VidrestoreError("the reference has fewer frames than the output")
        pair = stream.update(out, ref)
        if pair is not None:
            result.per_pair.append(pair[0])
            result.reference_per_pair.append(pair[1])
    if ref_it is not None and next(ref_it, None) is not None:
        raise VidrestoreError("the reference has more frames than the output")
    return result


def highpass(signal: np.ndarray, fps: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase 4th-order Butterworth high-pass along axis 0 (scipy `sosfiltfilt`); the input's ends padded oddly."""
    if not 0 < cutoff_hz < fps / 2:
        raise VidrestoreError(f"cutoff must be between 0 and half the frame rate ({fps / 2:g} Hz), not {cutoff_hz}")
    x = np.asarray(signal, dtype=np.float64)
    sos = butter(4, cutoff_hz, "highpass", fs=fps, output="sos")
    pad = min(len(x) - 1, 3 * (2 * len(sos) + 1))
    if pad < 1:
        return np.zeros_like(x)
    return sosfiltfilt(sos, x, axis=0, padlen=pad)


def frame_mean_luma(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Mean BT.601 luma of each float RGB frame."""
    return np.array([float(rgb_to_y(f).mean()) for f in frames])


def video_flicker(output: str | os.PathLike, reference: str | os.PathLike, cutoff_hz: float = 1.0) -> dict[str, float]:
    """`luminance_flicker` of two videos and the share of the reference's flicker the output removed."""
    from ..io import probe, read_frames

    scores = {}
    for name, path in (("output", output), ("reference", reference)):
        fps = float(probe(path).fps or 25)
        scores[name] = luminance_flicker(frame_mean_luma(f.rgb for f in read_frames(path)), fps, cutoff_hz)
    scores["reduction"] = 1 - scores["output"] / scores["reference"] if scores["reference"] > 0 else 0.0
    return scores


def luminance_flicker(means: np.ndarray, fps: float, cutoff_hz: float = 1.0) -> float:
    """Global flicker: RMS of the frame-mean luma's variation above `cutoff_hz` (luma units, 0-1).

    Film flicker and per-frame exposure jumps live at several hertz; lighting and scene changes
    a viewer accepts are slower. 1 Hz is the split the stabilization jitter uses too.
    """
    return float(np.sqrt(np.mean(highpass(means, fps, cutoff_hz) ** 2)))
