"""The quantiser a video was coded with, per frame and per block, as the decoder exports it.

FFmpeg's decoders of H.264 (and a few others) attach the quantisation parameters they read to
each frame when asked (`export_side_data=venc_params`: AVVideoEncParams, the frame's QP and a
delta per coded block). The deblocker reads them to know where, and how coarsely, each block
was quantised: the block grid and the quantiser, straight from the bitstream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np
from av.sidedata.encparams import VideoEncParams
from av.sidedata.sidedata import Type

from ..errors import VidrestoreError

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


def _frame_qp(params: VideoEncParams, width: int, height: int) -> FrameQP:
    """One frame's quantiser from the decoder's AVVideoEncParams (PyAV's typed view of them)."""
    if params.codec_type != H264:
        raise VidrestoreError(f"quantiser parameters of type {params.codec_type} are not supported (only H.264's)")
    if not params.nb_blocks:
        return FrameQP(np.full((1, 1), params.qp, np.int16), max(width, height))
    return FrameQP(params.qp_map().astype(np.int16), params.block_params(0).w)


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
            out.append(_frame_qp(params, frame.width, frame.height))
    return out
