"""Lucky-frame fusion: each frame blended with its flow-aligned sharper neighbours.

The idea of OpenCV's ``videostab::WeightingDeblurer`` (Matsushita et al., "Full-frame video
stabilization with motion inpainting", PAMI 2006, sec. 5), which has no Python binding, with
dense optical flow in place of its global motion model: handheld video holds "lucky" sharp
frames between blurry ones (the sharp clues SelfHVD learns from), so a blurry frame borrows
from sharper neighbours, aligned onto it.

For frame i and each neighbour j within `radius` that is sharper (s_j > s_i, with s the
Laplacian variance measured at half resolution):

    w_j(p) = strength * (s_j / s_i - 1)^power * M_occ(p) * valid(p) * sens / (sens + |G(Y_j->i)(p) - G(Y_i)(p)|)

where the neighbour is backward-warped (bicubic) onto frame i with flow i -> j (estimated with the
sharper frame of the pair blurred to the other's sharpness first, `flow.match_blur`), M_occ is the
forward-backward occlusion mask, valid marks pixels warped from inside the frame, and the last
factor is WeightingDeblurer's photometric agreement, computed on Gaussian-blurred luma so that
the blur difference itself does not count as disagreement; a strong disagreement is first
spread over its 13x13 neighbourhood (`vidrestore.flow.fusion.trust`), so that an object that
moved between the frames is not pasted in where its pixels agree by chance. The output is
(x_i + sum_j w_j x_j->i) / (1 + sum_j w_j); the sharpest frame of its window stays unchanged, and so
does a frame the blend would leave less sharp than it was (`fusion.never_blurrier`: neighbours
misaligned by a pixel or two blend into blur).

Two departures from WeightingDeblurer, both chosen by measurement on synthetic handheld clips
(the README's "Measured design choices" gives the figures): it weights by the plain ratio
s_j / s_i, but a neighbour only as sharp as the frame brings nothing except its misalignment,
hence s_j / s_i - 1; and sharpness at full resolution also counts pixel-level texture and noise
that warping cannot carry over, hence half resolution. The strength (8) was chosen with the
blur-matched flows, which align a sharper neighbour closely enough to trust it more than the
plain flows did (4 before; README, "Deblurring").

Fusion helps only where neighbours can be aligned: on a clip whose consecutive frames differ
more than the blur does it loses on blurry frames; the default benchmark suite leaves such a clip out.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import backward_warp, create_flow, occlusion_mask
from ..flow.fusion import low_luma, neighbour_weight, never_blurrier
from ..metrics.blur import laplacian_variance
from ..pipeline import Stage, Window, register_stage


class LuckyFusion(Stage):
    """Windowed stage (`vidrestore restore -s lucky:radius=3`).

    Args:
        radius: neighbours on each side considered.
        power, strength: the neighbour weight is strength * (s_j / s_i - 1) ** power.
        sensitivity: photometric tolerance (luma, 0-1 scale) of the agreement weight.
        compare_sigma: Gaussian sigma (pixels) applied to both lumas before comparing them.
        flow_preset: DIS preset ("ultrafast", "fast", "medium").
    """

    name = "lucky"

    def __init__(self, radius: int = 3, power: float = 3.0, strength: float = 8.0, sensitivity: float = 0.01,
                 compare_sigma: float = 1.5, flow_preset: str = "medium"):
        if radius < 1 or power < 0 or strength < 0 or sensitivity <= 0 or compare_sigma <= 0:
            raise VidrestoreError(
                f"lucky needs radius >= 1, power >= 0, strength >= 0, sensitivity > 0, compare_sigma > 0 "
                f"(got {radius}, {power}, {strength}, {sensitivity}, {compare_sigma})"
            )
        self.radius = int(radius)
        self.power, self.strength = float(power), float(strength)
        self.sensitivity, self.compare_sigma = float(sensitivity), float(compare_sigma)
        self.flow_preset = flow_preset
        self.flow = create_flow("dis", True, preset=flow_preset)

    def config(self) -> dict:
        return {"radius": self.radius, "power": self.power, "strength": self.strength, "sensitivity": self.sensitivity,
                "compare_sigma": self.compare_sigma, "flow": self.flow.config()}

    def process(self, window: Window) -> np.ndarray:
        frames = [f.rgb for f in window.frames]
        c = window.center
        x = frames[c]
        sharpness = [laplacian_variance(f, scale=0.5) for f in frames]
        if max(sharpness) <= sharpness[c]:
            return x
        prep_x = self.flow.prepare(x)
        low_x = low_luma(x, self.compare_sigma)
        size = x.shape[:2]
        acc = x.astype(np.float32).copy()
        wsum = np.ones(size, np.float32)
        seen = {window.index}  # near the ends the window repeats the first/last frame: use each once
        for j, f in enumerate(frames):
            if window.frames[j].index in seen or sharpness[j] <= sharpness[c]:
                continue
            seen.add(window.frames[j].index)
            prep_j = self.flow.prepare(f)
            f_ij, f_ji = self.flow.flow_pairs([(prep_x, prep_j), (prep_j, prep_x)], size)
            warped, valid = backward_warp(f, f_ij, interpolation=cv2.INTER_CUBIC)
            w = neighbour_weight(low_x, warped, sharpness[j] / max(sharpness[c], 1e-12), occlusion_mask(f_ij, f_ji) * valid,
                                 self.power, self.strength, self.sensitivity, self.compare_sigma)
            acc += w[..., None] * warped
            wsum += w
        return never_blurrier(x, np.clip(acc / wsum[..., None], 0.0, 1.0))


@register_stage("lucky")
def _lucky(radius: int = 3, power: float = 3.0, strength: float = 8.0, sensitivity: float = 0.01,
           compare_sigma: float = 1.5, flow_preset: str = "medium") -> LuckyFusion:
    return LuckyFusion(radius, power, strength, sensitivity, compare_sigma, flow_preset)
