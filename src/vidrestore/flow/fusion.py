"""Lucky-frame fusion's weight of a flow-aligned neighbour, shared by the fusion stage and SelfHVD.

`vidrestore.restoration.lucky` blends each frame with its sharper aligned neighbours by these
weights; `vidrestore.selfhvd.window` gives their logarithm to the window network as its prior.
The formula and why it is so: `vidrestore.restoration.lucky`. Every frame the fusion stage, fidelity
mode or the network would leave less sharp than it was is passed through (`never_blurrier`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..io.colour import luma
from ..metrics.blur import edge_variance


DEFAULTS = {"power": 3.0, "strength": 4.0, "sensitivity": 0.01, "compare_sigma": 1.5, "spread": 13, "spread_above": 0.06}


def low_luma(rgb: np.ndarray, sigma: float = DEFAULTS["compare_sigma"]) -> np.ndarray:
    """Gaussian-blurred BT.601 luma on PSNR-Y's scale (219/255 of RGB's): what the agreement test
    compares, so that blur itself is not disagreement."""
    return cv2.GaussianBlur(luma(rgb) * np.float32(219.0 / 255.0), (0, 0), sigma)


def frame_weight(ratio: float, power: float = DEFAULTS["power"], strength: float = DEFAULTS["strength"]) -> float:
    """A neighbour's weight for the whole frame, strength * (ratio - 1) ** power (0 unless it is sharper: ratio > 1)."""
    return strength * (ratio - 1.0) ** power if ratio > 1 else 0.0


def disagreement(centre_low: np.ndarray, warped: np.ndarray, compare_sigma: float = DEFAULTS["compare_sigma"],
                 spread: int = DEFAULTS["spread"], spread_above: float = DEFAULTS["spread_above"]) -> np.ndarray:
    """d = |G(Y_warped) - G(Y_centre)| per pixel, with a strong disagreement (d above `spread_above`)
    spread over its `spread` x `spread` neighbourhood (a grey dilation of d where it exceeds the
    threshold): an object that moved between the frames disagrees at its edges and texture, while
    pixels in between can agree by chance, and pasting those would carry the object's other
    position into the frame."""
    d = np.abs(low_luma(warped, compare_sigma) - centre_low)
    if spread > 1:
        grown = cv2.dilate(d, np.ones((spread, spread), np.uint8))
        d = np.where(grown > spread_above, grown, d)
    return d


def trust(centre_low: np.ndarray, warped: np.ndarray, visible: np.ndarray, sensitivity: float = DEFAULTS["sensitivity"],
          compare_sigma: float = DEFAULTS["compare_sigma"], spread: int = DEFAULTS["spread"],
          spread_above: float = DEFAULTS["spread_above"]) -> np.ndarray:
    """Per-pixel trust in [0, 1] of a neighbour warped onto the centre frame: `visible` times the photometric
    agreement sens / (sens + d), d the `disagreement`."""
    d = disagreement(centre_low, warped, compare_sigma, spread, spread_above)
    return (visible * (sensitivity / (sensitivity + d))).astype(np.float32)


def neighbour_weight(centre_low: np.ndarray, warped: np.ndarray, ratio: float, visible: np.ndarray,
                     power: float = DEFAULTS["power"], strength: float = DEFAULTS["strength"],
                     sensitivity: float = DEFAULTS["sensitivity"], compare_sigma: float = DEFAULTS["compare_sigma"]) -> np.ndarray:
    """Per-pixel weight of a neighbour warped onto the centre frame: `frame_weight` x `trust`
    (the formula in `vidrestore.restoration.lucky`).

    Args:
        centre_low: `low_luma` of the centre frame.
        warped: the neighbour warped onto the centre frame.
        ratio: the neighbour's sharpness over the centre's (no weight unless > 1).
        visible: occlusion mask x validity of the warp.
    """
    w = frame_weight(ratio, power, strength)
    if w == 0:
        return np.zeros(centre_low.shape, np.float32)
    return (w * trust(centre_low, warped, visible, sensitivity, compare_sigma)).astype(np.float32)


def blurrier(frame: np.ndarray, restored: np.ndarray) -> bool:
    """Whether `restored` is less sharp than `frame` by the measure the sharp frames are selected by
    (Laplacian variance of the luma at half size), less what noise puts there (`edge_variance`: a
    blend that averages sensor noise away is not blurrier for that). Where the frames move by tens of
    pixels (handheld phone footage at 15 fps), the flows misalign the sharper neighbours by a pixel or
    more, and their blend with the frame is blurrier than any of them; a network trained on labels
    aligned the same way inherits that blur."""
    return edge_variance(restored) < edge_variance(frame)


def never_blurrier(frame: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """`restored`, unless it is `blurrier` than `frame`: then `frame` itself (issue 17: never worse than the input)."""
    return frame if blurrier(frame, restored) else restored
