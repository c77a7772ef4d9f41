"""The quantiser a video was coded with, per frame and per block, as the decoder exports it.

FFmpeg's decoders of H.264 (and a few others) attach the quantisation parameters they read to
each frame when asked (`export_side_data=venc_params`: AVVideoEncParams, the frame's QP and a
delta per coded block). The deblocker reads them to know where, and how coarsely, each block
was quantised: the block grid and the quantiser, straight from the bitstream.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import av
import numpy as np
from av.sidedata.sidedata import Type

from ..errors import VidrestoreError

_HEADER = struct.Struct("<I4xQQIi")     # nb_blocks, (pad), blocks_offset, block_size, type, qp
_BLOCK = struct.Struct("<iiiii")        # src_x, src_y, w, h, delta_qp
H264 = 1                                 # AV_VIDEO_ENC_PARAMS_H264
_STEP = np.array([0.625, 0.6875, 0.8125, 0.875, 1.0, 1.125], np.float32)   # H.264's steps for QP 0-5


@dataclass(frozen=True)
class FrameQP:
    """One frame's quantiser: `qp[i, j]` of the block at rows i*block.., columns j*block.."""

    qp: np.ndarray
    block: int

    def pixel_map(self, height: int, width: int) -> np.ndarray:
        """The QP of every pixel (H, W)."""
        rows = np.minimum(np.arange(height) // self.block, self.qp.shape[0] - 1)
        cols = np.minimum(np.arange(width) // self.block, self.qp.shape[1] - 1)
        return self.qp[np.ix_(rows, cols)].astype(np.float32)


def h264_step(qp: np.ndarray) -> np.ndarray:
    """H.264's quantiser step size for QP (0.625 at QP 0, 1 at QP 4, doubling every 6 QP)."""
    q = np.clip(np.asarray(qp, np.int32), 0, 51)
    return _STEP[q % 6] * np.exp2(q // 6).astype(np.float32)


def _parse(data: bytes, width: int, height: int) -> FrameQP:
    nb, offset, size, kind, qp = _HEADER.unpack_from(data, 0)
    if kind != H264:
        raise VidrestoreError(f"quantiser parameters of type {kind} are not supported (only H.264's)")
    blocks = [_BLOCK.unpack_from(data, offset + k * size) for k in range(nb)]
    if not blocks:
        return FrameQP(np.full((1, 1), qp, np.int16), max(width, height))
    block = blocks[0][2]
    grid = np.full((-(-height // block), -(-width // block)), qp, np.int16)
    for x, y, _, _, delta in blocks:
        grid[y // block, x // block] = qp + delta
    return FrameQP(grid, block)


def read_qp(path: str | os.PathLike) -> list[FrameQP]:
    """Every frame's quantiser, in display order. Raises VidrestoreError when the decoder exports none."""
    out: list[FrameQP] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"export_side_data": "venc_params"}
        for frame in container.decode(stream):
            params = frame.side_data.get(Type.VIDEO_ENC_PARAMS)
            if params is None:
                raise VidrestoreError(f"the {stream.codec_context.name} decoder exports no quantiser for frame {len(out)}: "
                                      f"deblock reads it from H.264 video", path)
            out.append(_parse(bytes(params), frame.width, frame.height))
    return out
