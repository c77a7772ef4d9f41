"""Encoding float32 RGB frames: codec presets, pixel-format choice, colour tags, segment files.

Pixel format: the output keeps the input's bit depth and chroma subsampling when the codec can
(10-bit in, 10-bit out). H.264 and HEVC cannot code an odd width or height in 4:2:0 / 4:2:2, so
for odd sizes they switch to 4:4:4 of the same depth: the output has exactly the input's size,
at the cost of needing a decoder with 4:4:4 support (every software player has one; some hardware
decoders do not). AV1 and FFV1 code odd sizes in 4:2:0 directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import VidrestoreError
from .colour import AVCOL_BY_MATRIX, Colour, PixelLayout, layout_of, rgb_to_planes, write_planes
from .probe import ColourTags, VideoInfo
from .reader import stream_colour


@dataclass(frozen=True)
class CodecSpec:
    """An output codec: FFmpeg encoder, default quality and speed, fixed options."""

    encoder: str
    crf: int | None
    preset: str | None
    options: dict = field(default_factory=dict)
    lossless: bool = False
    max_crf: int | None = None


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec("libx264", 18, "medium", max_crf=51),
    "hevc": CodecSpec("libx265", 20, "medium", {"x265-params": "log-level=error"}, max_crf=51),
    "av1": CodecSpec("libsvtav1", 30, "8", max_crf=63),
    "ffv1": CodecSpec("ffv1", None, None, {"level": "3", "g": "1", "slicecrc": "1"}, lossless=True),
    "png": CodecSpec("png", None, None, lossless=True),
}
# SVT-AV1 prints its banner to stderr unless told otherwise (1 = errors only).
os.environ.setdefault("SVT_LOG", "1")
# Encoders that cannot code odd dimensions in subsampled chroma.
_EVEN_ONLY = {"libx264", "libx265"}


DEFAULT_CODEC = "h264"


@dataclass(frozen=True)
class EncodeSettings:
    """What the user asked for: codec name (see CODECS; None: h264, or what the container holds), quality (CRF), preset."""

    codec: str | None = None
    crf: int | None = None
    preset: str | None = None

    @property
    def name(self) -> str:
        """The codec's name, the default one when none was asked for."""
        return self.codec or DEFAULT_CODEC

    def spec(self) -> CodecSpec:
        """The codec's spec; raises VidrestoreError for an unknown codec or a CRF it does not take."""
        if self.name not in CODECS:
            raise VidrestoreError(f"unknown codec {self.name!r}; choose one of {', '.join(CODECS)}")
        spec = CODECS[self.name]
        if self.crf is not None:
            if spec.max_crf is None:
                raise VidrestoreError(f"codec {self.name} is lossless and takes no --crf")
            if not 0 <= self.crf <= spec.max_crf:
                raise VidrestoreError(f"--crf {self.crf} is out of range for {self.name}: use 0 to {spec.max_crf}")
        return spec


@dataclass(frozen=True)
class OutputPlan:
    """How frames are encoded: resolved settings every segment of a job shares."""

    codec: str
    encoder: str
    layout: PixelLayout
    colour: Colour
    tags: ColourTags
    width: int
    height: int
    time_base: Fraction
    fps: Fraction
    options: dict

    def describe(self) -> str:
        return f"{self.codec} ({self.encoder}) {self.layout.name}, {self.width}x{self.height}"


def _candidates(encoder: str) -> list[PixelLayout]:
    if encoder == "png":
        names = ["rgb24", "rgb48le"]
    else:
        names = [f.name for f in (av.Codec(encoder, "w").video_formats or [])]
    return [lay for lay in (layout_of(n) for n in names) if lay is not None]


def choose_layout(encoder: str, src: PixelLayout, width: int, height: int, lossless: bool) -> PixelLayout:
    """The encoder's pixel format closest to the source's (depth, then chroma, then kind)."""
    odd = (width % 2, height % 2)
    cands = [
        c
        for c in _candidates(encoder)
        if not (encoder in _EVEN_ONLY and ((odd[0] and c.sub_w) or (odd[1] and c.sub_h)))
    ]
    if not cands:
        raise VidrestoreError(f"encoder {encoder} offers no usable pixel format")
    want_kind = src.kind
    want_sub = (src.sub_w, src.sub_h)
    want_depth = src.depth
    if src.kind != "yuv" and not lossless:
        # RGB / grey sources into a lossy video codec: 4:2:0 YUV is what players expect.
        want_kind, want_sub, want_depth = "yuv", (1, 1), 8 if src.depth <= 8 else 10

    def score(c: PixelLayout) -> tuple:
        kind = 0 if c.kind == want_kind else (1 if c.kind == "yuv" else 2)
        depth = (0, c.depth - want_depth) if c.depth >= want_depth else (1, want_depth - c.depth)
        sub = 0 if (c.sub_w, c.sub_h) == want_sub else (1 if c.sub_w + c.sub_h < sum(want_sub) else 2)
        if c.kind != "yuv":
            sub = 0 if want_kind != "yuv" else 1
        return (kind, depth, sub, c.sub_w + c.sub_h, c.name)

    return min(cands, key=score)


