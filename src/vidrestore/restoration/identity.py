"""The identity stage: every frame unchanged (the "input" row of a benchmark)."""

from __future__ import annotations

import numpy as np

from ..pipeline import Stage, Window, register_stage


class Identity(Stage):
    """Returns each frame as it is; with lossless output, the input itself."""

    name = "identity"

    def process(self, window: Window) -> np.ndarray:
        return window.frame.rgb


@register_stage("identity")
def _identity() -> Identity:
    return Identity()
