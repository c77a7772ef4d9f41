"""Final assembly: encoded video segments + the input's audio, subtitles, chapters and metadata.

Video packets are stream-copied from the segment files with their exact pts restored and one
monotonic dts sequence recomputed across segment boundaries (dts_i = i-th smallest pts - the
largest reorder delay), so B-frames survive concatenation. Audio, subtitle, data and attachment
streams are copied packet for packet; audio is re-encoded only when the output container cannot
hold its codec, and the caller is told. The file is written under a temporary name beside the
output and renamed into place only once complete.
"""

from __future__ import annotations

import heapq
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import VidrestoreError
from .encode import CODECS, EncodeSettings
from .paths import fsync_file
from .probe import VideoInfo, open_container

# Output file extension -> FFmpeg muxer.
# AVI and MPEG-TS are read but not written: AVI cannot store per-frame timestamps (VFR) and
# MPEG-TS shifts the start time and cannot carry text subtitles.
CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
}
# Audio codec used when the output container cannot hold the input's: (encoder, sample rate or None).
AUDIO_FALLBACK = {
    "mp4": ("aac", None),
    "mov": ("aac", None),
    "webm": ("libopus", 48000),
    "matroska": ("flac", None),
}
# Text subtitle codec each container takes when the input's cannot be copied.
SUBTITLE_FALLBACK = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip", "webm": "webvtt"}
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"}
# Metadata keys that describe the old file rather than the content.
_STALE_KEYS = {"duration", "encoder", "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc",
               "number_of_frames", "number_of_bytes", "bps"}


def container_format(path: Path) -> str:
    """The FFmpeg muxer for an output file name."""
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise VidrestoreError(
            f"unsupported output type {path.suffix or '(no extension)'!r}; use one of {', '.join(CONTAINERS)} "
            "or a folder for a PNG sequence",
            path,
        )
    return fmt


def is_folder_output(path: Path, codec: str | None = None) -> bool:
    """Whether `path` names a PNG-sequence folder: codec png, no extension, or an existing folder
    whose extension is not a video container's."""
    return codec == "png" or path.suffix == "" or (path.is_dir() and path.suffix.lower() not in CONTAINERS)


def resolve_output(path: Path, settings: EncodeSettings) -> tuple[EncodeSettings, str | None]:
    """Check, before any work, that the output can hold the codec; returns (settings to use, note).

    A folder output is a PNG sequence (another codec asked for is refused). With no codec asked
    for, a video file gets h264, or the first codec its container holds, and the note says so.
    """
    if is_folder_output(path, settings.codec):
        if settings.codec not in (None, "png"):
            raise VidrestoreError(f"a folder output is a PNG sequence; --codec {settings.codec} needs a video file name "
                                  "(e.g. out.mkv)", path)
        return EncodeSettings("png"), None
    fmt = container_format(path)
    settings.spec()
    holds = [name for name, spec in CODECS.items() if _can_hold(fmt, codec=spec.encoder)]
    if settings.name in holds:
        return settings, None
    if settings.codec is not None:
        raise VidrestoreError(f"a {path.suffix} file cannot hold {settings.codec} video; use --codec "
                              f"{' or '.join(holds)}, or another container", path)
    chosen = EncodeSettings(holds[0], settings.crf, settings.preset)
    chosen.spec()
    return chosen, f"a {path.suffix} file cannot hold {settings.name} video: encoding {holds[0]}"


@dataclass(frozen=True)
class TrackPlan:
    """What happens to one input stream: "copy", "reencode" (audio), "convert" (text subtitles) or "drop"."""

    index: int
    type: str
    codec: str
    action: str
    target: str | None = None
    note: str | None = None


def _can_hold(fmt: str, stream: av.stream.Stream | None = None, codec: str | None = None) -> bool:
    """Whether a `fmt` container accepts a copy of `stream`, or a new stream of encoder `codec`."""
    dummy = av.open(io.BytesIO(), "w", format=fmt)
    try:
        if stream is not None:
            dummy.add_stream_from_template(stream)
        else:
            dummy.add_stream(codec)
        return True
    except (ValueError, av.FFmpegError):
        return False


