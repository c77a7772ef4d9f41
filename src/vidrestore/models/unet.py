"""The default CPU-friendly multi-frame deblurring network: a compact U-Net of gated blocks.

Input: a window of 2k+1 frames whose neighbours are already aligned onto the centre frame by
optical flow; output: the centre frame plus a predicted residual. The body is a three-level
U-Net (stride-2 convolutions down, pixel shuffle up, additive skips) of NAFNet-style gated
blocks without global pooling, so a frame can be processed in overlapping tiles with the same
result as whole (`vidrestore.models.tiling`).

With `fusion` (the default) the residual comes in two parts: per-pixel softmax weights over the
aligned frames and a direct correction on top. The weights' logits are a prior given with the
input (lucky-frame fusion's log-weights, `vidrestore.selfhvd.window`) plus what the network
predicts; the prior's normalised weights are also input channels. The last convolution starts
at zero, so an untrained model is exactly the prior's fusion (the centre frame alone when no
prior is given), and training learns what that classical fusion gets wrong. A handheld video's
sharp clues sit in its neighbouring frames; deciding where to take them is a far smaller
problem than synthesising detail, and it is what a network trained for minutes on a CPU
learns first (without the prior, 300 steps of training on ground-truth labels gained nothing).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import GatedBlock
from .registry import register_model


class WindowUNet(nn.Module):
    """U-Net over an aligned window (see the module docstring).

    Args:
        radius: k, frames on each side of the centre (window 2k+1).
        width: channels at full resolution (doubled at each of the `levels` downsamplings).
        enc_blocks, mid_blocks, dec_blocks: gated blocks per level.
        fusion: blend the aligned frames with weights from the prior and the network, plus the residual.
    """

    aligned_input = True
    outputs = "centre"

    def __init__(self, radius: int = 4, width: int = 16, enc_blocks: tuple[int, ...] = (1, 1, 2), mid_blocks: int = 2,
                 dec_blocks: tuple[int, ...] = (1, 1, 1), fusion: bool = True):
        super().__init__()
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError("enc_blocks and dec_blocks need one entry per level")
        self.radius, self.width = int(radius), int(width)
        self.enc_blocks, self.mid_blocks, self.dec_blocks = tuple(enc_blocks), int(mid_blocks), tuple(dec_blocks)
        self.fusion = bool(fusion)
        frames = 2 * self.radius + 1
        self.intro = nn.Conv2d((4 if self.fusion else 3) * frames, width, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = width
        for n in self.enc_blocks:
            self.encoders.append(nn.Sequential(*[GatedBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[GatedBlock(c) for _ in range(self.mid_blocks)])
        for n in reversed(self.dec_blocks):
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[GatedBlock(c) for _ in range(n)]))
        self.ending = nn.Conv2d(width, 3 + (frames if self.fusion else 0), 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (the tiler pads to it)."""
        return 2 ** len(self.enc_blocks)

    def config(self) -> dict:
        return {"radius": self.radius, "width": self.width, "enc_blocks": list(self.enc_blocks),
                "mid_blocks": self.mid_blocks, "dec_blocks": list(self.dec_blocks), "fusion": self.fusion}

    def forward(self, frames: torch.Tensor, next_flow: torch.Tensor | None = None, prev_flow: torch.Tensor | None = None,
                prior: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c, h, w = frames.shape
        centre = frames[:, t // 2]
        x = frames.reshape(b, t * c, h, w)
        if self.fusion:
            if prior is None:
                prior = frames.new_full((b, t, h, w), -30.0)
                prior[:, t // 2] = 0
            x = torch.cat([x, torch.softmax(prior, dim=1)], 1)
        x = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(up(x) + skip)
        y = self.ending(x)
        if not self.fusion:
            return (centre + y)[:, None]
        weights = torch.softmax(prior + y[:, 3:], dim=1)
        fused = (weights[:, :, None] * frames).sum(1)
        return (fused + y[:, :3])[:, None]


@register_model("unet")
def _unet(**cfg) -> WindowUNet:
    return WindowUNet(**cfg)
