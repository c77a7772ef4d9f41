"""LPIPS perceptual distance (Zhang et al., CVPR 2018) from a local weights file, in plain PyTorch.

Nothing is downloaded: the user points to weights they have. Accepted files (safetensors, or a
PyTorch state dict .pth/.pt), one or several whose keys are merged:

* the full state dict of the reference implementation's `lpips.LPIPS` module
  (``net.slice1.0.weight`` ... and ``lin0.model.1.weight`` ...);
* or the torchvision backbone (``features.0.weight`` ..., e.g. alexnet-owt-7be5be79.pth or
  vgg16-397923af.pth) together with the linear heads file of the reference implementation
  (``lin0.model.1.weight`` ..., e.g. weights/v0.1/alex.pth).

The network: ImageNet AlexNet or VGG-16 convolutional features, tapped after five ReLUs; each
tap is unit-normalised over channels, the squared difference is weighted per channel by the
linear head (a 1x1 convolution), averaged over space, and the five layers are summed.

References:
    Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
    Perceptual Metric", CVPR 2018.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import VidrestoreError

# (layers of torchvision's `features`, indices whose outputs are tapped, channels at each tap)
_ARCH = {
    "alex": (
        [("conv", 3, 64, 11, 4, 2), ("relu",), ("pool",), ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool",),
         ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
         ("conv", 256, 256, 3, 1, 1), ("relu",)],
        (1, 4, 7, 9, 11),
        (64, 192, 384, 256, 256),
    ),
    "vgg": (
        [*[("conv", 3, 64, 3, 1, 1), ("relu",), ("conv", 64, 64, 3, 1, 1), ("relu",), ("pool2",)],
         *[("conv", 64, 128, 3, 1, 1), ("relu",), ("conv", 128, 128, 3, 1, 1), ("relu",), ("pool2",)],
         *[("conv", 128, 256, 3, 1, 1), ("relu",), ("conv", 256, 256, 3, 1, 1), ("relu",),
           ("conv", 256, 256, 3, 1, 1), ("relu",), ("pool2",)],
         *[("conv", 256, 512, 3, 1, 1), ("relu",), ("conv", 512, 512, 3, 1, 1), ("relu",),
           ("conv", 512, 512, 3, 1, 1), ("relu",), ("pool2",)],
         *[("conv", 512, 512, 3, 1, 1), ("relu",), ("conv", 512, 512, 3, 1, 1), ("relu",),
           ("conv", 512, 512, 3, 1, 1), ("relu",)]],
        (3, 8, 15, 22, 29),
        (64, 128, 256, 512, 512),
    ),
}
# Input normalisation of the reference implementation (v0.1), for inputs in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _layer(spec: tuple) -> nn.Module:
    if spec[0] == "conv":
        _, cin, cout, k, stride, pad = spec
        return nn.Conv2d(cin, cout, k, stride, pad)
    if spec[0] == "relu":
        return nn.ReLU(inplace=False)
    return nn.MaxPool2d(3, 2) if spec[0] == "pool" else nn.MaxPool2d(2, 2)


class LPIPS(nn.Module):
    """LPIPS distance; `forward(a, b)` takes (B, 3, H, W) tensors in [0, 1] and returns (B,).

    Build it with `load_lpips(path, net)`; a fresh instance has random weights.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in _ARCH:
            raise VidrestoreError(f"LPIPS backbone must be one of {', '.join(_ARCH)}, not {net!r}")
        layers, self.taps, chans = _ARCH[net]
        self.net = net
        last = self.taps[-1]
        self.features = nn.Sequential(*[_layer(s) for s in layers[: last + 1]])
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((2 * x - 1) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = a.new_zeros(a.shape[0])
        for lin, fa, fb in zip(self.lins, self._taps(a), self._taps(b)):
            total = total + lin((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total

    @torch.no_grad()
    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS between two float RGB frames (H, W, 3) in [0, 1]."""
        ta, tb = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None] for x in (a, b))
        return float(self(ta, tb)[0])


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise VidrestoreError("LPIPS weights file not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same problem for the user
        raise VidrestoreError(f"cannot read LPIPS weights ({type(err).__name__}: {err})", path) from None
    if not isinstance(state, dict):
        raise VidrestoreError("LPIPS weights file does not hold a state dict", path)
    return state


def _rename(key: str) -> str | None:
    """Map the reference implementation's and torchvision's key names (or this module's own) onto this module's."""
    parts = key.split(".")
    if parts[0] == "net" and len(parts) == 4 and parts[1].startswith("slice"):
        return f"features.{parts[2]}.{parts[3]}"
    if parts[0] in ("features", "lins") and len(parts) == 3:
        return key
    if parts[0].startswith("lin") and parts[0][3:].isdigit() and parts[-1] == "weight":
        return f"lins.{parts[0][3:]}.weight"
    return None


def load_lpips(paths: str | os.PathLike | Sequence[str | os.PathLike] | None, net: str = "alex") -> LPIPS:
    """An LPIPS metric with weights from local file(s) (see the module docstring for the formats).

    Raises VidrestoreError with what to do when no file is given, a file is missing, or a
    weight the backbone needs is absent or has the wrong shape.
    """
    if not paths:
        raise VidrestoreError(
            "LPIPS needs a local weights file (vidrestore downloads nothing): pass the path of an lpips "
            "state dict, or of torchvision's AlexNet/VGG-16 weights plus lpips' linear heads (e.g. alex.pth)"
        )
    files = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    model = LPIPS(net)
    own = model.state_dict()
    merged: dict[str, torch.Tensor] = {}
    for f in files:
        for key, value in _read_state(f).items():
            name = _rename(key)
            if name in own:
                merged[name] = value
    needed = [k for k in own if k not in ("shift", "scale")]
    missing = [k for k in needed if k not in merged]
    if missing:
        raise VidrestoreError(
            f"LPIPS ({net}) weights incomplete: {len(missing)} of {len(needed)} tensors missing, e.g. {missing[0]} "
            f"(give both the backbone and the linear heads, for the {net} backbone)",
            files[0],
        )
    bad = [k for k in needed if tuple(merged[k].shape) != tuple(own[k].shape)]
    if bad:
        raise VidrestoreError(
            f"LPIPS weight {bad[0]} has shape {tuple(merged[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)} "
            f"(is it the {net} backbone?)",
            files[0],
        )
    model.load_state_dict({**merged, "shift": own["shift"], "scale": own["scale"]})
    return model.eval()
