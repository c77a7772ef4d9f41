"""A part of a video at a chosen scale: the sharp source of synthetic clips, or a trimmed real clip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io import VideoReader, probe
from ..io.paths import check_output, check_output_folder


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


@dataclass(frozen=True)
class SourceClip:
    """Frames start..start+count-1 of a video, resized by `scale` (sizes rounded to even numbers).

    Attributes:
        path: the video.
        start: first frame (display order, from 0).
        count: number of frames.
        scale: resize factor (INTER_AREA when shrinking).
        width, height: size after scaling.
        fps: the video's frame rate (25 when unknown).
    """

    path: Path
    start: int
    count: int
    scale: float
    width: int
    height: int
    fps: Fraction

    def frames(self) -> Iterator[np.ndarray]:
        """Float32 RGB frames (H, W, 3) in [0, 1], streamed."""
        for f in VideoReader(self.path).frames(self.start, self.start + self.count):
            rgb = f.rgb
            if rgb.shape[:2] != (self.height, self.width):
                interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_CUBIC
                rgb = np.clip(cv2.resize(rgb, (self.width, self.height), interpolation=interp), 0.0, 1.0)
            yield rgb


def source_clip(path: str | os.PathLike, start: int = 0, frames: int | None = None, scale: float = 1.0) -> SourceClip:
    """Describe the part of `path` to use; fails with a clear message when it does not exist."""
    p = Path(path)
    info = probe(p)
    if scale <= 0 or scale > 4:
        raise VidrestoreError(f"scale must be in (0, 4], not {scale}", p)
    if start < 0 or start >= info.frame_count:
        raise VidrestoreError(f"start frame {start} is outside the video's {info.frame_count} frames", p)
    count = info.frame_count - start if frames is None else min(frames, info.frame_count - start)
    if count < 1:
        raise VidrestoreError(f"frame count must be at least 1, not {frames}", p)
    width, height = (info.width, info.height) if scale == 1 else (_even(info.width * scale), _even(info.height * scale))
    return SourceClip(p, start, count, scale, width, height, info.fps or Fraction(25))


def output_files(clip: SourceClip, out_dir: str | os.PathLike, files: dict[str, str], overwrite: bool) -> dict[str, Path]:
    """Check and create a synth command's output folder; the paths of its `files` (key -> file name),
    each checked like any output (never the source; an existing one only with `overwrite`)."""
    out = Path(out_dir)
    check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in files.items()}
    for p in paths.values():
        check_output(clip.path, p, overwrite)
    return paths
