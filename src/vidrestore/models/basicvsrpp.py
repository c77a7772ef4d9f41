"""BasicVSR++ in plain PyTorch, able to load the SelfHVD authors' released checkpoint.

The SelfHVD authors released their deblurring network as an mmediting BasicVSR++ checkpoint
(`pretrain.pth`; Chan et al., "BasicVSR++: Improving Video Super-Resolution with Enhanced
Propagation and Alignment", CVPR 2022; the deblurring variant, `is_low_res_input=False`). Users
who have it can run it through vidrestore's I/O with `vidrestore deblur --model pretrain.pth`.
This module rebuilds the network with the same parameter names as mmediting's, without mmcv or
torchvision: the modulated deformable convolution (Zhu et al., "Deformable ConvNets v2", CVPR
2019) is written with `grid_sample`, and SPyNet (Ranjan & Black, CVPR 2017) is included (its
weights are part of the checkpoint).

The checkpoint is read with ``torch.load(weights_only=True)``: nothing in it can run code. A file
holding anything but tensors and plain values is refused with a message saying how to re-save it.

As every recurrent model here, it is applied to a window of 2 * radius + 1 frames around each
output frame (`vidrestore.selfhvd.infer`); the authors run it over whole sequences.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VidrestoreError
from .blocks import flow_warp
from .checkpoint import check_weights
from .registry import create_model, register_model


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None, deform_groups: int) -> torch.Tensor:
    """Modulated deformable convolution, stride 1, 'same' padding (mmcv's `modulated_deform_conv2d` layout).

    Args:
        x: input (B, C, H, W).
        offset: (B, deform_groups * 2 * kh * kw, H, W): per group, per kernel tap, (dy, dx) in pixels.
        mask: (B, deform_groups * kh * kw, H, W) modulation of each tap.
        weight: (C_out, C, kh, kw); bias: (C_out,) or None.
        deform_groups: groups of input channels sharing one set of offsets and masks.

    Each tap k of output pixel p samples x bilinearly at p + k - (kh // 2, kw // 2) + offset (0
    outside the image, as mmcv), times the mask; the taps are then weighted as a convolution.
    """
    b, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    taps, g = kh * kw, deform_groups
    off = offset.view(b, g, taps, 2, h, w)
    ky, kx = torch.meshgrid(torch.arange(kh, device=x.device, dtype=x.dtype) - kh // 2,
                            torch.arange(kw, device=x.device, dtype=x.dtype) - kw // 2, indexing="ij")
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    py = ys + ky.reshape(taps, 1, 1) + off[:, :, :, 0]  # (B, G, taps, H, W)
    px = xs + kx.reshape(taps, 1, 1) + off[:, :, :, 1]
    grid = torch.stack([2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1], dim=-1)
    grid = grid.reshape(b * g, taps * h, w, 2)
    cols = F.grid_sample(x.reshape(b * g, c // g, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    cols = cols.view(b, g, c // g, taps, h, w) * mask.view(b, g, 1, taps, h, w)
    out = torch.einsum("bcthw,oct->bohw", cols.reshape(b, c, taps, h, w), weight.reshape(c_out, c, taps))
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class _ConvAct(nn.Module):
    """A convolution and an optional ReLU, named as mmcv's ConvModule (``.conv``)."""

    def __init__(self, cin: int, cout: int, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 7, 1, 3)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class _SPyNetLevel(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [8, 32, 64, 32, 16, 2]
        self.basic_module = nn.Sequential(*[_ConvAct(a, b, i < 4) for i, (a, b) in enumerate(zip(chans, chans[1:]))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """SPyNet flow ref -> supp (B, 2, H, W) in pixels, six pyramid levels (mmediting's layout)."""

    def __init__(self):
        super().__init__()
        self.basic_module = nn.ModuleList([_SPyNetLevel() for _ in range(6)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        refs, supps = [(ref - self.mean) / self.std], [(supp - self.mean) / self.std]
        for _ in range(5):
            refs.append(F.avg_pool2d(refs[-1], 2, 2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], 2, 2, count_include_pad=False))
        refs, supps = refs[::-1], supps[::-1]
        n, _, h, w = ref.shape
        flow = ref.new_zeros(n, 2, h // 32, w // 32)
        for level, module in enumerate(self.basic_module):
            up = flow if level == 0 else F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            flow = up + module(torch.cat([refs[level], flow_warp(supps[level], up, "border"), up], 1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[-2:]
        hu, wu = -(-h // 32) * 32, -(-w // 32) * 32
        ref = F.interpolate(ref, size=(hu, wu), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(hu, wu), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._flow(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        return torch.stack([flow[:, 0] * (w / wu), flow[:, 1] * (h / hu)], 1)


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class _ResBlocksWithInputConv(nn.Module):
    def __init__(self, cin: int, c: int, blocks: int):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(cin, c, 3, 1, 1), nn.LeakyReLU(0.1), nn.Sequential(*[_ResBlock(c) for _ in range(blocks)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class _PixelShufflePack(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.upsample_conv = nn.Conv2d(cin, cout * 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), 2)


class _SecondOrderAlignment(nn.Module):
    """Flow-guided deformable alignment of the two previous propagated features (BasicVSR++ sec. 3.2)."""

    def __init__(self, c: int, deform_groups: int = 16, max_residue: float = 10.0):
        super().__init__()
        self.deform_groups, self.max_residue = deform_groups, max_residue
        self.weight = nn.Parameter(torch.empty(c, 2 * c, 3, 3))
        self.bias = nn.Parameter(torch.zeros(c))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * c + 4, c, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(c, 27 * deform_groups, 3, 1, 1))
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, flow_1: torch.Tensor, flow_2: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = self.conv_offset(torch.cat([cond, flow_1, flow_2], 1)).chunk(3, dim=1)
        off_1, off_2 = (self.max_residue * torch.tanh(torch.cat([o1, o2], 1))).chunk(2, dim=1)
        off_1 = off_1 + flow_1.flip(1).repeat(1, off_1.shape[1] // 2, 1, 1)
        off_2 = off_2 + flow_2.flip(1).repeat(1, off_2.shape[1] // 2, 1, 1)
        return modulated_deform_conv2d(x, torch.cat([off_1, off_2], 1), torch.sigmoid(mask), self.weight, self.bias,
                                       self.deform_groups)


BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


class BasicVSRPlusPlus(nn.Module):
    """BasicVSR++ for restoration at scale 1 (features at a quarter of the size, output added to the input).

    Args:
        mid_channels: feature channels (the authors' checkpoint: 64).
        num_blocks: residual blocks per propagation branch (the authors' checkpoint: 15).
        radius: frames of context on each side at inference (the window is 2 * radius + 1).
    """

    aligned_input = False
    outputs = "all"
    multiple = 4

    def __init__(self, mid_channels: int = 64, num_blocks: int = 15, radius: int = 3):
        super().__init__()
        c = self.mid_channels = int(mid_channels)
        self.num_blocks, self.radius = int(num_blocks), int(radius)
        self.spynet = SPyNet()
        self.feat_extract = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.LeakyReLU(0.1), nn.Conv2d(c, c, 3, 2, 1),
                                          nn.LeakyReLU(0.1), _ResBlocksWithInputConv(c, c, 5))
        self.deform_align = nn.ModuleDict({b: _SecondOrderAlignment(c) for b in BRANCHES})
        self.backbone = nn.ModuleDict({b: _ResBlocksWithInputConv((2 + i) * c, c, self.num_blocks) for i, b in enumerate(BRANCHES)})
        self.reconstruction = _ResBlocksWithInputConv(5 * c, c, 5)
        self.upsample1 = _PixelShufflePack(c, c)
        self.upsample2 = _PixelShufflePack(c, 64)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def config(self) -> dict:
        return {"mid_channels": self.mid_channels, "num_blocks": self.num_blocks, "radius": self.radius}

    def _propagate(self, feats: dict[str, list[torch.Tensor]], flows: torch.Tensor, branch: str) -> None:
        t = len(feats["spatial"])
        order = list(range(t))[::-1] if branch.startswith("backward") else list(range(t))
        prop = flows.new_zeros(flows.shape[0], self.mid_channels, *flows.shape[-2:])
        out: list[torch.Tensor] = []
        for i, idx in enumerate(order):
            current = feats["spatial"][idx]
            if i > 0:
                flow_1 = flows[:, idx if branch.startswith("backward") else idx - 1]
                cond_1 = flow_warp(prop, flow_1, "zeros")
                feat_2, flow_2, cond_2 = torch.zeros_like(prop), torch.zeros_like(flow_1), torch.zeros_like(cond_1)
                if i > 1:
                    feat_2 = out[-2]
                    prev = flows[:, order[i - 1] if branch.startswith("backward") else order[i - 1] - 1]
                    flow_2 = flow_1 + flow_warp(prev, flow_1, "zeros")
                    cond_2 = flow_warp(feat_2, flow_2, "zeros")
                prop = self.deform_align[branch](torch.cat([prop, feat_2], 1), torch.cat([cond_1, current, cond_2], 1),
                                                 flow_1, flow_2)
            earlier = [feats[k][idx] for k in BRANCHES if k in feats and k != branch]
            prop = prop + self.backbone[branch](torch.cat([current, *earlier, prop], 1))
            out.append(prop)
        feats[branch] = out[::-1] if branch.startswith("backward") else out

    def forward(self, frames: torch.Tensor, next_flow: torch.Tensor | None = None, prev_flow: torch.Tensor | None = None,
                prior: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, T, 3, H, W), H and W multiples of 4 -> restored frames (B, T, 3, H, W); flows and prior unused."""
        b, t, c, h, w = frames.shape
        flat = frames.reshape(b * t, c, h, w)
        small = F.interpolate(flat, scale_factor=0.25, mode="bicubic").view(b, t, c, h // 4, w // 4)
        spatial = self.feat_extract(flat).view(b, t, self.mid_channels, h // 4, w // 4)
        feats: dict[str, list[torch.Tensor]] = {"spatial": [spatial[:, i] for i in range(t)]}
        a = small[:, :-1].reshape(-1, c, h // 4, w // 4)
        z = small[:, 1:].reshape(-1, c, h // 4, w // 4)
        backward = self.spynet(a, z).view(b, t - 1, 2, h // 4, w // 4) if t > 1 else None
        forward = self.spynet(z, a).view(b, t - 1, 2, h // 4, w // 4) if t > 1 else None
        for branch in BRANCHES:
            self._propagate(feats, backward if branch.startswith("backward") else forward, branch)
        outs = []
        for i in range(t):
            x = self.reconstruction(torch.cat([feats[k][i] for k in ("spatial", *BRANCHES)], 1))
            x = F.leaky_relu(self.upsample1(x), 0.1)
            x = F.leaky_relu(self.upsample2(x), 0.1)
            x = F.leaky_relu(self.conv_hr(x), 0.1)
            outs.append(self.conv_last(x) + frames[:, i])
        return torch.stack(outs, 1)


@register_model("basicvsrpp")
def _basicvsrpp(**cfg) -> BasicVSRPlusPlus:
    return BasicVSRPlusPlus(**cfg)


def load_mmedit_checkpoint(path: str | os.PathLike, radius: int = 3) -> tuple[nn.Module, dict]:
    """Rebuild BasicVSR++ from an mmediting checkpoint (the SelfHVD authors' `pretrain.pth`).

    Reads the file with ``torch.load(weights_only=True)``; takes its ``state_dict`` (the
    restorer's ``generator.`` parameters), infers the width and depth from the weights, and
    returns (model in eval mode, info) as `load_checkpoint` does.
    """
    p = Path(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise VidrestoreError("the checkpoint holds objects other than tensors and plain values, which could run code "
                              "when read, so it is not loaded; in a session you trust, save only its 'state_dict' "
                              f"entry with torch.save and pass that file ({str(err).splitlines()[0]})", p) from None
    except Exception as err:  # torch's reader raises whatever a damaged stream provokes (KeyError, EOFError, ...)
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise VidrestoreError(f"not a readable PyTorch checkpoint ({type(err).__name__}: {first})", p) from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VidrestoreError("no state dict of tensors in this checkpoint", p)
    if any(k.startswith("generator.") for k in state):  # a restorer's state: keep its generator
        state = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
    if "feat_extract.main.0.weight" in state:
        raise VidrestoreError("this is a x4 super-resolution BasicVSR++ checkpoint; deblurring needs the variant "
                              "that keeps the size (is_low_res_input=False)", p)
    if "feat_extract.0.weight" not in state or "backbone.backward_1.main.2.0.conv1.weight" not in state:
        raise VidrestoreError("not a BasicVSR++ checkpoint (no feat_extract / backbone weights)", p)
    mid = state["feat_extract.0.weight"].shape[0]
    blocks = len({k.split(".")[4] for k in state if k.startswith("backbone.backward_1.main.2.")})
    model = create_model("basicvsrpp", mid_channels=mid, num_blocks=blocks, radius=radius)
    check_weights(state, model.state_dict(), p)
    model.load_state_dict(state)
    return model.eval(), {"model": "basicvsrpp", "config": model.config(), "source": str(p.absolute())}