def plan_output(info: VideoInfo, settings: EncodeSettings) -> OutputPlan:
    """Resolve encoder, pixel format and colour tags for re-encoding `info`'s video faithfully."""
    spec = settings.spec()
    src = info.layout
    layout = choose_layout(spec.encoder, src, info.width, info.height, spec.lossless)
    src_colour = stream_colour(info)
    tags = ColourTags(info.colour.range, info.colour.primaries, info.colour.trc, info.colour.matrix)
    if layout.kind == "yuv" and src.kind == "yuv":
        colour = src_colour
    elif layout.kind == "yuv":
        colour = Colour("bt709", False)
        tags = ColourTags(range=1, primaries=info.colour.primaries, trc=info.colour.trc, matrix=AVCOL_BY_MATRIX["bt709"])
    elif layout.kind == "rgb":
        colour = Colour("rgb", True)
        if src.kind != "rgb":
            tags = ColourTags(range=2, primaries=info.colour.primaries, trc=info.colour.trc, matrix=0)
    else:
        colour = Colour(src_colour.matrix if src_colour.matrix != "rgb" else "bt709", src_colour.full_range if src.kind != "rgb" else True)
    options = dict(spec.options)
    crf = settings.crf if settings.crf is not None else spec.crf
    if crf is not None:
        options["crf"] = str(crf)
    preset = settings.preset or spec.preset
    if preset is not None:
        if spec.preset is None:
            raise VidrestoreError(f"codec {settings.name} takes no --preset")
        options["preset"] = str(preset)
    return OutputPlan(
        codec=settings.name,
        encoder=spec.encoder,
        layout=layout,
        colour=colour,
        tags=tags,
        width=info.width,
        height=info.height,
        time_base=info.time_base,
        fps=info.fps or Fraction(25),
        options=options,
    )


def make_frame(rgb: np.ndarray, plan: OutputPlan) -> av.VideoFrame:
    """Convert float32 RGB to a VideoFrame in the plan's pixel format, with its colour tags."""
    return _tagged(write_planes(rgb_to_planes(rgb, plan.layout, plan.colour), plan.layout, plan.width, plan.height), plan)


def _tagged(frame: av.VideoFrame, plan: OutputPlan) -> av.VideoFrame:
    frame.color_range = plan.tags.range
    frame.colorspace = plan.tags.matrix
    frame.color_primaries = plan.tags.primaries
    frame.color_trc = plan.tags.trc
    return frame


class SegmentEncoder:
    """Encode frames into one video-only Matroska segment file.

    Each segment is an independent closed stream (it starts with a key frame), so a killed job
    loses at most the segment being written. `close()` returns the pts of the packets in decode
    order: the final mux restores exact timestamps from them, whatever the segment container
    rounded.
    """

    def __init__(self, path: Path, plan: OutputPlan):
        self.plan = plan
        self.container = av.open(str(path), "w", format="matroska")
        try:
            s = self.container.add_stream(plan.encoder, rate=plan.fps, options=dict(plan.options))
        except (ValueError, av.FFmpegError) as err:
            self.container.close()
            raise VidrestoreError(f"cannot create a {plan.encoder} encoder ({err})") from None
        s.width, s.height, s.pix_fmt = plan.width, plan.height, plan.layout.name
        cc = s.codec_context
        cc.time_base = plan.time_base
        cc.color_range = plan.tags.range
        cc.colorspace = plan.tags.matrix
        cc.color_primaries = plan.tags.primaries
        cc.color_trc = plan.tags.trc
        self.stream = s
        self.packet_pts: list[int] = []

    def _mux(self, packets) -> None:
        for pk in packets:
            self.packet_pts.append(int(pk.pts))
            self.container.mux(pk)

    def write(self, rgb: np.ndarray, pts: int) -> None:
        self.write_native(make_frame(rgb, self.plan), pts)

    def write_native(self, frame: av.VideoFrame, pts: int) -> None:
        """Encode a frame already in the plan's pixel format (a decoded one, passed through)."""
        frame = _tagged(frame, self.plan)
        frame.pict_type = av.video.frame.PictureType.NONE  # the decoder's key frames are not ours
        frame.pts = pts
        frame.time_base = self.plan.time_base
        self._mux(self.stream.encode(frame))

    def close(self) -> list[int]:
        self._mux(self.stream.encode(None))
        self.container.close()
        return self.packet_pts

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the segment is discarded anyway
            pass
