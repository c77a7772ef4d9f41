"""The learned path of `deblock`: the video teaches how its codec degrades it.

The input, coded at quantiser QP, is coded again by the same codec (libx264) at its mean QP plus
an offset (`recompress`; at offset 0 the copy is coded twice, so of lower quality than the input),
and a small residual CNN learns the way back, from the re-coded frames to the input's own (internal learning, as ZSSR does for resolution: Shocher et al., CVPR 2018); it is then
applied to the input. Its input is the frame's luma with its neighbours' lumas warped onto it by
the flow (`aligned_stack`): the coding error changes from frame to frame where the scene does not,
so the neighbours are more evidence (as in multi-frame quality enhancement, Yang et al., CVPR
2018). The network, its training and inference are `residual_cnn`'s.
"""

from __future__ import annotations

import io

import av
import numpy as np

from ..flow import FlowEstimator, backward_warp
from ..io.colour import (
    Colour,
    layout_of,
    planes_to_rgb,
    read_planes,
    rgb_to_planes,
    write_planes,
)


def recompress(frames: list[np.ndarray], qp: int) -> list[np.ndarray]:
    """Float RGB frames (H, W, 3) coded by libx264 at a constant QP (4:2:0, preset medium) and decoded, in
    memory; colour goes through vidrestore's own conversion both ways (BT.601, limited range), so that
    nothing but the coding changes the frames (PyAV's own RGB conversion shifted the luma by -1.25/255)."""
    h, w = frames[0].shape[:2]
    pad = (0, h % 2), (0, w % 2), (0, 0)      # 4:2:0 wants even sides
    layout, colour = layout_of("yuv420p"), Colour("bt601", False)
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
        stream.options = {"qp": str(int(np.clip(qp, 0, 51))), "preset": "medium", "threads": "1"}
        for rgb in frames:
            planes = rgb_to_planes(np.pad(rgb, pad, mode="edge"), layout, colour)
            for packet in stream.encode(write_planes(planes, layout, stream.width, stream.height)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r", format="h264") as src:
        return [planes_to_rgb(read_planes(f), layout, colour)[:h, :w] for f in src.decode(video=0)]


def aligned_stack(lumas: list[np.ndarray], centre: int, flow: FlowEstimator, prepared: list[np.ndarray]) -> np.ndarray:
    """(len(lumas), H, W): the centre luma first, then each other luma warped onto it along the flow."""
    out = [lumas[centre]]
    for k, y in enumerate(lumas):
        if k != centre:
            out.append(backward_warp(y, flow.flow_prepared(prepared[centre], prepared[k], y.shape))[0])
    return np.stack(out).astype(np.float32)
