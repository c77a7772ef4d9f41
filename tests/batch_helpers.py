"""A stage that holds one frame until the test lets it go, importable by Ray's worker processes
(tests/ is put on their PYTHONPATH): the test kills the worker that holds it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from vidrestore.pipeline import Stage, Window

WAIT_LIMIT_S = 120.0  # a guard against a hung test, not a measurement


class Hold(Stage):
    """Identity; on frame `frame`, until `folder`/go exists, writes its process id to `folder`/pid and waits."""

    name = "hold"

    def __init__(self, folder: str, frame: int):
        self.folder, self.frame = folder, frame

    def config(self) -> dict:
        return {"frame": self.frame}

    def process(self, window: Window) -> np.ndarray:
        go = Path(self.folder) / "go"
        if window.index == self.frame and not go.exists():
            (Path(self.folder) / "pid").write_text(str(os.getpid()))
            deadline = time.monotonic() + WAIT_LIMIT_S
            while not go.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the test never let the held frame go")
                time.sleep(0.05)
        return window.frame.rgb
