"""Colour conversion between decoded pixel planes and float32 RGB in [0, 1].

Every frame vidrestore hands to a stage is gamma-encoded R'G'B' in [0, 1], obtained with the
stream's own matrix (BT.601 / BT.709 / BT.2020 / SMPTE 240M / FCC) and range (limited "tv" or
full "pc") at the stream's bit depth. Writing applies the exact inverse, so a frame that no stage
touched goes back to the same code values (4:4:4 and RGB) or to within chroma-resampling error
(4:2:0 / 4:2:2).

Chroma resampling: up with bicubic interpolation (centre-sited); down with area averaging plus one
back-projection step against that upsampler (iterative back-projection, Irani & Peleg 1991), so
that encoding undoes decoding (the README's "Measured design choices" gives the figures).
Nearest-neighbour chroma would round-trip exactly but hands blocky colour edges to every stage.
Everything runs through OpenCV's vectorised kernels.

References: ITU-R BT.601-7, BT.709-6, BT.2020-2 (luma coefficients); ITU-T H.273 (code-value
ranges for limited and full range at n bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np

from ..errors import VidrestoreError

# AVColorSpace values (libavutil/pixfmt.h) -> our matrix names.
_MATRIX_BY_AVCOL = {
    0: "rgb",
    1: "bt709",
    4: "fcc",
    5: "bt601",
    6: "bt601",
    7: "smpte240m",
    9: "bt2020",
}
# Luma coefficients (Kr, Kb) of each YCbCr matrix.
_KR_KB = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
    "fcc": (0.30, 0.11),
}
# Inverse map used when tagging a stream whose matrix we chose ourselves.
AVCOL_BY_MATRIX = {"rgb": 0, "bt709": 1, "fcc": 4, "bt601": 6, "smpte240m": 7, "bt2020": 9}

# Formats that hold the same samples in another memory layout: repacked losslessly by swscale.
_REPACK = {
    "nv12": "yuv420p",
    "nv21": "yuv420p",
    "nv16": "yuv422p",
    "nv24": "yuv444p",
    "p010le": "yuv420p10le",
    "p016le": "yuv420p16le",
    "p210le": "yuv422p10le",
    "p410le": "yuv444p10le",
    "yuyv422": "yuv422p",
    "uyvy422": "yuv422p",
    "y210le": "yuv422p10le",
    "yuva420p": "yuv420p",
    "yuva422p": "yuv422p",
    "yuva444p": "yuv444p",
    "yuva420p10le": "yuv420p10le",
    "yuva444p10le": "yuv444p10le",
    "gbrap": "gbrp",
    "gbrap10le": "gbrp10le",
    "gbrap12le": "gbrp12le",
    "gbrap16le": "gbrp16le",
    "ya8": "gray",
    "ya16le": "gray16le",
    "monow": "gray",
    "monob": "gray",
    "pal8": "rgb24",
    "rgba": "rgb24",
    "bgra": "rgb24",
    "argb": "rgb24",
    "abgr": "rgb24",
    "rgb0": "rgb24",
    "0rgb": "rgb24",
    "0bgr": "rgb24",
    "bgr24": "rgb24",
    "rgba64le": "rgb48le",
    "bgr48le": "rgb48le",
    "bgra64le": "rgb48le",
}
# Packed RGB formats handled directly: name -> (bits, channel order of the stored samples).
_PACKED_RGB = {"rgb24": (8, "rgb"), "rgb48le": (16, "rgb"), "bgr0": (8, "bgr0")}


@dataclass(frozen=True)
class PixelLayout:
    """How a planar pixel format stores its samples.

    kind is "yuv", "rgb" (planar G, B, R or packed RGB) or "gray"; depth is bits per sample;
    sub_w / sub_h are log2 chroma subsampling factors (1, 1 for 4:2:0).
    """

    name: str
    kind: str
    depth: int
    sub_w: int = 0
    sub_h: int = 0

    @property
    def dtype(self) -> type:
        return np.uint8 if self.depth <= 8 else np.uint16

    @property
    def chroma(self) -> str:
        """Subsampling in the usual J:a:b notation."""
        if self.kind != "yuv":
            return "4:4:4" if self.kind == "rgb" else "4:0:0"
        return {(0, 0): "4:4:4", (1, 0): "4:2:2", (1, 1): "4:2:0", (2, 0): "4:1:1", (2, 2): "4:1:0"}.get(
            (self.sub_w, self.sub_h), f"sub{self.sub_w}{self.sub_h}"
        )


def layout_of(fmt_name: str) -> PixelLayout | None:
    """Describe a pixel format we read and write natively, or None if it must be repacked first."""
    if fmt_name in _PACKED_RGB:
        return PixelLayout(fmt_name, "rgb", _PACKED_RGB[fmt_name][0])
    try:
        fmt = av.VideoFormat(fmt_name)
    except (ValueError, av.FFmpegError):
        return None
    comps = fmt.components
    if (
        fmt.is_big_endian
        or fmt.has_palette
        or fmt.is_bit_stream
        or any(c.is_alpha for c in comps)
        or sorted(c.plane for c in comps) != list(range(len(comps)))
        or len({c.bits for c in comps}) != 1
        or fmt.name.endswith(("f32le", "f16le", "f32be", "f16be"))
    ):
        return None
    depth = comps[0].bits
    if depth > 16:
        return None
    if len(comps) == 1:
        return PixelLayout(fmt.name, "gray", depth)
    if len(comps) != 3:
        return None
    if fmt.is_rgb:
        return PixelLayout(fmt.name, "rgb", depth) if fmt.name.startswith("gbrp") else None
    probe = av.VideoFormat(fmt.name, 64, 64)
    sub_w = int(np.log2(64 // probe.components[1].width))
    sub_h = int(np.log2(64 // probe.components[1].height))
    return PixelLayout(fmt.name, "yuv", depth, sub_w, sub_h)


def native_format(fmt_name: str) -> str:
    """The format a decoded frame is repacked to before conversion (itself when already native)."""
    if layout_of(fmt_name) is not None:
        return fmt_name
    if fmt_name in _REPACK:
        return _REPACK[fmt_name]
    fmt = av.VideoFormat(fmt_name)
    depth = max(c.bits for c in fmt.components)
    if fmt.is_rgb:
        return "gbrp" if depth <= 8 else "gbrp16le"
    if len(fmt.components) <= 2:
        return "gray" if depth <= 8 else "gray16le"
    return "yuv444p" if depth <= 8 else "yuv444p16le"


@dataclass(frozen=True)
class Colour:
    """The colour interpretation of a stream: matrix name, full (pc) or limited (tv) range."""

    matrix: str
    full_range: bool


def guess_matrix(avcol: int | None, width: int, height: int) -> str:
    """Matrix for an AVColorSpace value; an unspecified one is guessed as players do (mpv: HD is BT.709)."""
    if avcol in _MATRIX_BY_AVCOL:
        return _MATRIX_BY_AVCOL[avcol]
    if avcol not in (None, 2):
        raise VidrestoreError(f"unsupported colour matrix (AVColorSpace {avcol}); only BT.601/709/2020, SMPTE 240M and FCC are handled")
    return "bt709" if width >= 1280 or height > 576 else "bt601"


def _yuv_affine(matrix: str, full_range: bool, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with rgb = A @ code + b for code = (Y, Cb, Cr) code values at the given depth."""
    kr, kb = _KR_KB[matrix]
    kg = 1.0 - kr - kb
    m = np.array(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr)],
            [1.0, -2.0 * (1.0 - kb) * kb / kg, -2.0 * (1.0 - kr) * kr / kg],
            [1.0, 2.0 * (1.0 - kb), 0.0],
        ]
    )
    if full_range:
        peak = float(2**depth - 1)
        scale = np.array([1.0 / peak] * 3)
        offset = np.array([0.0, -(2 ** (depth - 1)) / peak, -(2 ** (depth - 1)) / peak])
    else:
        k = float(2 ** (depth - 8))
        scale = np.array([1.0 / (219.0 * k), 1.0 / (224.0 * k), 1.0 / (224.0 * k)])
        offset = np.array([-16.0 / 219.0, -128.0 / 224.0, -128.0 / 224.0])
    a = m @ np.diag(scale)
    b = m @ offset
    return a, b


