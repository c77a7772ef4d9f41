"""Write a video from frames made in memory (synthetic clips, demos), with the same guarantees as restore."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import VidrestoreError
from .encode import EncodeSettings, SegmentEncoder, plan_output
from .mux import container_format, mux_output
from .paths import check_output
from .probe import ColourTags, VideoInfo


def _source_info(path: Path, width: int, height: int, fps: Fraction, depth: int) -> VideoInfo:
    """Describe in-memory RGB frames as if they were an input (sRGB, BT.709 primaries)."""
    return VideoInfo(
        path=str(path), kind="images", container="memory", stream_index=0, codec="rawvideo",
        width=width, height=height, pix_fmt="rgb24" if depth <= 8 else "rgb48le", bit_depth=depth,
        chroma="4:4:4", fps=fps, vfr=False, time_base=1 / fps, frame_count=0, frame_count_source="counted",
        duration=None, colour=ColourTags(range=2, primaries=1, trc=13, matrix=0), rotation=0,
    )


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: Fraction | float = 25,
    encode: EncodeSettings = EncodeSettings(),
    *,
    depth: int = 8,
    overwrite: bool = False,
) -> int:
    """Encode float32 RGB frames (H, W, 3) in [0, 1] to `path`; returns the number of frames.

    Frame i gets pts i in a time base of 1/fps. The file appears only when complete (written under
    a temporary name and renamed). `depth` is the bit depth of the source (8 or 16): with the
    default H.264 it selects 8- or 10-bit 4:2:0.
    """
    out = Path(path)
    container_format(out)
    if out.exists() and not overwrite:
        raise VidrestoreError("output already exists; pass overwrite=True to replace it", out)
    check_output(Path(os.devnull), out, overwrite)
    fps = Fraction(fps).limit_denominator(1001 * 1000)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise VidrestoreError("no frames to write", out)
    info = _source_info(out, first.shape[1], first.shape[0], fps, depth)
    plan = plan_output(info, encode)
    seg = out.with_name(f".{out.stem}.vidrestore-segment.mkv")
    enc = SegmentEncoder(seg, plan)
    n = 0
    try:
        enc.write(first, 0)
        n = 1
        for rgb in it:
            if rgb.shape != first.shape:
                raise VidrestoreError(f"frame {n} is {rgb.shape[1]}x{rgb.shape[0]}, the first was {first.shape[1]}x{first.shape[0]}", out)
            enc.write(rgb, n)
            n += 1
        packets = enc.close()
        mux_output([(seg, packets)], info, plan.time_base, plan.fps, out, [])
    except BaseException:
        enc.abort()
        raise
    finally:
        seg.unlink(missing_ok=True)
    return n
