"""Sharp-frame agreement: is a restored frame closer to the video's own sharp frames than its input?

Real handheld footage has no ground truth, and no-reference sharpness scores (blur effect,
Laplacian variance) reward any edge enhancement: an unsharp mask lowers the blur effect while
moving the picture away from what the scene looks like. But the video itself holds sharp frames
(SelfHVD's premise). For each blurry frame i, its nearest sharp frame j is warped onto frame i
along the optical flow between them, and PSNR-Y is measured inside the forward-backward
occlusion mask (the SelfHVD authors' soft form, `vidrestore.flow.occlusion_mask`). The same is
done for the input's frame i, and both scores are taken on the same pixels (the product of the
two masks), so a restoration that improves the frame raises the score and one that invents or
exaggerates detail lowers it.

Which frames are sharp is the caller's choice (SelfHVD's selection of the input in
`vidrestore metrics --no-gt`); both videos are streamed once, holding only the frames that wait
for their sharp partner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import FlowEstimator, backward_warp, create_flow, occlusion_mask
from .fidelity import rgb_to_y

MIN_COVERAGE = 0.05  # below this share of the frame in the mask, a frame's score is not counted
FLOW_SCALE = 0.5  # flow between a blurry and a sharp frame is estimated at half size, where blur matters less
OCCLUSION_SLOPE = 0.8  # per working-scale pixel of round-trip error, as in the SelfHVD authors' label masks


def default_flow() -> FlowEstimator:
    return create_flow("dis", scale=FLOW_SCALE)


@dataclass
class Agreement:
    """One blurry frame's agreement with its sharp partner: PSNR-Y of input and output in the shared mask."""

    index: int
    partner: int
    input_psnr: float
    output_psnr: float
    coverage: float


def nearest_sharp(sharp: Sequence[bool]) -> list[int]:
    """For each frame the index of the nearest sharp frame (the earlier one on a tie), -1 when none is sharp."""
    idx = [i for i, s in enumerate(sharp) if s]
    if not idx:
        return [-1] * len(sharp)
    pos = np.searchsorted(idx, np.arange(len(sharp)))
    out = []
    for i, p in enumerate(pos):
        cands = [idx[q] for q in (p - 1, p) if 0 <= q < len(idx)]
        out.append(min(cands, key=lambda j: (abs(j - i), j)))
    return out


def _warped_sharp(frame_y: np.ndarray, sharp_y: np.ndarray, flow: FlowEstimator) -> tuple[np.ndarray, np.ndarray]:
    """The sharp luma warped onto the frame (bicubic) and its visibility mask (occlusion x validity)."""
    f_fs = flow(frame_y, sharp_y)
    f_sf = flow(sharp_y, frame_y)
    warped, valid = backward_warp(sharp_y, f_fs, interpolation=cv2.INTER_CUBIC)
    return warped, occlusion_mask(f_fs, f_sf, OCCLUSION_SLOPE * flow.scale) * valid


def _masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    mse = float(np.sum((a - b) ** 2 * mask) / max(float(mask.sum()), 1e-12))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def agreement_pair(output: np.ndarray, input: np.ndarray, sharp: np.ndarray,
                   flow: FlowEstimator | None = None) -> tuple[float, float, float]:
    """PSNR-Y of `input` and of `output` against `sharp` warped onto each, in the shared mask; and its coverage.

    Args:
        output, input: the restored frame and the same frame of the input (RGB (H, W, 3) in [0, 1], or luma).
        sharp: the input's sharp partner frame.
        flow: flow estimator (default DIS medium at half size).
    """
    flow = flow or default_flow()
    out_y, in_y, sharp_y = rgb_to_y(output), rgb_to_y(input), rgb_to_y(sharp)
    w_out, m_out = _warped_sharp(out_y, sharp_y, flow)
    w_in, m_in = _warped_sharp(in_y, sharp_y, flow)
    mask = m_out * m_in
    return _masked_psnr(in_y, w_in, mask), _masked_psnr(out_y, w_out, mask), float(mask.mean())


class AgreementStream:
    """`agreement_pair` for every frame not flagged sharp, fed one frame pair at a time in order.

    A blurry frame waits (as luma) until its partner has been read; memory is about half the
    longest run of blurry frames. Frames whose shared mask covers less than `MIN_COVERAGE` of the
    frame are left out.

    Args:
        sharp: per-frame "is sharp" flags of the input (which frames supervise the others).
        flow: flow estimator (default `default_flow()`).
    """

    def __init__(self, sharp: Sequence[bool], flow: FlowEstimator | None = None):
        self.sharp = [bool(x) for x in sharp]
        self.flow = flow or default_flow()
        self.partner = nearest_sharp(self.sharp)
        self.last_use = {j: max(i for i, p in enumerate(self.partner) if p == j) for j in set(self.partner) if j >= 0}
        self.luma: dict[int, np.ndarray] = {}  # sharp frame -> its input luma, while a frame still needs it
        self.waiting: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.count = 0

    def _score(self, i: int, out_y: np.ndarray, in_y: np.ndarray) -> list[Agreement]:
        j = self.partner[i]
        p_in, p_out, cov = agreement_pair(out_y, in_y, self.luma[j], self.flow)
        return [Agreement(i, j, p_in, p_out, cov)] if cov >= MIN_COVERAGE else []

    def update(self, output: np.ndarray, input: np.ndarray) -> list[Agreement]:
        """Take the next frame of both videos; return the frames whose scores are now known."""
        i = self.count
        if i >= len(self.sharp):
            raise VidrestoreError(f"the sharp-frame flags cover {len(self.sharp)} frames; the video has more")
        self.count += 1
        out_y, in_y = rgb_to_y(output), rgb_to_y(input)
        done: list[Agreement] = []
        if self.sharp[i]:
            self.luma[i] = in_y
            ready = [w for w in self.waiting if self.partner[w[0]] == i]
            self.waiting = [w for w in self.waiting if self.partner[w[0]] != i]
            for w in ready:
                done += self._score(*w)
        elif self.partner[i] in self.luma:
            done += self._score(i, out_y, in_y)
        elif self.partner[i] >= 0:
            self.waiting.append((i, out_y, in_y))
        for j in [j for j in self.luma if self.last_use[j] <= i]:
            del self.luma[j]
        return done

    def finish(self) -> None:
        """Check that every flagged frame was seen."""
        if self.count != len(self.sharp):
            raise VidrestoreError(f"the sharp-frame flags cover {len(self.sharp)} frames; the video has {self.count}")


def sharp_frame_agreement(output: Iterable[np.ndarray], input: Iterable[np.ndarray], sharp: Sequence[bool],
                          flow: FlowEstimator | None = None) -> list[Agreement]:
    """`AgreementStream` over two frame sequences of the same length; rows sorted by frame."""
    stream = AgreementStream(sharp, flow)
    rows: list[Agreement] = []
    in_it = iter(input)
    for out in output:
        frame = next(in_it, None)
        if frame is None:
            raise VidrestoreError("the input has fewer frames than the output")
        rows += stream.update(out, frame)
    if next(in_it, None) is not None:
        raise VidrestoreError("the input has more frames than the output")
    stream.finish()
    return sorted(rows, key=lambda r: r.index)
