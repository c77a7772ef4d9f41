"""Learned refinement of the multi-frame fusion from the video itself (internal learning).

ZSSR (Shocher, Cohen, Irani, "Zero-shot super-resolution using deep internal learning", CVPR 2018)
trains a small network on one image: the image downscaled by the scale factor is the input, the
image itself the target, and the network then upscales the image. Here the input of a training
pair is the multi-frame fusion (`kernel_fusion`) of a window of frames downscaled by the factor
(with the degradation back-projection assumes, `kernel_fusion.downscale`: the blur estimated from
the video, the sampling grid stated), and the target the
window's centre frame; the network, a residual CNN on luma, then refines the fusion of the
original frames. No external data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

PATCH = 32      # side of a training patch (output pixels; the frame's smaller side when it is smaller)
BATCH = 8
FEATURES = 32
REACH = 6       # rows of context one output row depends on (six 3x3 convolutions)


def refiner() -> nn.Module:
    """A residual CNN on luma: 6 3x3 convolutions, 32 features (its output is added to its input)."""
    layers: list[nn.Module] = [nn.Conv2d(1, FEATURES, 3, padding=1), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Conv2d(FEATURES, FEATURES, 3, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(FEATURES, 1, 3, padding=1))
    return nn.Sequential(*layers)


def train(pairs: list[tuple[np.ndarray, np.ndarray]], steps: int, seed: int = 0) -> nn.Module:
    """Fit `refiner` to (fused, target) luma pairs: L1 on random patches, rotated by multiples of 90 degrees."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = refiner()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    xs = [torch.from_numpy(np.ascontiguousarray(x))[None, None] for x, _ in pairs]
    ys = [torch.from_numpy(np.ascontiguousarray(y))[None, None] for _, y in pairs]
    side = min(PATCH, *(min(x.shape[-2:]) for x in xs))
    for _ in range(steps):
        xb, yb = [], []
        for _ in range(BATCH):
            k = int(rng.integers(len(xs)))
            h, w = xs[k].shape[-2:]
            i, j = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            xb.append(xs[k][..., i:i + side, j:j + side])
            yb.append(ys[k][..., i:i + side, j:j + side])
        turn = int(rng.integers(4))
        x, y = torch.rot90(torch.cat(xb), turn, (2, 3)), torch.rot90(torch.cat(yb), turn, (2, 3))
        loss = (x + net(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def refine(net: nn.Module, luma: np.ndarray, rows: int = 256) -> np.ndarray:
    """The fused luma (H, W) refined by the network, in strips of `rows` rows (each with the network's
    reach of context above and below), so memory stays that of a strip whatever the output size."""
    x = torch.from_numpy(np.ascontiguousarray(luma, dtype=np.float32))[None, None]
    out = np.empty_like(luma, dtype=np.float32)
    h = luma.shape[0]
    with torch.no_grad():
        for top in range(0, h, rows):
            lo, hi = max(0, top - REACH), min(h, top + rows + REACH)
            strip = x[..., lo:hi, :]
            out[top:top + rows] = (strip + net(strip))[0, 0, top - lo:top - lo + rows].numpy()
    return out


def save(net: nn.Module, path: Path) -> None:
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def load(path: Path) -> nn.Module:
    net = refiner()
    net.load_state_dict(load_file(str(path)))
    return net.eval()
