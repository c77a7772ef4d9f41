"""Compressed benchmark clips: `vidrestore synth compress` (gt.mkv, compressed.mkv, settings.json).

The sharp source (its part, at its scale) is encoded with H.264 (libx264) or HEVC (libx265) at
a CRF in 4:2:0, the way phones and streaming deliver video: blocking, ringing and mosquito noise
at high CRF (35-40), chroma subsampling always. gt.mkv holds the frames the encoder was given.
"""

from __future__ import annotations

import os

from ..errors import VidrestoreError
from ..io import EncodeSettings
from .paired import PairedResult, write_paired
from .source import source_clip

CODECS = ("h264", "hevc")


def synth_compress(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    codec: str = "h264",
    crf: int = 35,
    preset: str | None = None,
    start: int = 0,
    frames: int | None = None,
    scale: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
) -> PairedResult:
    """Make a compressed clip with its ground truth from a sharp video.

    Args:
        source: a clean video (or image folder).
        out_dir: output folder (created; its files are replaced only with `overwrite`).
        codec: "h264" or "hevc".
        crf: the encoder's constant rate factor (0-51; higher is worse).
        preset: encoder preset (default: the codec's, "medium").
        start, frames, scale: the part of the source to use and its size (see `source_clip`).
        overwrite: replace existing output files.
        progress: show progress bars.
    """
    if codec not in CODECS:
        raise VidrestoreError(f"synth compress codes with {' or '.join(CODECS)}, not {codec!r}")
    encode = EncodeSettings(codec, crf, preset)
    clip = source_clip(source, start, frames, scale)
    return write_paired(clip, out_dir, "compress", "compressed.mkv", lambda i, rgb: rgb, encode,
                        {"codec": codec, "crf": crf, "preset": encode.spec().preset if preset is None else preset},
                        overwrite, progress)
