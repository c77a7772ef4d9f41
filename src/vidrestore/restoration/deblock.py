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

References:
    Nosratinia, "Denoising of JPEG images by re-application of JPEG", J. VLSI Signal Processing 2001.
    ITU-T H.264 (quantiser step sizes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import VidrestoreError
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..pipeline import register_stage
from .codec_qp import FrameQP, h264_step, read_qp
from .denoise import Denoise

KAPPA = 0.12  # coding-error sigma per quantiser step (fitted, see the module docstring)


class Deblock(Denoise):
    """Two-pass windowed deblocker (`vidrestore deblock IN -o OUT`, `restore -s deblock`, first in a chain).

    Args:
        radius: neighbours each side averaged along the flow (0: spatial only).
        strength: blend between the input (0) and the full result (1).
        device: where the DCT steps run ("auto", "cpu", "cuda").
    """

    name = "deblock"
    step = 2    # measured on CRF 40: +0.1 dB over step 4
    tapered = False   # its neighbours weigh alike (the README's deblock table was measured so)

    def __init__(self, radius: int = 2, strength: float = 1.0, device: str = "auto"):
        super().__init__(radius, strength, device=device)
        self.qp: list[FrameQP] = []

    def config(self) -> dict:
        return {**super().config(), "kappa": KAPPA, "step": self.step}

    def check(self, info: VideoInfo) -> None:
        if info.codec != "h264":
            raise VidrestoreError(f"deblock reads the quantiser of H.264 video; this is {info.codec}", info.path)

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        qp = read_qp(info.path)
        np.savez(cache_dir / "qp.npz", *[q.qp for q in qp])
        (cache_dir / "qp.json").write_text(json.dumps({"blocks": [q.block for q in qp],
                                                       "mean_qp": float(np.mean([q.qp.mean() for q in qp]))}))

    def load(self, cache_dir: Path) -> None:
        meta = json.loads((cache_dir / "qp.json").read_text())
        with np.load(cache_dir / "qp.npz") as data:
            self.qp = [FrameQP(data[f"arr_{i}"], b) for i, b in enumerate(meta["blocks"])]
        self.mean_qp = meta["mean_qp"]

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
def _deblock(radius: int = 2, strength: float = 1.0, device: str = "auto") -> Deblock:
    return Deblock(radius, strength, device)
