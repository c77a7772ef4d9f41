"""Unsharp mask: the classical sharpening baseline, x + amount * (x - Gaussian_sigma(x))."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..pipeline import Stage, Window, register_stage


def unsharp_mask(rgb: np.ndarray, sigma: float = 1.5, amount: float = 0.8) -> np.ndarray:
    """Sharpen float RGB in [0, 1] by adding back `amount` times its high-pass (clipped to [0, 1])."""
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return np.clip(rgb + amount * (rgb - blurred), 0.0, 1.0).astype(np.float32)


class UnsharpMask(Stage):
    """Per-frame unsharp mask (`vidrestore restore -s unsharp:sigma=1.5,amount=0.8`)."""

    name = "unsharp"

    def __init__(self, sigma: float = 1.5, amount: float = 0.8):
        if sigma <= 0 or amount < 0:
            raise VidrestoreError(f"unsharp needs sigma > 0 and amount >= 0 (got sigma={sigma}, amount={amount})")
        self.sigma, self.amount = float(sigma), float(amount)

    def config(self) -> dict:
        return {"sigma": self.sigma, "amount": self.amount}

    def process(self, window: Window) -> np.ndarray:
        return unsharp_mask(window.frame.rgb, self.sigma, self.amount)


@register_stage("unsharp")
def _unsharp(sigma: float = 1.5, amount: float = 0.8) -> UnsharpMask:
    return UnsharpMask(sigma, amount)