def _affine34(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.hstack([a, b[:, None]]).astype(np.float32)


def _clip01(x: np.ndarray) -> np.ndarray:
    """Clip float32 samples to [0, 1] in place (cv2.threshold is several times faster than np.clip)."""
    cv2.threshold(x, 1.0, 0.0, cv2.THRESH_TRUNC, dst=x)
    cv2.threshold(x, 0.0, 0.0, cv2.THRESH_TOZERO, dst=x)
    return x


def planes_to_rgb(planes: list[np.ndarray], layout: PixelLayout, colour: Colour) -> np.ndarray:
    """Decode native planes to float32 RGB (H, W, 3) in [0, 1].

    Subsampled chroma is interpolated (bicubic) at the stored integer precision before the
    matrix is applied.

    Args:
        planes: one 2-D array per plane (Y, Cb, Cr / G, B, R / grey), or one (H, W, C) array for
            packed RGB.
        layout: the planes' pixel layout.
        colour: matrix and range; ignored for RGB.
    """
    peak = float(2**layout.depth - 1)
    if layout.kind == "rgb":
        if layout.name == "bgr0":
            rgb = planes[0][..., 2::-1].astype(np.float32)
        elif len(planes) == 1:
            rgb = planes[0].astype(np.float32)
        else:
            g, b, r = planes
            rgb = cv2.merge([r, g, b]).astype(np.float32)
        rgb *= 1.0 / peak
        return rgb
    if layout.kind == "gray":
        y = planes[0].astype(np.float32)
        if colour.full_range:
            y *= 1.0 / peak
        else:
            k = float(2 ** (layout.depth - 8))
            y = (y - 16.0 * k) * (1.0 / (219.0 * k))
        return cv2.merge([_clip01(y)] * 3)
    y, cb, cr = planes
    h, w = y.shape
    if cb.shape != (h, w):
        cb = cv2.resize(cb, (w, h), interpolation=cv2.INTER_CUBIC)
        cr = cv2.resize(cr, (w, h), interpolation=cv2.INTER_CUBIC)
    ycc = cv2.merge([y, cb, cr]).astype(np.float32)
    rgb = cv2.transform(ycc, _affine34(*_yuv_affine(colour.matrix, colour.full_range, layout.depth)))
    return _clip01(rgb)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma Y' = 0.299 R + 0.587 G + 0.114 B of float RGB (H, W, 3), on RGB's own scale (no
    video-range offset), as float32; a grey (H, W) frame is its own luma. The one luma of vidrestore."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32, copy=False)
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def _quantise(x: np.ndarray, depth: int) -> np.ndarray:
    """Round float code values to the layout's integer type, saturating at 0 and 2**depth - 1."""
    if x.size == 1:  # OpenCV reads a one-element array as a scalar
        return np.clip(np.rint(x), 0, 2**depth - 1).astype(np.uint8 if depth <= 8 else np.uint16)
    if depth <= 8:
        return cv2.add(x, 0.0, dtype=cv2.CV_8U)
    if depth < 16:
        cv2.threshold(x, float(2**depth - 1), 0.0, cv2.THRESH_TRUNC, dst=x)
    return cv2.add(x, 0.0, dtype=cv2.CV_16U)


def rgb_to_planes(rgb: np.ndarray, layout: PixelLayout, colour: Colour) -> list[np.ndarray]:
    """Encode float32 RGB (H, W, 3) to native planes: the inverse of :func:`planes_to_rgb`.

    Chroma is subsampled by area averaging. Cb and Cr are linear in R'G'B', so the RGB image is
    averaged first and the matrix applied at chroma resolution (same result, less work).
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    peak = float(2**layout.depth - 1)
    if layout.kind == "rgb":
        scaled = rgb * peak
        if layout.name == "bgr0":
            q = _quantise(scaled, layout.depth)
            return [np.dstack([q[..., ::-1], np.zeros(q.shape[:2], np.uint8)])]
        if layout.name in _PACKED_RGB:
            return [_quantise(scaled, layout.depth)]
        r, g, b = cv2.split(scaled)
        return [_quantise(g, layout.depth), _quantise(b, layout.depth), _quantise(r, layout.depth)]
    a, b = _yuv_affine(colour.matrix if layout.kind == "yuv" else "bt709", colour.full_range, layout.depth)
    inv = np.linalg.inv(a)
    to_code = _affine34(inv, -inv @ b)
    y = _quantise(cv2.transform(rgb, to_code[:1]), layout.depth)
    if layout.kind == "gray":
        return [y]
    h, w = rgb.shape[:2]
    cw, ch = -(-w >> layout.sub_w), -(-h >> layout.sub_h)
    if (ch, cw) == (h, w):
        chroma = cv2.transform(rgb, to_code[1:])
    else:
        target = cv2.transform(cv2.resize(rgb, (cw, ch), interpolation=cv2.INTER_AREA), to_code[1:])
        # One back-projection step: correct the area average by what the decoder's bicubic
        # upsampling of it would lose, so decode(encode(x)) ~ x.
        up = cv2.resize(target, (w, h), interpolation=cv2.INTER_CUBIC)
        chroma = 2.0 * target - cv2.resize(up, (cw, ch), interpolation=cv2.INTER_AREA)
    cb, cr = cv2.split(chroma)
    return [y, _quantise(cb, layout.depth), _quantise(cr, layout.depth)]


def read_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Views of a native-format frame's planes as 2-D arrays (packed RGB: one (H, W, 3) array)."""
    layout = layout_of(frame.format.name)
    assert layout is not None, frame.format.name
    if layout.name in _PACKED_RGB:
        plane = frame.planes[0]
        itemsize = np.dtype(layout.dtype).itemsize
        channels = 4 if layout.name == "bgr0" else 3
        arr = np.frombuffer(plane, dtype=layout.dtype).reshape(plane.height, plane.line_size // itemsize)
        return [arr[:, : plane.width * channels].reshape(plane.height, plane.width, channels)]
    out = []
    for plane in frame.planes:
        itemsize = np.dtype(layout.dtype).itemsize
        arr = np.frombuffer(plane, dtype=layout.dtype).reshape(plane.height, plane.line_size // itemsize)
        out.append(arr[:, : plane.width])
    return out


def write_planes(planes: list[np.ndarray], layout: PixelLayout, width: int, height: int) -> av.VideoFrame:
    """A new VideoFrame of the layout's format holding the given planes."""
    frame = av.VideoFrame(width, height, layout.name)
    if layout.name in _PACKED_RGB:
        planes = [planes[0].reshape(height, -1)]
    itemsize = np.dtype(layout.dtype).itemsize
    for plane, data in zip(frame.planes, planes):
        dst = np.frombuffer(plane, dtype=layout.dtype).reshape(plane.height, plane.line_size // itemsize)
        dst[:, : data.shape[1]] = data
    return frame
