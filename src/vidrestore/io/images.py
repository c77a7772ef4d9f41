"""Image-sequence folders (PNG / JPEG / TIFF, 8 and 16 bit) as a video source and sink."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import VidrestoreError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(folder: str | Path) -> list[Path]:
    """The folder's image files in natural order (frame2 before frame10)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not files:
        raise VidrestoreError(
            f"folder holds no images (looked for {', '.join(IMAGE_SUFFIXES)})", folder
        )
    return sorted(files, key=_natural_key)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image from its header, without decoding its pixels."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 24:
        return struct.unpack(">II", head[16:24])
    try:
        with av.open(str(path)) as c:
            cc = c.streams.video[0].codec_context
            return cc.width, cc.height
    except (av.FFmpegError, IndexError):
        raise VidrestoreError("cannot read this image (unsupported or corrupt)", path) from None


def read_image_raw(path: Path) -> np.ndarray:
    """The image's samples as stored: uint8 or uint16, (H, W) grey or (H, W, 3) RGB; alpha dropped."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img is None:
        raise VidrestoreError("cannot read this image (unsupported or corrupt)", path)
    if img.dtype not in (np.uint8, np.uint16):
        raise VidrestoreError(f"unsupported sample type {img.dtype} (8- and 16-bit images only)", path)
    if img.ndim == 3:
        img = img[..., :3][..., ::-1] if img.shape[2] >= 3 else img[..., 0]
    return np.ascontiguousarray(img)


def image_to_rgb(img: np.ndarray) -> np.ndarray:
    """uint8/uint16 grey or RGB samples to float32 RGB in [0, 1]."""
    peak = 255.0 if img.dtype == np.uint8 else 65535.0
    rgb = img.astype(np.float32) * (1.0 / peak)
    if rgb.ndim == 2:
        rgb = cv2.merge([rgb, rgb, rgb])
    return rgb


def write_image(path: Path, rgb: np.ndarray, depth: int) -> None:
    """Write float32 RGB in [0, 1] as an 8- or 16-bit image (rounded, saturated), synced to disk.

    The file is encoded in memory and written with plain file I/O so that a full disk raises an
    OSError carrying its errno.
    """
    peak = 255.0 if depth <= 8 else 65535.0
    scaled = np.ascontiguousarray(rgb[..., ::-1], dtype=np.float32) * peak
    samples = cv2.add(scaled, 0.0, dtype=cv2.CV_8U if depth <= 8 else cv2.CV_16U)
    ok, data = cv2.imencode(path.suffix, samples, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise VidrestoreError("could not encode image", path)
    with open(path, "wb") as fh:
        fh.write(data.tobytes())
        fh.flush()
        os.fsync(fh.fileno())