def plan_tracks(info: VideoInfo, out_path: Path, drop_subtitles: bool = False) -> list[TrackPlan]:
    """Decide, before any work, how each non-video input stream reaches the output.

    Raises:
        VidrestoreError: a subtitle track the output container cannot hold (unless dropped).
    """
    if info.kind != "video" or not info.tracks:
        return []
    fmt = container_format(out_path)
    plans = []
    with open_container(Path(info.path)) as c:
        for t in info.tracks:
            s = c.streams[t.index]
            if t.type == "data" or (t.type == "attachment" and fmt != "matroska"):
                # Timecode, telemetry and similar tracks have no codec FFmpeg can remux reliably
                # (a timecode also survives as the video stream's "timecode" tag, which is kept).
                plans.append(TrackPlan(t.index, t.type, t.codec, "drop", note=f"{t.type} #{t.index} ({t.codec}) not copied"))
            elif t.type == "subtitle" and drop_subtitles:
                plans.append(TrackPlan(t.index, t.type, t.codec, "drop", note=f"subtitle #{t.index} ({t.codec}) dropped on request"))
            elif _can_hold(fmt, s):
                plans.append(TrackPlan(t.index, t.type, t.codec, "copy"))
            elif t.type == "audio":
                target = AUDIO_FALLBACK.get(fmt, ("aac", None))[0]
                plans.append(TrackPlan(t.index, t.type, t.codec, "reencode", target,
                                       f"audio #{t.index} re-encoded from {t.codec} to {target}: {fmt} cannot hold {t.codec}"))
            elif t.type == "subtitle" and t.codec in _TEXT_SUBTITLES and _can_hold(fmt, codec=SUBTITLE_FALLBACK.get(fmt, "-")):
                target = SUBTITLE_FALLBACK[fmt]
                plans.append(TrackPlan(t.index, t.type, t.codec, "convert", target,
                                       f"subtitle #{t.index} converted from {t.codec} to {target}: {fmt} cannot hold {t.codec}"))
            elif t.type == "subtitle":
                raise VidrestoreError(
                    f"the {fmt} container cannot hold subtitle track #{t.index} ({t.codec}); "
                    "write .mkv instead, or pass --drop-subtitles",
                    out_path,
                )
            else:
                plans.append(TrackPlan(t.index, t.type, t.codec, "drop", note=f"{t.type} #{t.index} ({t.codec}) dropped: {fmt} cannot hold it"))
    return plans


def _clean_metadata(md: dict) -> dict:
    return {k: v for k, v in (md or {}).items() if k.lower() not in _STALE_KEYS and not k.upper().startswith("DURATION")}


def _video_packets(segments: list[tuple[Path, list[int]]], stream: av.stream.Stream, time_base: Fraction) -> Iterator[av.Packet]:
    all_pts = [p for _, pts in segments for p in pts]
    ordered = sorted(all_pts)
    delay = max(0, max(o - p for o, p in zip(ordered, all_pts)))
    # Each frame lasts until the next one starts; the last one as long as the one before it.
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    duration = dict(zip(ordered, gaps + [gaps[-1] if gaps else 1]))
    i = 0
    for path, pts in segments:
        with av.open(str(path)) as seg:
            n = 0
            for pk in seg.demux(seg.streams.video[0]):
                if pk.size == 0:
                    continue
                if n >= len(pts):
                    raise VidrestoreError("segment holds more packets than recorded (corrupt work directory)", path)
                pk.time_base = time_base
                pk.pts = pts[n]
                pk.dts = ordered[i] - delay
                pk.duration = duration[pts[n]]
                pk.stream = stream
                n += 1
                i += 1
                yield pk
            if n != len(pts):
                raise VidrestoreError("segment holds fewer packets than recorded (corrupt work directory)", path)


def _copy_packets(src: av.container.InputContainer, mapping: dict[int, av.stream.Stream]) -> Iterator[av.Packet]:
    if not mapping:
        return
    for pk in src.demux(*[src.streams[i] for i in mapping]):
        if pk.size == 0 or (pk.dts is None and pk.pts is None):
            continue
        cc = src.streams[pk.stream_index].codec_context
        if cc is not None and cc.name == "mov_text" and bytes(pk) == b"\x00\x00":
            continue  # an empty cue filling a gap: the MP4 muxer writes its own
        pk.stream = mapping[pk.stream_index]
        yield pk


