"""Streaming frame reader: lazily decoded float32 RGB frames, each with its index and pts."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import VidrestoreError
from .colour import Colour, guess_matrix, native_format, planes_to_rgb, read_planes
from .images import image_to_rgb, list_images, read_image_raw
from .probe import VideoInfo, _av_message, open_container, probe, video_stream

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # files already warned about, so a warning is printed once per run


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: position in decode-output (display) order, from 0.
        pts: presentation timestamp in units of `time_base`.
        time_base: the stream's time base.
        rgb: float32 (H, W, 3) gamma-encoded RGB in [0, 1].
    """

    index: int
    pts: int
    time_base: Fraction
    rgb: np.ndarray

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    def with_rgb(self, rgb: np.ndarray) -> Frame:
        return replace(self, rgb=rgb)


@dataclass(frozen=True)
class NativeFrame:
    """A decoded frame as the decoder gave it (in the stream's native pixel format)."""

    index: int
    pts: int
    frame: av.VideoFrame


def stream_colour(info: VideoInfo) -> Colour:
    """The matrix and range used to convert this video's frames (guessing untagged ones as players do)."""
    fmt = native_format(info.pix_fmt)
    if info.kind == "images":
        return Colour("rgb", True)
    full = info.colour.range == 2 or info.pix_fmt.startswith("yuvj") or (info.colour.range == 0 and fmt.startswith("gray"))
    matrix = guess_matrix(info.colour.matrix, info.width, info.height)
    return Colour(matrix, full)


class VideoReader:
    """Decode a video file or image folder frame by frame, in bounded memory.

    Example:
        >>> reader = VideoReader("clip.mp4")                 # doctest: +SKIP
        >>> for frame in reader.frames():                    # doctest: +SKIP
        ...     print(frame.index, frame.time, frame.rgb.shape)
    """

    def __init__(self, path: str | os.PathLike, info: VideoInfo | None = None):
        self.path = Path(path)
        self.info = info if info is not None else probe(self.path)
        self.colour = stream_colour(self.info)
        if (self.info.kind == "video" and self.info.colour.matrix in (0, 2) and self.info.layout.kind == "yuv"
                and str(self.path) not in _WARNED):
            _WARNED.add(str(self.path))
            log.warning(
                "%s: colour matrix is not tagged; assuming %s (as players do for %dx%d)",
                self.path, self.colour.matrix.upper(), self.info.width, self.info.height,
            )

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """Yield frames `start`..`stop`-1 (display order); those before `start` are decoded, not converted."""
        if self.info.kind == "images":
            yield from self._image_frames(start, stop)
            return
        yield from self._video_frames(start, stop)

    def native_frames(self, start: int = 0, stop: int | None = None) -> Iterator[NativeFrame]:
        """Yield the decoded frames `start`..`stop`-1 as they are, in the stream's own pixel format.

        What a stage-less re-encode hands to the encoder: no float RGB round trip, so it is
        bit-exact and costs no conversion. Video files only.
        """
        info = self.info
        c = open_container(self.path)
        try:
            vs = video_stream(c, self.path)
            vs.thread_type = "AUTO"
            tb = info.time_base
            fps = info.fps or Fraction(25)
            step = max(1, round(1 / (fps * tb)))
            index, last_pts = 0, None
            native = native_format(info.pix_fmt)
            packets = c.demux(vs)
            while True:
                try:
                    packet = next(packets)
                    decoded = packet.decode()
                except StopIteration:
                    break
                except av.FFmpegError as err:
                    raise VidrestoreError(f"decoding failed at frame {index} ({_av_message(err)})", self.path) from None
                for f in decoded:
                    if stop is not None and index >= stop:
                        return
                    pts = f.pts
                    if pts is None:
                        pts = 0 if last_pts is None else last_pts + step
                    elif last_pts is not None and pts <= last_pts:
                        log.warning("%s: frame %d has pts %d not after %d; using %d", self.path, index, pts, last_pts, last_pts + 1)
                        pts = last_pts + 1
                    last_pts = pts
                    if index >= start:
                        if (f.width, f.height) != (info.width, info.height):
                            raise VidrestoreError(
                                f"frame {index} is {f.width}x{f.height} but the video starts at {info.width}x{info.height}; "
                                "size changes mid-stream are not supported",
                                self.path,
                            )
                        if f.format.name != native:
                            f = f.reformat(format=native)
                        yield NativeFrame(index, int(pts), f)
                    index += 1
            if index == 0:
                raise VidrestoreError("no video frame could be decoded (truncated or corrupt)", self.path)
            if info.frame_count_source == "container" and index < info.frame_count:
                raise VidrestoreError(
                    f"decoding failed at frame {index}: the container declares {info.frame_count} frames "
                    "(the file is truncated or corrupt)",
                    self.path,
                )
        finally:
            c.close()

    def _video_frames(self, start: int, stop: int | None) -> Iterator[Frame]:
        tb, layout = self.info.time_base, self.info.layout
        for f in self.native_frames(start, stop):
            yield Frame(f.index, f.pts, tb, planes_to_rgb(read_planes(f.frame), layout, self.colour))

    def _image_frames(self, start: int, stop: int | None) -> Iterator[Frame]:
        files = list_images(self.path)
        tb = self.info.time_base
        for index, f in enumerate(files[start:stop], start):
            img = read_image_raw(f)
            if img.shape[:2] != (self.info.height, self.info.width):
                raise VidrestoreError(
                    f"image is {img.shape[1]}x{img.shape[0]} but the sequence starts at {self.info.width}x{self.info.height}", f
                )
            yield Frame(index, index, tb, image_to_rgb(img))


def read_frames(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Shorthand: iterate over the frames of `path`."""
    return VideoReader(path).frames(start, stop)
