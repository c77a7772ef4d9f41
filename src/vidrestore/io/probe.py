"""What a video file or image folder holds: streams, size, timing, colour, rotation.

`probe` reads the container header, decodes the first frame (rotation, pixel format, a sanity
check) and demuxes the video packets without decoding them to count frames and to tell constant
from variable frame rate. It never trusts the container's frame count blindly for timing: every
frame later carries its own pts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import VidrestoreError
from .colour import PixelLayout, layout_of, native_format
from .images import image_size, list_images, read_image_raw

# Names for the integer colour tags (libavutil/pixfmt.h), as ffprobe prints them.
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {
    1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRC_NAMES = {
    1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10",
    15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}
MATRIX_NAMES = {
    0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
    13: "chroma-derived-c", 14: "ictcp",
}

DEFAULT_IMAGE_FPS = Fraction(25)


@dataclass
class ColourTags:
    """The four colour tags of a video stream, as AVColor* integers (2 / 0 = unspecified)."""

    range: int = 0
    primaries: int = 2
    trc: int = 2
    matrix: int = 2

    def names(self) -> dict[str, str]:
        return {
            "range": RANGE_NAMES.get(self.range, str(self.range)),
            "primaries": PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
            "transfer": TRC_NAMES.get(self.trc, str(self.trc)),
            "matrix": MATRIX_NAMES.get(self.matrix, str(self.matrix)),
        }


@dataclass
class TrackInfo:
    """A non-video stream (audio, subtitle, data, attachment)."""

    index: int
    type: str
    codec: str
    language: str | None = None
    title: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    layout: str | None = None


@dataclass
class VideoInfo:
    """Everything vidrestore needs to know about an input before touching a frame.

    Attributes:
        path: the file or folder.
        kind: "video" for a container file, "images" for an image-sequence folder.
        container: FFmpeg's format name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "image2").
        stream_index: index of the video stream that is read (the first one).
        codec: video codec name.
        width, height: coded size in pixels (before any display rotation).
        pix_fmt: the decoder's pixel format; `layout` describes how it is converted.
        bit_depth: bits per sample.
        chroma: chroma subsampling ("4:2:0", "4:4:4", ...).
        fps: average frame rate (None when unknown).
        vfr: True when frame durations vary (more than one tick or 0.5 %).
        time_base: unit of the pts of every frame.
        frame_count: number of frames; frame_count_source says whether the container stated it
            ("container"), packets were counted ("counted") or files were ("files").
        duration: seconds from the first frame's pts to the end of the last frame.
        colour: colour tags as stored (unspecified stays unspecified).
        rotation: display rotation in degrees counter-clockwise (0, 90, 180, -90).
        tracks: audio, subtitle and other streams.
        size_bytes: file size (sum of the files for a folder).
    """

    path: str
    kind: str
    container: str
    stream_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    chroma: str
    fps: Fraction | None
    vfr: bool
    time_base: Fraction
    frame_count: int
    frame_count_source: str
    duration: float | None
    colour: ColourTags
    rotation: int
    tracks: list[TrackInfo] = field(default_factory=list)
    size_bytes: int = 0
    profile: str | None = None
    first_pts: int | None = None

    @property
    def layout(self) -> PixelLayout:
        layout = layout_of(native_format(self.pix_fmt))
        assert layout is not None
        return layout

    @property
    def audio(self) -> list[TrackInfo]:
        return [t for t in self.tracks if t.type == "audio"]

    @property
    def subtitles(self) -> list[TrackInfo]:
        return [t for t in self.tracks if t.type == "subtitle"]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = float(self.fps) if self.fps else None
        d["fps_exact"] = f"{self.fps.numerator}/{self.fps.denominator}" if self.fps else None
        d["time_base"] = f"{self.time_base.numerator}/{self.time_base.denominator}"
        d["colour"] = {**asdict(self.colour), **{k + "_name": v for k, v in self.colour.names().items()}}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def check_input_path(path: str | os.PathLike) -> Path:
    """Fail with one clear line when the input does not exist or is an empty file."""
    p = Path(path)
    if not p.exists():
        raise VidrestoreError("no such file or folder", p)
    if p.is_file() and p.stat().st_size == 0:
        raise VidrestoreError("file is empty (0 bytes)", p)
    return p


def _av_message(err: Exception) -> str:
    msg = getattr(err, "strerror", None) or str(err)
    log = getattr(err, "log", None)
    if log and len(log) >= 3 and log[2]:
        msg = f"{msg}: {str(log[2]).strip()}"
    return msg


def open_container(path: Path) -> av.container.InputContainer:
    """av.open with FFmpeg's errors turned into one clear line."""
    try:
        return av.open(str(path), metadata_errors="replace")
    except av.error.InvalidDataError as err:
        raise VidrestoreError(f"not a video FFmpeg can read, or truncated/corrupt ({_av_message(err)})", path) from None
    except av.FFmpegError as err:
        raise VidrestoreError(f"cannot open ({_av_message(err)})", path) from None


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first real video stream (cover-art pictures do not count)."""
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    kinds = ", ".join(f"{s.type} {s.codec_context.name if s.codec_context else '?'}" for s in container.streams) or "none"
    raise VidrestoreError(f"has no video stream (streams: {kinds})", path)


def _track(s: av.stream.Stream) -> TrackInfo:
    md = s.metadata or {}
    info = TrackInfo(
        index=s.index,
        type=s.type,
        codec=s.codec_context.codec.canonical_name if s.codec_context else "unknown",
        language=md.get("language"),
        title=md.get("title") or md.get("filename"),
    )
    if s.type == "audio":
        cc = s.codec_context
        info.sample_rate = cc.sample_rate
        info.channels = cc.channels
        info.layout = cc.layout.name if cc.layout else None
    return info


def _is_vfr(pts: np.ndarray) -> bool:
    if pts.size < 3:
        return False
    d = np.diff(np.sort(pts))
    med = float(np.median(d))
    return bool(np.any(np.abs(d - med) > max(1.0, 0.005 * med)))


def _declared_duration(c: av.container.InputContainer, vs: av.video.stream.VideoStream) -> float | None:
    """How long the container says the video stream lasts (seconds), if it says."""
    if vs.duration:
        return float(vs.duration * vs.time_base)
    tag = (vs.metadata or {}).get("DURATION")
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            return None
    if len(c.streams) == 1 and c.duration:
        return c.duration / 1e6
    return None


def probe(path: str | os.PathLike, image_fps: Fraction | None = None) -> VideoInfo:
    """Describe a video file or an image-sequence folder.

    Args:
        path: a file FFmpeg reads, or a folder of PNG/JPEG/TIFF images.
        image_fps: frame rate to assume for an image folder (default 25).

    Raises:
        VidrestoreError: missing, empty, unreadable, no video stream, nothing decodable.
    """
    p = check_input_path(path)
    if p.is_dir():
        return _probe_images(p, image_fps or DEFAULT_IMAGE_FPS)
    with open_container(p) as c:
        vs = video_stream(c, p)
        cc = vs.codec_context
        tb = vs.time_base or Fraction(1, 90000)
        pts, frames_stated = [], vs.frames
        first = None
        try:
            for packet in c.demux(vs):
                if packet.size == 0:
                    continue
                if first is None:
                    for f in packet.decode():
                        first = f
                        break
                t = packet.pts if packet.pts is not None else packet.dts
                if t is not None:
                    pts.append(t)
                elif pts:
                    pts.append(pts[-1] + 1)
                else:
                    pts.append(0)
            if first is None:
                for f in vs.decode(None):
                    first = f
                    break
        except av.FFmpegError as err:
            if first is None:
                raise VidrestoreError(f"decoding failed at frame 0 ({_av_message(err)})", p) from None
        if first is None or not pts:
            raise VidrestoreError("no video frame could be decoded (truncated or corrupt)", p)
        arr = np.asarray(pts, dtype=np.int64)
        count, source = (frames_stated, "container") if frames_stated and frames_stated > 0 else (len(pts), "counted")
        fps = vs.average_rate or vs.guessed_rate
        duration = None
        if arr.size:
            d = np.diff(np.sort(arr))
            last_dur = int(np.median(d)) if d.size else (int(round(1 / (fps * tb))) if fps else 0)
            duration = float((arr.max() - arr.min() + last_dur) * tb)
        declared = _declared_duration(c, vs)
        if declared is not None and duration is not None:
            frame_dur = float(1 / fps) if fps else duration / max(1, len(pts))
            if duration < declared - max(3 * frame_dur, 0.1):
                raise VidrestoreError(
                    f"truncated or corrupt: the container declares {declared:.2f} s of video but its frames stop "
                    f"at {duration:.2f} s (decoding would end after frame {len(pts)})",
                    p,
                )
        fmt_name = first.format.name
        layout = layout_of(native_format(fmt_name))
        colour = ColourTags(
            range=int(first.color_range or cc.color_range or 0),
            primaries=int(cc.color_primaries if cc.color_primaries is not None else 2),
            trc=int(cc.color_trc if cc.color_trc is not None else 2),
            matrix=int(first.colorspace if first.colorspace not in (None, 2) else (cc.colorspace or 2)),
        )
        return VideoInfo(
            path=str(p),
            kind="video",
            container=c.format.name,
            stream_index=vs.index,
            codec=cc.codec.canonical_name,
            profile=cc.profile,
            width=first.width,
            height=first.height,
            pix_fmt=fmt_name,
            bit_depth=layout.depth,
            chroma=layout.chroma,
            fps=Fraction(fps) if fps else None,
            vfr=_is_vfr(arr),
            time_base=Fraction(tb),
            frame_count=int(count),
            frame_count_source=source,
            duration=duration,
            colour=colour,
            rotation=int(first.rotation or 0),
            tracks=[_track(s) for s in c.streams if s.index != vs.index],
            size_bytes=p.stat().st_size,
            first_pts=int(arr.min()) if arr.size else None,
        )


def _probe_images(folder: Path, fps: Fraction) -> VideoInfo:
    files = list_images(folder)
    img = read_image_raw(files[0])
    for f in files[1:]:
        w, h = image_size(f)
        if (w, h) != (img.shape[1], img.shape[0]):
            raise VidrestoreError(f"image is {w}x{h} but the first, {files[0].name}, is {img.shape[1]}x{img.shape[0]}: "
                                  "every frame of a sequence must have one size", f)
    depth = 8 if img.dtype == np.uint8 else 16
    gray = img.ndim == 2
    pix_fmt = ("gray" if depth == 8 else "gray16le") if gray else ("rgb24" if depth == 8 else "rgb48le")
    fps = Fraction(fps)
    return VideoInfo(
        path=str(folder),
        kind="images",
        container="image2",
        stream_index=0,
        codec=files[0].suffix.lower().lstrip("."),
        width=img.shape[1],
        height=img.shape[0],
        pix_fmt=pix_fmt,
        bit_depth=depth,
        chroma="4:0:0" if gray else "4:4:4",
        fps=fps,
        vfr=False,
        time_base=1 / fps,
        frame_count=len(files),
        frame_count_source="files",
        duration=float(len(files) / fps),
        colour=ColourTags(range=2, primaries=1, trc=13, matrix=0),
        rotation=0,
        tracks=[],
        size_bytes=sum(f.stat().st_size for f in files),
        first_pts=0,
    )


def describe(info: VideoInfo) -> str:
    """Human-readable summary, as `vidrestore probe` prints it."""
    mb = info.size_bytes / 1e6
    lines = [f"{info.path}  ({info.container}, {mb:.1f} MB" + (f", {info.duration:.2f} s)" if info.duration else ")")]
    fps = f"{float(info.fps):.3f}".rstrip("0").rstrip(".") + " fps" if info.fps else "unknown fps"
    fps += " (VFR)" if info.vfr else " (CFR)"
    tags = info.colour.names()
    lines.append(
        f"  video #{info.stream_index}: {info.codec}"
        + (f" ({info.profile})" if info.profile else "")
        + f", {info.width}x{info.height}, {info.pix_fmt} {info.bit_depth}-bit {info.chroma}, {fps}, "
        + f"{info.frame_count} frames ({'stated by container' if info.frame_count_source == 'container' else info.frame_count_source})"
    )
    lines.append(
        f"    colour: range={tags['range']} matrix={tags['matrix']} primaries={tags['primaries']} transfer={tags['transfer']}"
        + f"; rotation {info.rotation}°; time base {info.time_base}"
    )
    for t in info.tracks:
        extra = []
        if t.type == "audio":
            extra.append(f"{t.sample_rate} Hz")
            if t.layout:
                extra.append(t.layout)
        if t.language:
            extra.append(f"language={t.language}")
        if t.title:
            extra.append(f"title={t.title!r}")
        lines.append(f"  {t.type} #{t.index}: {t.codec}" + (", " + ", ".join(extra) if extra else ""))
    if not info.tracks:
        lines.append("  no audio or subtitle tracks")
    return "\n".join(lines)
