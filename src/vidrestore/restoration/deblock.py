"""Classical deblocking of H.264 video, from the quantiser the bitstream states.

A block coded at quantisation parameter QP lost its DCT coefficients to a quantiser of step
Q(QP) (`codec_qp.h264_step`: 1 at QP 4, doubling every 6): the error is largest where QP is high and
follows the macroblock grid. The analysis pass reads every frame's QP map from the decoder
(`codec_qp.read_qp`); rendering treats the coding error as noise of sigma = KAPPA * Q(QP) / 255,
macroblock by macroblock, and removes it as `denoise` removes noise: flow-aligned temporal
non-local means (the error changes from frame to frame where the scene does not), then sliding
8x8 DCT hard thresholding and Wiener shrinkage (which is what SPP-style deblocking does: DCT
re-thresholding at shifted grids, Nosratinia 2001), at every second pixel.

KAPPA was fitted on synthesized H.264 copies of one shared sharp clip (`vidrestore synth compress`,
sam2_01_dog at CRF 35 and 40, half size) and is checked on other footage by the benchmark
(benchmarks/denoise.py). The deblocker reads the quantiser of its input file: put it first in a
chain of stages.

The learned path (`learned=True`, `deblock_net`) re-codes frames of the input at the input's mean QP
plus `offset` and trains a small residual CNN, within a step budget, to map them back to the
input, the frame's luma with its `net_radius` neighbours each side warped onto it by the flow;
the trained network then corrects the input's luma. It is trained in the analysis pass and cached
with the quantiser (resumable).

References:
    Nosratinia, "Denoising of JPEG images by re-application of JPEG", J. VLSI Signal Processing 2001.
    ITU-T H.264 (quantiser step sizes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from torch import nn

from ..errors import VidrestoreError
from ..flow import create_flow
from ..io.colour import luma
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import Window, register_stage
from . import deblock_net, residual_cnn
from .codec_qp import FrameQP, h264_step, read_qp
from .denoise import Denoise

KAPPA = 0.12  # coding-error sigma per quantiser step (fitted, see the module docstring)
NET_VERSION = 1       # bump when the learned path's analysis changes meaning (cached analyses are keyed on it)
TRAIN_SEGMENTS = 2    # runs of consecutive frames, spread over the video, re-coded for training
SEGMENT_FRAMES = 8    # frames of each run


class Deblock(Denoise):
    """Two-pass windowed deblocker (`vidrestore deblock IN -o OUT`, `restore -s deblock`, first in a chain).

    Args:
        radius: neighbours each side averaged along the flow (0: spatial only; the classical path).
        strength: blend between the input (0) and the full result (1).
        device: where the DCT steps, or the network's training and inference, run ("auto", "cpu", "cuda").
        learned: the learned path (module docstring) instead of the classical one.
        steps: the learned path's training steps.
        offset: QP the training copies are coded at, over the input's mean QP (capped at 51; at 0 they are coded
            twice at the input's QP. Measured on sam2_01_dog CRF 40 at 1500 steps: +0.03 dB at 0, 0.00 at 4).
        net_radius: the learned path's neighbours each side, warped onto the frame as the network's input.
    """

    name = "deblock"
    step = 2    # measured on CRF 40: +0.1 dB over step 4
    tapered = False   # its neighbours weigh alike (the README's deblock table was measured so)

    def __init__(self, radius: int = 2, strength: float = 1.0, device: str = "auto", learned: bool = False,
                 steps: int = 1500, offset: int = 0, net_radius: int = 1):
        if steps < 1 or net_radius < 0:
            raise VidrestoreError(f"{self.name} needs steps >= 1 and net_radius >= 0 (got {steps}, {net_radius})")
        super().__init__(radius, strength, device=device)
        self.learned, self.steps, self.offset, self.net_radius = bool(learned), int(steps), int(offset), int(net_radius)
        if self.learned:
            self.radius = self.net_radius
        self.qp: list[FrameQP] = []
        self.net = None
        self.net_flow = create_flow("dis", preset="medium")
        self._net_prepared: dict[int, np.ndarray] = {}    # the learned path's flow inputs, by frame index

    def config(self) -> dict:
        learned = {"learned": {"version": NET_VERSION, "steps": self.steps, "offset": self.offset,
                               "net_radius": self.net_radius, "flow": self.net_flow.config()}} if self.learned else {}
        return {**super().config(), "kappa": KAPPA, "step": self.step, **learned}

    def check(self, info: VideoInfo) -> None:
        if info.codec != "h264":
            raise VidrestoreError(f"deblock reads the quantiser of H.264 video; this is {info.codec}", info.path)

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        qp = read_qp(info.path)
        np.savez(cache_dir / "qp.npz", *[q.qp for q in qp])
        mean_qp = float(np.mean([q.qp.mean() for q in qp]))
        (cache_dir / "qp.json").write_text(json.dumps({"blocks": [q.block for q in qp], "mean_qp": mean_qp}))
        if self.learned:
            net = self.train(frames, len(qp), round(mean_qp) + self.offset)
            residual_cnn.save(net, cache_dir / "deblocker.safetensors")

    def train(self, frames: Iterator[Frame], count: int, qp: int) -> nn.Module:
        """The learned path's network, trained on TRAIN_SEGMENTS runs of frames spread over the video, each
        re-coded at `qp` (`deblock_net.recompress`), against the input."""
        starts = np.linspace(0, max(0, count - SEGMENT_FRAMES), TRAIN_SEGMENTS).round().astype(int)
        wanted = {int(s) + k for s in starts for k in range(SEGMENT_FRAMES)}
        kept = {f.index: f.rgb for f in frames if f.index in wanted}
        inputs, targets = [], []
        for run in dict.fromkeys(tuple(i for i in range(s, s + SEGMENT_FRAMES) if i in kept) for s in starts):
            if not run:
                continue
            coded = [luma(x) for x in deblock_net.recompress([kept[i] for i in run], qp)]
            prepared = [self.net_flow.prepare(y) for y in coded]
            for c in range(len(run)):
                near = [min(max(c + d, 0), len(run) - 1) for d in range(-self.net_radius, self.net_radius + 1)]
                inputs.append(deblock_net.aligned_stack([coded[k] for k in near], self.net_radius, self.net_flow,
                                                        [prepared[k] for k in near]))
                targets.append(luma(kept[run[c]]))
        return residual_cnn.train(inputs, targets, self.steps, self.device)

    def load(self, cache_dir: Path) -> None:
        meta = json.loads((cache_dir / "qp.json").read_text())
        with np.load(cache_dir / "qp.npz") as data:
            self.qp = [FrameQP(data[f"arr_{i}"], b) for i, b in enumerate(meta["blocks"])]
        self.mean_qp = meta["mean_qp"]
        if self.learned:
            self.net = residual_cnn.load(cache_dir / "deblocker.safetensors", self.device)

    def process(self, window: Window) -> np.ndarray:
        if not self.learned:
            return super().process(window)
        if self.net is None:
            raise VidrestoreError("deblock's learned path needs its analysis pass: run it through vidrestore.restore()")
        x = window.frame.rgb.astype(np.float32, copy=False)
        lumas = [luma(f.rgb) for f in window.frames]
        cache = self._net_prepared
        for f, y in zip(window.frames, lumas):
            if f.index not in cache:
                cache[f.index] = self.net_flow.prepare(y)
        for old in [i for i in cache if i < window.index - self.radius]:
            del cache[old]
        stack = deblock_net.aligned_stack(lumas, window.center, self.net_flow, [cache[f.index] for f in window.frames])
        out = x + (residual_cnn.apply(self.net, stack)[0] - lumas[window.center])[..., None] * np.float32(self.strength)
        return np.clip(out, 0.0, 1.0, out=out)

    @property
    def summary(self) -> dict:
        return {"mean_qp": round(self.mean_qp, 2)} if self.qp else {}

    def variance(self, x: np.ndarray, index: int) -> np.ndarray:
        if not self.qp:
            raise VidrestoreError("deblock needs its analysis pass: run it through vidrestore.restore()")
        if index >= len(self.qp):
            raise VidrestoreError(f"frame {index} is past the {len(self.qp)} frames whose quantiser was read")
        sigma = KAPPA * h264_step(self.qp[index].pixel_map(*x.shape[:2])) / 255.0
        return sigma * sigma


@register_stage("deblock")
def _deblock(radius: int = 2, strength: float = 1.0, device: str = "auto", learned: bool = False, steps: int = 1500,
             offset: int = 0, net_radius: int = 1) -> Deblock:
    return Deblock(radius, strength, device, learned, steps, offset, net_radius)
