"""A small residual CNN trained on the video itself, for the toolbox's learned paths.

`deblock --learned` (`deblock_net`: the input coded again -> the input) and `denoise --learned`
(`denoise_net`: Noise2Noise across aligned frames) each learn a correction of their own input
planes from pairs made from the video (internal learning, as ZSSR does for resolution: Shocher et
al., CVPR 2018). The network's input is a stack of planes whose first `outputs` are what it
corrects; the last convolution starts at zero, so the untrained network is the identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

PATCH = 48      # side of a training patch (the frame's smaller side when it is smaller)
BATCH = 8
FEATURES = 32
LAYERS = 6      # 3x3 convolutions
REACH = LAYERS  # rows of context one output row depends on


def residual_cnn(channels: int, outputs: int = 1) -> nn.Module:
    """LAYERS 3x3 convolutions of FEATURES features, from `channels` planes to the correction of the first `outputs`."""
    layers: list[nn.Module] = [nn.Conv2d(channels, FEATURES, 3, padding=1), nn.ReLU()]
    for _ in range(LAYERS - 2):
        layers += [nn.Conv2d(FEATURES, FEATURES, 3, padding=1), nn.ReLU()]
    last = nn.Conv2d(FEATURES, outputs, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def _planes(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[None] if a.ndim == 2 else a, dtype=np.float32)


def train(inputs: list[np.ndarray], targets: list[np.ndarray], steps: int, device: torch.device | str = "cpu",
          seed: int = 0, masks: list[np.ndarray] | None = None) -> nn.Module:
    """Fit `residual_cnn` to (stack (C, H, W), target (O, H, W) or (H, W)) pairs: squared error (what PSNR
    counts), weighed per pixel by `masks` (H, W) where given, on random patches whose corners lie on the
    4-pixel grid (a codec's block grid stays where it was), rotated by multiples of 90 degrees; Adam with
    cosine decay, seeded."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ys = [torch.from_numpy(_planes(y)).to(device) for y in targets]
    net = residual_cnn(inputs[0].shape[0], ys[0].shape[0]).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps), 5e-5)
    xs = [torch.from_numpy(_planes(x)).to(device) for x in inputs]
    ms = [torch.from_numpy(_planes(m)).to(device) for m in masks] if masks is not None else None
    side = min(PATCH, *(min(x.shape[-2:]) for x in xs))
    outputs = ys[0].shape[0]
    for _ in range(steps):
        xb, yb, mb = [], [], []
        for _ in range(BATCH):
            k = int(rng.integers(len(xs)))
            h, w = xs[k].shape[-2:]
            i, j = 4 * int(rng.integers((h - side) // 4 + 1)), 4 * int(rng.integers((w - side) // 4 + 1))
            xb.append(xs[k][:, i:i + side, j:j + side])
            yb.append(ys[k][:, i:i + side, j:j + side])
            if ms is not None:
                mb.append(ms[k][:, i:i + side, j:j + side])
        turn = int(rng.integers(4))
        x, y = torch.rot90(torch.stack(xb), turn, (2, 3)), torch.rot90(torch.stack(yb), turn, (2, 3))
        sq = (x[:, :outputs] + net(x) - y).square()
        if ms is None:
            loss = sq.mean()
        else:
            m = torch.rot90(torch.stack(mb), turn, (2, 3))
            loss = (sq * m).sum() / (m.sum() * outputs).clamp_min(1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def apply(net: nn.Module, stack: np.ndarray, rows: int = 256) -> np.ndarray:
    """The first planes of `stack` (C, H, W) corrected by the network, (O, H, W), in strips of `rows` rows (each
    with the network's reach of context above and below): memory stays that of a strip."""
    device = next(net.parameters()).device
    outputs = net[-1].out_channels
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None]
    out = np.empty((outputs, *stack.shape[1:]), np.float32)
    h = stack.shape[1]
    with torch.no_grad():
        for top in range(0, h, rows):
            lo, hi = max(0, top - REACH), min(h, top + rows + REACH)
            strip = x[..., lo:hi, :].to(device)
            out[:, top:top + rows] = (strip[:, :outputs] + net(strip))[0, :, top - lo:top - lo + rows].cpu().numpy()
    return out


def save(net: nn.Module, path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(path))


def load(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    state = load_file(str(path))
    last = max(int(k.split(".")[0]) for k in state)
    net = residual_cnn(state["0.weight"].shape[1], state[f"{last}.weight"].shape[0])
    net.load_state_dict(state)
    return net.to(device).eval()
