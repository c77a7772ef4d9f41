"""Paired benchmark clips: ground truth and a degraded copy of a sharp video, with their settings.

`write_paired` is what `synth noise` and `synth compress` share: it writes ``gt.mkv`` (the
source part at the chosen scale, lossless FFV1), the degraded clip (frames from a degradation
function, in the given encoding) and ``settings.json`` (version 1)::

    {"version": 1, "kind": "noise" | "compress", "source": "/path/sharp.mp4", "start": 0,
     "frame_count": 60, "scale": 0.5, "width": 640, "height": 360, "fps": 30.0,
     "files": {"gt": "gt.mkv", "degraded": "noisy.mkv"}, ...the degradation's own settings}
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import EncodeSettings, write_video
from ..io.paths import atomic_write_text, read_versioned_json
from ..util.progress import progress_bar
from .source import SourceClip, output_files

SETTINGS_VERSION = 1
SETTINGS_FILE = "settings.json"


@dataclass
class PairedResult:
    """Where a paired clip went."""

    dir: Path
    gt: Path
    degraded: Path
    settings: Path
    frames: int
    seconds: float


def write_paired(clip: SourceClip, out_dir: str | os.PathLike, kind: str, degraded_name: str,
                 degrade: Callable[[int, np.ndarray], np.ndarray], encode: EncodeSettings, settings: dict,
                 overwrite: bool, progress: bool) -> PairedResult:
    """Write gt.mkv, the degraded clip (`degrade(index, rgb)` per frame, encoded by `encode`) and settings.json."""
    t0 = time.perf_counter()
    encode.spec()
    paths = output_files(clip, out_dir, {"gt": "gt.mkv", "degraded": degraded_name, "settings": SETTINGS_FILE}, overwrite)

    def frames(what: str) -> Iterator[np.ndarray]:
        bar = progress_bar(clip.count, f"synth {what}", progress)
        try:
            for i, rgb in enumerate(clip.frames()):
                yield rgb if what == "gt" else degrade(i, rgb)
                bar.update(1)
        finally:
            bar.close()

    write_video(paths["gt"], frames("gt"), clip.fps, EncodeSettings("ffv1"), overwrite=overwrite)
    write_video(paths["degraded"], frames(kind), clip.fps, encode, overwrite=overwrite)
    data = {"version": SETTINGS_VERSION, "kind": kind, "source": str(clip.path.absolute()), "start": clip.start,
            "frame_count": clip.count, "scale": clip.scale, "width": clip.width, "height": clip.height,
            "fps": float(clip.fps), "files": {"gt": "gt.mkv", "degraded": degraded_name}, **settings}
    atomic_write_text(paths["settings"], json.dumps(data, indent=1))
    return PairedResult(Path(out_dir), paths["gt"], paths["degraded"], paths["settings"], clip.count, time.perf_counter() - t0)


def load_settings(path: str | os.PathLike) -> dict:
    """Read settings.json (or the settings.json inside a `synth noise`/`synth compress` folder)."""
    return read_versioned_json(path, SETTINGS_FILE, SETTINGS_VERSION, "`vidrestore synth noise` or `synth compress`")