def _reencode_packets(src_stream: av.stream.Stream, out_stream: av.stream.Stream, resampler: av.AudioResampler) -> Iterator[av.Packet]:
    container = src_stream.container
    for pk in container.demux(src_stream):
        for frame in pk.decode():
            for rf in resampler.resample(frame):
                yield from out_stream.encode(rf)
    for rf in resampler.resample(None):
        yield from out_stream.encode(rf)
    yield from out_stream.encode(None)


def _convert_subtitles(src_stream: av.stream.Stream, out_stream: av.stream.Stream) -> Iterator[av.Packet]:
    """Decode text subtitles and encode them for another container, keeping every cue's timing."""
    for pk in src_stream.container.demux(src_stream):
        if pk.size == 0:
            continue
        subset = src_stream.codec_context.decode2(pk)
        if subset is None:
            continue
        out = out_stream.codec_context.encode_subtitle(subset)
        out.time_base = pk.time_base
        out.pts = out.dts = pk.pts
        out.duration = pk.duration
        out.stream = out_stream
        yield out


def _time(pk: av.Packet) -> float:
    t = pk.dts if pk.dts is not None else pk.pts
    return float(t * pk.time_base)


def temp_path(out_path: Path) -> Path:
    """Where the output is written before the atomic rename (same folder, hidden)."""
    return out_path.with_name(f".{out_path.stem}.vidrestore-partial{out_path.suffix}")


def mux_output(
    segments: list[tuple[Path, list[int]]],
    info: VideoInfo,
    time_base: Fraction,
    fps: Fraction,
    out_path: Path,
    tracks: list[TrackPlan],
) -> None:
    """Write the final file from encoded segments and the input's other streams, then rename it into place.

    `fps` is the average frame rate the container advertises (per-frame timing comes from the pts).
    """
    fmt = container_format(out_path)
    tmp = temp_path(out_path)
    out = av.open(str(tmp), "w", format=fmt)
    sources: list[av.container.InputContainer] = []
    try:
        with av.open(str(segments[0][0])) as first:
            ov = out.add_stream_from_template(first.streams.video[0], opaque=True)
        ov.time_base = time_base
        ov.codec_context.framerate = fps
        if info.rotation:
            ov.set_display_rotation(info.rotation)
        iters: list[Iterator[av.Packet]] = [_video_packets(segments, ov, time_base)]
        if info.kind == "video":
            src = open_container(Path(info.path))
            sources.append(src)
            ov.metadata.update(_clean_metadata(src.streams[info.stream_index].metadata))
            out.metadata.update(_clean_metadata(src.metadata))
            copies: dict[int, av.stream.Stream] = {}
            for t in tracks:
                s = src.streams[t.index]
                if t.action == "copy":
                    o = out.add_stream_from_template(s)
                    o.metadata.update(_clean_metadata(s.metadata))
                    o.disposition = s.disposition
                    copies[t.index] = o
                elif t.action == "reencode":
                    rate = AUDIO_FALLBACK.get(fmt, ("aac", None))[1] or s.codec_context.sample_rate
                    o = out.add_stream(t.target, rate=rate)
                    o.layout = s.codec_context.layout
                    o.metadata.update(_clean_metadata(s.metadata))
                    o.disposition = s.disposition
                    fmt_name = av.Codec(t.target, "w").audio_formats[0].name
                    resampler = av.AudioResampler(format=fmt_name, layout=s.codec_context.layout, rate=rate)
                    own = open_container(Path(info.path))
                    sources.append(own)
                    iters.append(_reencode_packets(own.streams[t.index], o, resampler))
                elif t.action == "convert":
                    own = open_container(Path(info.path))
                    sources.append(own)
                    s_own = own.streams[t.index]
                    s_own.codec_context.open(strict=False)
                    o = out.add_stream(t.target)
                    o.codec_context.subtitle_header = s_own.codec_context.subtitle_header
                    o.time_base = s.time_base
                    o.metadata.update(_clean_metadata(s.metadata))
                    o.disposition = s.disposition
                    iters.append(_convert_subtitles(s_own, o))
            if copies:
                iters.append(_copy_packets(src, copies))
            chapters = src.chapters()
            if chapters:
                out.set_chapters(chapters)
        for pk in heapq.merge(*iters, key=_time):
            out.mux(pk)
        out.close()
        fsync_file(tmp)
        os.replace(tmp, out_path)
    except BaseException:
        try:
            out.close()
        except Exception:  # noqa: BLE001 - already failing; the partial file is removed below
            pass
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for s in sources:
            s.close()
