"""Learned refinement of the multi-frame fusion: internal learning from the video itself, from a
start the project trained and ships at x2.

ZSSR (Shocher, Cohen, Irani, "Zero-shot super-resolution using deep internal learning", CVPR 2018)
trains a small network on one image: the image downscaled by the scale factor is the input, the
image itself the target, and the network then upscales the image. Here the input of a training
pair is the multi-frame fusion (`kernel_fusion`) of a window of frames downscaled by the factor
(with the degradation back-projection assumes, `kernel_fusion.downscale`: the blur estimated from
the video, the sampling grid stated), and the target the window's centre frame; the network, a
residual CNN on luma, then refines the fusion of the original frames.

At x3 and x4 the network is trained from scratch (no external data). At x2 it starts from weights
trained on external pictures (`weights/upscale_x2.safetensors`, made by
`scripts/train_upscale_x2.py`: area-downscaled luma, single-frame bicubic and one back-projection
step -> the picture), which stay fixed; a small head trained on the same internal pairs sees the
fusion and the start's output and corrects the latter (`Adapted`). Adapting the start's own
weights to a video's few frames learned them by heart (README, "Super-resolution").
"""

from __future__ import annotations

import hashlib
import math
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

PATCH = 32          # side of a training patch (output pixels; the frame's smaller side when it is smaller)
BATCH = 8
PRETRAINED = {2: "upscale_x2.safetensors"}   # scale -> shipped start (package folder `weights`)
SHAPES = {2: (2, 64, 8)}                     # scale -> the start's (pixel-unshuffle factor, features, hidden layers) as trained by default
SCRATCH = (1, 32, 4)                         # the refiner trained on the video alone: (factor, features, hidden)


def _convs(planes: int, features: int, hidden: int, outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(planes, features, 3, padding=1), nn.ReLU()]
    for _ in range(hidden):
        layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(features, outputs, 3, padding=1))
    return nn.Sequential(*layers)


class Refiner(nn.Module):
    """A residual CNN on luma: the input is rearranged into `factor` x `factor` phases (pixel
    unshuffle, so the convolutions run at the input video's resolution), passed through 3x3
    convolutions with `features` features (`hidden` of them between the first and the last) and
    rearranged back; its output is added to its input."""

    def __init__(self, factor: int = 1, features: int = 32, hidden: int = 4):
        super().__init__()
        self.factor = factor
        self.body = _convs(factor * factor, features, hidden, factor * factor)
        self.reach = factor * (hidden + 2)   # rows of context one output row depends on

    def planes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def correct(self, planes: torch.Tensor) -> torch.Tensor:
        return planes + F.pixel_shuffle(self.body(F.pixel_unshuffle(planes, self.factor)), self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.correct(self.planes(x))


class Adapted(nn.Module):
    """The shipped start (fixed) followed by a small head trained on the video: the head sees the
    fusion and the start's output and corrects the latter. Adapting the start's own weights to the
    video's few frames instead learned them by heart (README, "Super-resolution")."""

    def __init__(self, start: Refiner):
        super().__init__()
        _, features, hidden = SCRATCH
        self.start = start.requires_grad_(False)
        self.head = _convs(2, features, hidden, 1)
        self.factor, self.reach = start.factor, start.reach + hidden + 2

    def planes(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.start(x)], 1)

    def correct(self, planes: torch.Tensor) -> torch.Tensor:
        return planes[:, 1:] + self.head(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.correct(self.planes(x))


def refiner(scale: int = 4) -> Refiner:
    """The refiner's shape at `scale`, untrained."""
    return Refiner(*SHAPES.get(scale, SCRATCH))


def _shipped(scale: int):
    """The shipped start's file at `scale` (a package resource), or None."""
    name = PRETRAINED.get(scale)
    return None if name is None else resources.files("vidrestore") / "weights" / name


def shape_of(weights: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(pixel-unshuffle factor, features, hidden layers) of a `Refiner`'s weights: a start trained at
    another size (`scripts/train_upscale_x2.py --features --hidden`) loads as what it is."""
    first = weights["body.0.weight"]
    convs = sum(1 for k in weights if k.startswith("body.") and k.endswith(".weight"))
    return math.isqrt(first.shape[1]), first.shape[0], convs - 2


def pretrained(scale: int) -> Refiner | None:
    """The shipped start at `scale` (None where the refiner starts from scratch)."""
    shipped = _shipped(scale)
    if shipped is None:
        return None
    with resources.as_file(shipped) as path:
        weights = load_file(str(path))
    net = Refiner(*shape_of(weights))
    net.load_state_dict(weights)
    return net.eval()


@cache
def start_id(scale: int) -> str | None:
    """A digest of the shipped start at `scale` (None where there is none): analyses cached with a
    refiner adapted from it are keyed on it."""
    shipped = _shipped(scale)
    return None if shipped is None else hashlib.sha256(shipped.read_bytes()).hexdigest()[:16]


def _untrained(scale: int) -> Refiner | Adapted:
    start = pretrained(scale)
    return Refiner(*SCRATCH) if start is None else Adapted(start)


def train(pairs: list[tuple[np.ndarray, np.ndarray]], steps: int, scale: int = 4, seed: int = 0) -> Refiner | Adapted:
    """Fit the refiner to (fused, target) luma pairs: L1 on random patches, rotated by multiples of
    90 degrees; where a shipped start exists, only the head after it is trained."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _untrained(scale)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], 1e-3)
    with torch.no_grad():
        xs = [net.planes(torch.from_numpy(np.ascontiguousarray(x))[None, None]) for x, _ in pairs]
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
        loss = (net.correct(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def refine(net: Refiner | Adapted, luma: np.ndarray, rows: int = 256) -> np.ndarray:
    """The fused luma (H, W) refined by the network, in strips of `rows` rows (each with the network's
    reach of context above and below), so memory stays that of a strip whatever the output size.
    Sizes the pixel unshuffle does not divide are padded by repeating the edge."""
    f = net.factor
    h, w = luma.shape
    padded = np.pad(np.asarray(luma, dtype=np.float32), ((0, -h % f), (0, -w % f)), mode="edge")
    x = torch.from_numpy(padded)[None, None]
    out = np.empty_like(padded)
    rows, reach = max(f, rows // f * f), -(-net.reach // f) * f
    with torch.no_grad():
        for top in range(0, padded.shape[0], rows):
            lo, hi = max(0, top - reach), min(padded.shape[0], top + rows + reach)
            out[top:top + rows] = net(x[..., lo:hi, :])[0, 0, top - lo:top - lo + rows].numpy()
    return out[:h, :w]


def save(net: Refiner | Adapted, path: Path) -> None:
    """The trained weights (the head alone after a shipped start, which is keyed by `start_id`)."""
    trained = net.head if isinstance(net, Adapted) else net
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))


def load(path: Path, scale: int) -> Refiner | Adapted:
    net = _untrained(scale)
    (net.head if isinstance(net, Adapted) else net).load_state_dict(load_file(str(path)))
    return net.eval()
