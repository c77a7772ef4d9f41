"""The window model's input for frame i: its neighbours aligned onto it, and a fusion prior.

Training crops (`sampling`) and full-frame inference (`infer`) build it with the same function,
so the network sees the same kind of input in both. Each source frame t of the window is warped
onto frame i along the analysis' cached flows (`VideoAnalysis.follow`: direct within its
`align_reach`, chained beyond); the prior is the log of lucky-frame fusion's weight for it
(`vidrestore.flow.fusion.neighbour_weight`: sharper than the centre, visible by the
forward-backward round trip, agreeing with the centre once both are low-passed; 0 for the
centre). The window network starts as exactly that fusion and learns what it gets wrong
(`vidrestore.models.unet`).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ..flow import backward_warp
from ..flow.fusion import DEFAULTS, disagreement, frame_weight, low_luma, neighbour_weight
from ..util.threads import thread_map
from .analysis import VideoAnalysis

NO_WEIGHT = -30.0  # log-weight of a frame that must not contribute (exp(-30) ~ 1e-13)
OCCLUSION_SLOPE = 0.8
MOVING_SIGMA = 3.0  # px: `moving_share`'s low-pass (README: SelfHVD, moving objects)
LOST_PX = 2.5  # px: a round trip missing by this much is an object's motion, not flow noise (`moving_share`)


def warp_onto(analysis: VideoAnalysis, i: int, t: int, frame_t: np.ndarray, box: tuple[int, int, int, int],
              there: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Frame t (full frame, float or 8-bit; or `NpyRows.item`, of which only the rows needed are read)
    warped onto frame i within `box` (bicubic), float32 RGB in [0, 1]; `there`: the box's
    `VideoAnalysis.positions` in frame t, when already computed."""
    if t == i:
        crop = frame_t[box[0]:box[1], box[2]:box[3]]
        return crop.astype(np.float32) * (1 / 255.0) if crop.dtype == np.uint8 else crop.astype(np.float32)
    flow = analysis.flow_to(i, t, box, there)
    flow[..., 0] += box[2]
    flow[..., 1] += box[0]
    warped, _ = backward_warp(frame_t, flow, interpolation=cv2.INTER_CUBIC)
    warped = warped.astype(np.float32) * (1 / 255.0) if warped.dtype == np.uint8 else warped
    return np.clip(warped, 0.0, 1.0)


