"""A recurrent backbone: bidirectional propagation of features along optical flow (BasicVSR-style).

Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution and
Beyond" (CVPR 2021), at scale 1 for restoration: per-frame features are propagated backward
(from the last frame to the first) and forward, each step warping the hidden state onto the
current frame with the flow between consecutive frames, and the two are fused into a residual
on each frame. BasicVSR learns its flow with a pretrained SPyNet; here the flows are the
video's own cached DIS flows, so nothing pretrained is needed. Heavier than the window U-Net
(every layer at full resolution), it suits a GPU; it shows SelfHVD's training is independent
of the architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import GatedBlock, flow_warp
from .registry import register_model


def _branch(cin: int, c: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, c, 3, padding=1), *[GatedBlock(c) for _ in range(blocks)])


class BiRecurrent(nn.Module):
    """Bidirectional recurrent restorer (see the module docstring).

    Args:
        radius: frames of context on each side used at inference and training clips of 2*radius+1.
        width: feature channels.
        blocks: gated blocks per propagation branch.
    """

    aligned_input = False
    outputs = "all"
    multiple = 1

    def __init__(self, radius: int = 3, width: int = 24, blocks: int = 3):
        super().__init__()
        self.radius, self.width, self.blocks = int(radius), int(width), int(blocks)
        self.extract = _branch(3, width, 1)
        self.backward_branch = _branch(2 * width, width, blocks)
        self.forward_branch = _branch(3 * width, width, blocks)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def config(self) -> dict:
        return {"radius": self.radius, "width": self.width, "blocks": self.blocks}

    def forward(self, frames: torch.Tensor, next_flow: torch.Tensor, prev_flow: torch.Tensor,
                prior: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _, h, w = frames.shape
        feats = [self.extract(frames[:, i]) for i in range(t)]
        state = frames.new_zeros(b, self.width, h, w)
        back: list[torch.Tensor] = [state] * t
        for i in reversed(range(t)):
            if i < t - 1:
                state = flow_warp(state, next_flow[:, i])
            state = self.backward_branch(torch.cat([feats[i], state], 1))
            back[i] = state
        state = frames.new_zeros(b, self.width, h, w)
        outs = []
        for i in range(t):
            if i > 0:
                state = flow_warp(state, prev_flow[:, i - 1])
            state = self.forward_branch(torch.cat([feats[i], back[i], state], 1))
            outs.append(frames[:, i] + self.ending(state))
        return torch.stack(outs, 1)


@register_model("recurrent")
def _recurrent(**cfg) -> BiRecurrent:
    return BiRecurrent(**cfg)
