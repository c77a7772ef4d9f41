"""Building blocks shared by the networks: NAFNet's gated block without global pooling, flow warping."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of each pixel (NAFNet's LayerNorm2d).

    Computed by `F.layer_norm` on the channels-last view: 5-10x faster on CPU than the
    mean/variance formula, and free of copies when the tensor is stored channels-last.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class GatedBlock(nn.Module):
    """NAFNet block (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022) without its
    simplified channel attention, whose global average pooling would make the output of a tile
    depend on the whole tile: with only local operations, tiled inference equals untiled."""

    def __init__(self, c: int, expand: int = 2):
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(c), LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, c * expand, 1)
        self.dw = nn.Conv2d(c * expand, c * expand, 3, padding=1, groups=c * expand)
        self.conv2 = nn.Conv2d(c * expand // 2, c, 1)
        self.ffn1 = nn.Conv2d(c, c * expand, 1)
        self.ffn2 = nn.Conv2d(c * expand // 2, c, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, c, 1, 1))

    @staticmethod
    def gate(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.beta * self.conv2(self.gate(self.dw(self.conv1(self.norm1(x)))))
        return y + self.gamma * self.ffn2(self.gate(self.ffn1(self.norm2(y))))


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp x (B, C, H, W) by flow (B, 2, H, W) in pixels: out(p) = x(p + flow(p)), bilinear.

    Samples outside x repeat its border (default) or are 0 with ``padding_mode="zeros"``.
    """
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    gx = 2 * (xs + flow[:, 0]) / max(w - 1, 1) - 1
    gy = 2 * (ys + flow[:, 1]) / max(h - 1, 1) - 1
    return F.grid_sample(x, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode=padding_mode, align_corners=True)