def round_trip(analysis: VideoAnalysis, i: int, t: int, box: tuple[int, int, int, int],
               trips: dict[int, np.ndarray] | None = None, there: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """`VideoAnalysis.round_trip_error(i, t, box, there)`, kept in `trips` (by t) when given: rendering a
    frame needs each neighbour's round trip twice, for the fusion prior and for `moving_share`."""
    if trips is None:
        return analysis.round_trip_error(i, t, box, there)
    if t not in trips:
        trips[t] = analysis.round_trip_error(i, t, box, there)
    return trips[t]


def visibility(analysis: VideoAnalysis, i: int, t: int, box: tuple[int, int, int, int],
               trips: dict[int, np.ndarray] | None = None, there: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """How visible frame t's pixels warped onto frame i are (1: the forward-backward round trip closes;
    0: it misses by 1 / OCCLUSION_SLOPE pixels or more), within `box`."""
    return 1.0 - np.minimum(1.0, OCCLUSION_SLOPE * round_trip(analysis, i, t, box, trips, there))


def fusion_prior(analysis: VideoAnalysis, i: int, sources: list[int], centre: int, box: tuple[int, int, int, int],
                 aligned: list[np.ndarray], sharpness: dict[int, float], trips: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Lucky-frame fusion's log-weights (T, h, w) for the aligned window of frame i (module docstring).

    Args:
        analysis: the video's analysis (its flows give the round trip of each neighbour).
        i: the frame everything is warped onto.
        sources: the frame shown at each window position.
        centre: the position of frame i's input.
        box: (y0, y1, x0, x1) part of the frame.
        aligned: the window's frames warped onto frame i.
        sharpness: frame index -> sharpness, for the sharper-than-centre ratio.
        trips: round trips to reuse and keep (`round_trip`).
    """
    low = low_luma(aligned[centre])
    prior = np.full((len(sources), box[1] - box[0], box[3] - box[2]), NO_WEIGHT, np.float32)
    prior[centre] = 0.0
    seen = {sources[centre]}
    for n, t in enumerate(sources):
        if n == centre or t in seen:
            continue
        seen.add(t)
        ratio = _ratio(sharpness, t, sources[centre])
        if ratio <= 1:
            continue
        w = neighbour_weight(low, aligned[n], ratio, visibility(analysis, i, t, box, trips))
        prior[n] = np.maximum(np.log(np.maximum(w, 1e-30)), NO_WEIGHT)
    return prior


def _ratio(sharpness: dict[int, float], t: int, c: int) -> float:
    """How much sharper frame t is than frame c (above 1: t joins c's fusion)."""
    return sharpness[t] / max(sharpness[c], 1e-12)


def fused(aligned: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Lucky-frame fusion of the aligned window (T, h, w, 3) by its prior's log-weights (T, h, w)."""
    w = np.exp(prior - prior.max(axis=0, keepdims=True))
    w *= 1 / w.sum(axis=0)
    out = w[0, ..., None] * aligned[0]
    for t in range(1, len(w)):  # a frame at a time: half the time of one einsum over the window
        out += w[t, ..., None] * aligned[t]
    return out.astype(np.float32, copy=False)


def moving_share(analysis: VideoAnalysis, i: int, sources: list[int], centre: int, aligned: np.ndarray,
                 trips: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Per pixel, the share of the fusion's frame weights (`frame_weight`: sharper neighbours only) that
    comes from neighbours that cannot be trusted there: where another moment's content differs from
    frame i (a moving object), in [0, 1]. A neighbour counts where it disagrees strongly
    (`disagreement`'s test, on luma low-passed at MOVING_SIGMA rather than the trust's 1.5 px, so that
    a sharp neighbour's crisper edges, blur rather than motion, do not count) or where its
    forward-backward round trip misses by LOST_PX or more (what an object uncovers or covers as it
    moves, and out of view; on real blurry footage the flows' own round trips miss by about half a
    pixel); both spread over the disagreement's neighbourhood.
    `aligned` is the whole frame's window (as `infer` builds it); `trips` as for `fusion_prior`."""
    low = low_luma(aligned[centre], MOVING_SIGMA)
    share = np.zeros(low.shape, np.float32)
    total = 0.0
    seen = {sources[centre]}
    box = (0, low.shape[0], 0, low.shape[1])
    spread = np.ones((DEFAULTS["spread"], DEFAULTS["spread"]), np.uint8)
    for n, t in enumerate(sources):
        if t in seen:
            continue
        seen.add(t)
        w = frame_weight(float(analysis.laplacian[t]) / max(float(analysis.laplacian[i]), 1e-12))
        if w > 0:
            moved = disagreement(low, aligned[n], MOVING_SIGMA) > DEFAULTS["spread_above"]
            lost = cv2.dilate((round_trip(analysis, i, t, box, trips) >= LOST_PX).astype(np.uint8), spread) > 0
            share += np.float32(w) * (moved | lost)
            total += w
    return share / np.float32(total) if total > 0 else share


def window_input(analysis: VideoAnalysis, i: int, sources: list[int], centre: int, box: tuple[int, int, int, int],
                 frame_of: Callable[[int], np.ndarray], trips: dict[int, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Aligned frames (T, h, w, 3) and fusion log-weights (T, h, w) for frame i.

    `frame_of` maps a frame index to the full frame (8-bit from the analysis, or float from the
    pipeline); sharpness is the analysis' per-frame Laplacian variance. Other arguments as `fusion_prior`.
    Each neighbour's positions in frame i's pixels are followed once, for its warp and, where it
    joins the fusion, its round trip; the neighbours are aligned on worker threads (`thread_map`).
    """
    sharpness = {t: float(analysis.laplacian[t]) for t in set(sources)}
    trips = {} if trips is None else trips
    frames = list(dict.fromkeys(sources))

    def align(t: int) -> tuple[np.ndarray, np.ndarray | None]:
        there = analysis.positions(i, t, box) if t != i else None
        warped = warp_onto(analysis, i, t, frame_of(t), box, there)
        joins = there is not None and t not in trips and _ratio(sharpness, t, sources[centre]) > 1
        return warped, analysis.round_trip_error(i, t, box, there) if joins else None

    warped: dict[int, np.ndarray] = {}
    for t, (w, trip) in zip(frames, thread_map(align, frames)):
        warped[t] = w
        if trip is not None:
            trips[t] = trip
    aligned = [warped[t] for t in sources]
    return np.stack(aligned), fusion_prior(analysis, i, sources, centre, box, aligned, sharpness, trips)
