"""Small synthetic test clips with known content, written with PyAV (used by tests and benchmarks).

Each frame holds flat patches of known RGB colours (left third) and moving texture (the rest).
RGB is converted to the clip's YUV format by a float64 textbook implementation of ITU-T H.273
(separate from vidrestore's own colour code), so a reader that used the wrong matrix or range
would get the patch colours wrong. Optional extras: AAC audio, a subtitle track, variable
frame rate, a display rotation, odd sizes, 10-bit formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

# Known patch colours (8-bit sRGB values) in the left third of every frame.
PATCHES = np.array(
    [[235, 40, 30], [40, 200, 60], [30, 60, 220], [250, 250, 250], [128, 128, 128], [15, 12, 10], [200, 160, 40], [90, 30, 150]],
    dtype=np.float64,
) / 255.0

# (matrix, primaries, transfer) tags written for each matrix.
_MATRIX_TAG = {"bt601": (6, 6, 6), "bt709": (1, 1, 1)}


@dataclass(frozen=True)
class ClipSpec:
    """What a synthetic clip looks like.

    Attributes:
        width, height, frames: geometry and length.
        fps: nominal frame rate; time_base: unit of pts.
        codec: FFmpeg encoder; pix_fmt: its input format (10-bit: yuv420p10le etc.).
        lossless: encode losslessly (x264 qp 0, x265 lossless, ffv1 anyway).
        matrix: "bt601" or "bt709" (tagged), or None (untagged, BT.601 numbers as swscale uses).
        full_range: full ("pc") range instead of limited.
        vfr: irregular frame durations (1-3 nominal intervals).
        audio: add an AAC stereo tone track; subtitles: add a text subtitle track.
        rotation: display rotation in degrees (counter-clockwise).
    """

    width: int = 96
    height: int = 64
    frames: int = 24
    fps: Fraction = Fraction(25)
    time_base: Fraction = Fraction(1, 1000)
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    lossless: bool = True
    matrix: str | None = "bt709"
    full_range: bool = False
    vfr: bool = False
    audio: bool = False
    subtitles: bool = False
    rotation: int = 0


def _patch_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of each known patch: a 4 x 2 grid over the left 40 % of the frame."""
    rows = 4
    boxes = []
    for k in range(len(PATCHES)):
        r, c = k % rows, k // rows
        boxes.append((r * height // rows, (r + 1) * height // rows, c * width // 5, (c + 1) * width // 5))
    return boxes


def pattern_rgb(index: int, width: int, height: int) -> np.ndarray:
    """Float64 RGB (H, W, 3) in [0, 1]: known patches on the left, smooth moving texture elsewhere."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    t = index * 0.15
    img = np.stack(
        [
            0.5 + 0.4 * np.sin(x * 0.11 + t) * np.cos(y * 0.07 - t),
            0.5 + 0.4 * np.sin(x * 0.05 - y * 0.09 + 2 * t),
            0.5 + 0.4 * np.cos(x * 0.08 + y * 0.03 + t),
        ],
        axis=-1,
    )
    cx = (index * 3) % max(1, width // 3) + width // 2
    img[height // 4: height // 2, cx: cx + max(2, width // 10)] = (0.95, 0.9, 0.1)
    for (t0, t1, l0, l1), colour in zip(_patch_boxes(width, height), PATCHES):
        img[t0:t1, l0:l1] = colour
    # A camera's optics never leave pixel-sharp colour edges; sigma 0.8 px leaves patch centres exact.
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def patch_centres(width: int, height: int) -> list[tuple[int, int]]:
    """(row, col) of the centre of each known patch."""
    return [((t0 + t1) // 2, (l0 + l1) // 2) for t0, t1, l0, l1 in _patch_boxes(width, height)]


def frame_pts(spec: ClipSpec) -> list[int]:
    """The pts of each frame, in units of spec.time_base."""
    step = 1 / (spec.fps * spec.time_base)
    pts, t = [], Fraction(0)
    for i in range(spec.frames):
        pts.append(int(round(t)))
        t += step * ((1, 2, 1, 3)[i % 4] if spec.vfr else 1)
    return pts


def _is_rgb(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("gbrp", "rgb", "bgr"))


_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def _textbook_planes(rgb: np.ndarray, matrix: str, full_range: bool, depth: int, sub_w: int, sub_h: int) -> list[np.ndarray]:
    """Y'CbCr code values per ITU-T H.273 in float64, chroma box-averaged: the reference encoding."""
    kr, kb = _KR_KB[matrix]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb = (b - y) / (2 * (1 - kb))
    cr = (r - y) / (2 * (1 - kr))
    if full_range:
        peak = 2**depth - 1
        yq, cbq, crq = y * peak, cb * peak + 2 ** (depth - 1), cr * peak + 2 ** (depth - 1)
    else:
        k = 2 ** (depth - 8)
        yq, cbq, crq = y * 219 * k + 16 * k, cb * 224 * k + 128 * k, cr * 224 * k + 128 * k
    fw, fh = 1 << sub_w, 1 << sub_h

    def down(c: np.ndarray) -> np.ndarray:
        h, w = c.shape
        padded = np.pad(c, ((0, -h % fh), (0, -w % fw)), mode="edge")
        return padded.reshape(padded.shape[0] // fh, fh, padded.shape[1] // fw, fw).mean(axis=(1, 3))

    dtype = np.uint8 if depth <= 8 else np.uint16
    return [np.clip(np.rint(p), 0, 2**depth - 1).astype(dtype) for p in (yq, down(cbq), down(crq))]


def _yuv_frame(rgb: np.ndarray, spec: ClipSpec) -> av.VideoFrame:
    if _is_rgb(spec.pix_fmt):
        deep = spec.pix_fmt not in ("rgb24", "bgr0", "gbrp")
        if deep:
            src = av.VideoFrame.from_ndarray(np.round(rgb * 65535).astype(np.uint16), format="rgb48le")
        else:
            src = av.VideoFrame.from_ndarray(np.round(rgb * 255).astype(np.uint8), format="rgb24")
        return src.reformat(format=spec.pix_fmt)
    fmt = av.VideoFormat(spec.pix_fmt, 64, 64)
    depth = fmt.components[0].bits
    sub_w, sub_h = int(np.log2(64 // fmt.components[1].width)), int(np.log2(64 // fmt.components[1].height))
    planes = _textbook_planes(rgb, spec.matrix or "bt601", spec.full_range, depth, sub_w, sub_h)
    frame = av.VideoFrame(spec.width, spec.height, spec.pix_fmt)
    for plane, data in zip(frame.planes, planes):
        dst = np.frombuffer(plane, dtype=data.dtype).reshape(plane.height, -1)
        dst[:, : plane.width] = data
    return frame


def write_test_clip(path: str | Path, spec: ClipSpec = ClipSpec()) -> list[int]:
    """Write a synthetic clip; returns the pts of its frames (in spec.time_base units)."""
    path = Path(path)
    pts = frame_pts(spec)
    options = {}
    if spec.lossless and spec.codec == "libx264":
        options = {"qp": "0", "preset": "ultrafast"}
    elif spec.lossless and spec.codec == "libx265":
        options = {"x265-params": "lossless=1:log-level=error"}
    elif spec.codec == "libx265":
        options = {"x265-params": "log-level=error"}
    with av.open(str(path), "w") as c:
        vs = c.add_stream(spec.codec, rate=spec.fps, options=options)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, spec.pix_fmt
        vs.codec_context.time_base = spec.time_base
        vs.time_base = spec.time_base
        cc = vs.codec_context
        if _is_rgb(spec.pix_fmt):
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 0, 1, 13, 2
        else:
            cc.colorspace, cc.color_primaries, cc.color_trc = _MATRIX_TAG[spec.matrix] if spec.matrix else (2, 2, 2)
            cc.color_range = 2 if spec.full_range else 1
        if spec.rotation:
            vs.set_display_rotation(spec.rotation)
        audio = None
        if spec.audio:
            audio = c.add_stream("aac", rate=48000)
            audio.layout = "stereo"
        subs = None
        if spec.subtitles:
            subs = c.add_mux_stream("mov_text" if path.suffix.lower() in (".mp4", ".mov") else "subrip")
            subs.time_base = Fraction(1, 1000)
            subs.metadata["language"] = "eng"
        for i, p in enumerate(pts):
            frame = _yuv_frame(pattern_rgb(i, spec.width, spec.height), spec)
            frame.pts, frame.time_base = p, spec.time_base
            frame.color_range = vs.codec_context.color_range
            frame.colorspace = vs.codec_context.colorspace
            c.mux(vs.encode(frame))
        c.mux(vs.encode(None))
        end = float((pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)) * spec.time_base)
        if audio is not None:
            n = int(end * 48000)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = tone[start:start + 1024]
                af = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, start
                c.mux(audio.encode(af))
            c.mux(audio.encode(None))
        if subs is not None:
            for k, text in enumerate(["first line", "second line"]):
                data = text.encode()
                if path.suffix.lower() in (".mp4", ".mov"):
                    data = len(data).to_bytes(2, "big") + data
                pk = av.Packet(data)
                start_ms = int(end * 1000 * k / 2)
                pk.pts = pk.dts = start_ms
                pk.duration = max(1, int(end * 1000 / 2) - 10)
                pk.time_base = Fraction(1, 1000)
                pk.stream = subs
                c.mux(pk)
    return pts
