"""A deliberately flickery per-frame process, for measuring blind temporal consistency.

Each frame is processed on its own with random settings, as an image filter run frame by frame
would: a tone change (gamma, then contrast about mid-grey) and an unsharp mask of random
strength. A share of frames gets the nominal settings (gamma 1, contrast 1, the mean unsharp
amount), so they carry no flicker: the processed video there equals the flicker-free processed
video, frame for frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NOMINAL_AMOUNT = 0.75     # unsharp amount of nominal frames: the middle of the random range


@dataclass(frozen=True)
class FlickerParams:
    """Settings of one frame's process."""

    gamma: float = 1.0
    contrast: float = 1.0
    amount: float = NOMINAL_AMOUNT

    @property
    def nominal(self) -> bool:
        return self == FlickerParams()


def flicker_params(n: int, seed: int = 0, nominal_share: float = 0.25) -> list[FlickerParams]:
    """Per-frame settings: gamma e^U(-0.3, 0.3), contrast U(0.8, 1.2), unsharp amount U(0, 1.5); a share nominal."""
    rng = np.random.default_rng([seed, 0xF11C])
    out = []
    for _ in range(n):
        g, c, a, keep = np.exp(rng.uniform(-0.3, 0.3)), rng.uniform(0.8, 1.2), rng.uniform(0.0, 1.5), rng.random()
        out.append(FlickerParams() if keep < nominal_share else FlickerParams(float(g), float(c), float(a)))
    return out


def flickery_process(rgb: np.ndarray, p: FlickerParams) -> np.ndarray:
    """Tone change then unsharp mask (sigma 1.5 px) of a float RGB frame, clipped to [0, 1]."""
    x = (np.clip(rgb, 0.0, 1.0) ** p.gamma - 0.5) * p.contrast + 0.5
    blurred = cv2.GaussianBlur(x, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)
    return np.clip(x + p.amount * (x - blurred), 0.0, 1.0).astype(np.float32)
