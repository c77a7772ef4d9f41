"""The learned path of `denoise`: Noise2Noise across aligned frames, started from the classical result.

Two frames of a video, aligned by the flow, are independent noisy observations of the same scene.
A network trained to map an input that does not contain frame d's noise onto frame d warped onto
frame t learns, in expectation, frame t's clean content (Noise2Noise: Lehtinen et al., ICML 2018;
across aligned video frames: Multi-Frame-to-Frame, Dewil et al., WACV 2021; Sheth et al., ICCV
2021). Here the input is the classical path's estimate of frame t made *without* frame d (and
frame t itself), and the network corrects that estimate (`residual_cnn`): where the classical steps
smoothed texture or left noise, the neighbour's evidence says how. The loss is weighed by where
the target can be trusted: inside the picture, visible both ways (forward-backward consistency)
and photometrically close to the estimate for the noise expected there (a flow that is
consistent but wrong, or an object that changed). At rendering the estimate is made from every
neighbour, as the classical path makes it.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..flow import backward_warp, occlusion_mask

TRAIN_SEGMENTS = 2    # runs of consecutive frames, spread over the video, the network is trained on
SEGMENT_FRAMES = 8    # frames of each run
TRAIN_SIDE = 512      # training frames are centre crops of at most this side (time and memory of the pairs)
PATCH_DISTANCE = 5    # side of the patch of the photometric test


def stack(estimate: np.ndarray, spatial: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """The network's input (9, H, W): the estimate's RGB planes (what it corrects), the frame's estimate
    from itself alone (no neighbour, so no misalignment) and the noisy frame."""
    return np.concatenate([estimate, spatial, noisy], axis=2).transpose(2, 0, 1).astype(np.float32)


def centre_crop(rgb: np.ndarray, side: int = TRAIN_SIDE) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return rgb[top:top + side, left:left + side]


def target_and_mask(noisy: np.ndarray, other: np.ndarray, flow_to: np.ndarray, flow_back: np.ndarray,
                    variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame d (`other`) warped onto frame t (3, H, W) and where to trust it (H, W).

    flow_to is t -> d, flow_back d -> t; variance is frame t's per-pixel noise variance (mean over the
    channels). The photometric test is the classical path's (temporal NLM against the noise expected):
    two noisy frames differ by about two noise variances per channel where they agree; the weight
    falls as the patch distance passes 2. It compares with frame t itself rather than an estimate, so
    that it does not favour the estimate's own errors.
    """
    warped, valid = backward_warp(other, flow_to)
    diff = cv2.subtract(warped, noisy)
    sq = cv2.transform(cv2.multiply(diff, diff), np.ones((1, 3), np.float32)) / (3.0 * variance)
    agree = np.exp(-np.maximum(cv2.blur(sq, (PATCH_DISTANCE, PATCH_DISTANCE)) - 2.0, 0.0) / 2.0)
    mask = valid * occlusion_mask(flow_to, flow_back) * agree
    return warped.transpose(2, 0, 1).astype(np.float32), mask.astype(np.float32)
