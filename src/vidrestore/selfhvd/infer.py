"""Inference: a trained network applied to every frame, as a windowed pipeline stage.

For frame i the stage gets the window i-k..i+k from the pipeline (the decoded frames at full
precision), prepares it as in training (window models: neighbours warped onto frame i with the
analysis' consecutive flows, and the fusion prior, `vidrestore.selfhvd.window`; recurrent
models: frames in place with their flows), and runs the network over the full-resolution frame
in overlapping tiles (`vidrestore.models.tiling`). A window network's output is then pulled
towards its fusion prior where sharper neighbours disagree strongly with the frame or lose
their forward-backward round trip (`guard_moving`), and an output less sharp than its input
frame is replaced by the frame (`flow.fusion.never_blurrier`).
The output of frame i depends only on its window, so the pipeline can resume mid-video. (A
recurrent model therefore runs over the whole window of every frame, 2k+1 frames per output.)
"""

from __future__ import annotations

import contextlib
import hashlib

import cv2
import numpy as np
import torch
from torch import nn

from ..flow.fusion import never_blurrier
from ..models.tiling import DEFAULT_MARGIN, DEFAULT_TILE, run_tiled
from ..pipeline import Stage, Window
from ..util.memory import reuse_freed_memory
from .analysis import VideoAnalysis, to_size
from .selection import SHARPER_NEIGHBOUR, kept_sharp
from .window import LOST_PX, fused, moving_share, window_input

GUARD_SIGMA = 3.0  # px: the moving-object guard's map is smoothed so that its edges leave no seam


def model_digest(model: nn.Module) -> str:
    """A short hash of a model's weights (part of a render job's key)."""
    h = hashlib.blake2b(digest_size=10)
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def restore_frame(model: nn.Module, analysis: VideoAnalysis, frames: list[np.ndarray], indices: list[int], centre: int,
                  device: torch.device, tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN) -> np.ndarray:
    """The network's output for frame indices[centre] from its window (float32 RGB (H, W, 3) in [0, 1])."""
    i = indices[centre]
    nf = pf = prior = None
    box = (0, analysis.height, 0, analysis.width)
    trips: dict[int, np.ndarray] = {}  # round trips, computed once for the prior and the moving guard
    if model.aligned_input:
        aligned, p = window_input(analysis, i, indices, centre, box, lambda t: frames[indices.index(t)], trips)
        prior = torch.from_numpy(p)[None].to(device)
        x = torch.from_numpy(aligned).permute(0, 3, 1, 2)[None].to(device)
    else:
        nf, pf = (torch.from_numpy(x).permute(0, 3, 1, 2)[None].to(device) for x in analysis.consecutive_flows(box, indices))
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)[None].to(device)
    with network_precision(model, device):
        out = run_tiled(model, [x, nf, pf, prior], model.multiple, tile, margin)
    k = 0 if model.outputs == "centre" else centre
    restored = out[0, k].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()
    if model.aligned_input:
        restored = guard_moving(restored, fused(aligned, p), moving_share(analysis, i, indices, centre, aligned, trips))
    return restored


def add_change(frame: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """`frame` plus what deblurring changed at the working size (`after - before`), upscaled onto it
    (bicubic); `after` itself when the working size is the frame's. The frame keeps its own fine
    detail, and the network's correction, which at the working size reaches twice as far for a
    frame of twice the size, is added to it."""
    if after.shape == frame.shape:
        return after
    change = cv2.resize(after - before, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(frame + change, 0.0, 1.0)


def network_precision(model: nn.Module, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for window networks on CPUs that compute bf16 natively (AVX512-BF16, AMX).

    On the CPU the network's time goes to memory-bound element-wise work on full-size activations,
    which bf16 halves; a window network's output is a correction (fusion logits, a residual) over
    a float32 blend of the frames, so the lost mantissa bits do not show in it.
    """
    native = device.type == "cpu" and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    if native and model.aligned_input:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def guard_moving(restored: np.ndarray, fusion: np.ndarray, share: np.ndarray) -> np.ndarray:
    """The network's output pulled towards the fusion prior by `moving_share` (smoothed): where
    sharper neighbours disagree strongly with the frame or their round trip fails (an object moved,
    uncovering or covering the background), the fusion has already left them out, while the
    network, which sees every aligned neighbour, can carry their content (issue 17: a moving object
    must not be made worse)."""
    m = cv2.GaussianBlur(share, (0, 0), GUARD_SIGMA)[..., None]
    return restored + m * (fusion - restored)


class DeblurStage(Stage):
    """Windowed stage running a trained deblurring network (`vidrestore deblur`).

    Frames the analysis selected as sharp are passed through unchanged: they are what the
    network learnt from, and a network that alters them (SEVD trains it to sharpen beyond its
    labels) can only move them away from themselves. The exception is a selected frame with a
    clearly sharper frame in its window, which still has blur to remove (`selection.kept_sharp`).
    A frame the network would make less sharp is passed through too (`never_blurrier`).

    When the analysis works at a smaller size than the frames (`AnalysisSettings.max_downscale`), the
    window is brought to that size, and the network's change is upscaled onto the full frame
    (`add_change`).

    Args:
        model: the network (eval mode, on `device`).
        analysis: the input video's analysis (its consecutive flows align the windows).
        device: where the network runs.
        tile, margin: tiling (see `vidrestore.models.tiling`).
    """

    name = "selfhvd"

    def __init__(self, model: nn.Module, analysis: VideoAnalysis, device: torch.device,
                 tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN):
        self.model = model.to(memory_format=torch.channels_last)  # about 20 % faster on CPU
        self.analysis, self.device = analysis, device
        self.radius = model.radius
        self.tile, self.margin = tile, margin
        self.digest = model_digest(model)
        self.kept = kept_sharp(analysis.selection.sharp, analysis.laplacian, self.radius)
        if device.type == "cpu":  # full-size tiles: stop faulting in fresh pages for every layer (util.memory)
            reuse_freed_memory()

    def config(self) -> dict:
        return {"model": self.digest, "analysis": self.analysis.dir.name, "tile": self.tile, "margin": self.margin,
                "sharp_frames": f"kept unless {SHARPER_NEIGHBOUR}x sharper within the window",
                "moving_guard": {"smoothing": GUARD_SIGMA, "counts": f"disagreement, round trip missing by {LOST_PX} px"},
                "never_blurrier": "edge_variance: laplacian variance at half size less the noise's"}

    def process(self, window: Window) -> np.ndarray:
        if self.kept[window.index]:  # a sharp frame is its own best estimate
            return window.frame.rgb
        small = [to_size(f.rgb, self.analysis.size) for f in window.frames]
        restored = restore_frame(self.model, self.analysis, small, [f.index for f in window.frames],
                                 window.center, self.device, self.tile, self.margin)
        return add_change(window.frame.rgb, small[window.center], never_blurrier(small[window.center], restored))
