"""The learned path of `deblock`: the video teaches how its codec degrades it.

The input, coded at quantiser QP, is coded again by the same codec (libx264) at its mean QP plus
an offset (`recompress`; at offset 0 the copy is coded twice, so of lower quality than the input),
and a small residual CNN learns the way back, from the re-coded frames to the input's own (internal learning, as ZSSR does for resolution: Shocher et al., CVPR 2018); it is then
applied to the input. Its input is the frame's luma with its neighbours' lumas warped onto it by
the flow (`aligned_stack`): the coding error changes from frame to frame where the scene does not,
so the neighbours are more evidence (as in multi-frame quality enhancement, Yang et al., CVPR
2018). The last convolution starts at zero, so the untrained network is the identity.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..flow import FlowEstimator, backward_warp
from ..io.colour import (
    Colour,
    layout_of,
    planes_to_rgb,
    read_planes,
    rgb_to_planes,
    write_planes,
)

PATCH = 48      # side of a training patch (the frame's smaller side when it is smaller)
BATCH = 8
FEATURES = 32
LAYERS = 6      # 3x3 convolutions
REACH = LAYERS  # rows of context one output row depends on


def recompress(frames: list[np.ndarray], qp: int) -> list[np.ndarray]:
    """Float RGB frames (H, W, 3) coded by libx264 at a constant QP (4:2:0, preset medium) and decoded, in
    memory; colour goes through vidrestore's own conversion both ways (BT.601, limited range), so that
    nothing but the coding changes the frames (PyAV's own RGB conversion shifted the luma by -1.25/255)."""
    h, w = frames[0].shape[:2]
    pad = (0, h % 2), (0, w % 2), (0, 0)      # 4:2:0 wants even sides
    layout, colour = layout_of("yuv420p"), Colour("bt601", False)
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
        stream.options = {"qp": str(int(np.clip(qp, 0, 51))), "preset": "medium", "threads": "1"}
        for rgb in frames:
            planes = rgb_to_planes(np.pad(rgb, pad, mode="edge"), layout, colour)
            for packet in stream.encode(write_planes(planes, layout, stream.width, stream.height)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r", format="h264") as src:
        return [planes_to_rgb(read_planes(f), layout, colour)[:h, :w] for f in src.decode(video=0)]


def aligned_stack(lumas: list[np.ndarray], centre: int, flow: FlowEstimator, prepared: list[np.ndarray]) -> np.ndarray:
    """(len(lumas), H, W): the centre luma first, then each other luma warped onto it along the flow."""
    out = [lumas[centre]]
    for k, y in enumerate(lumas):
        if k != centre:
            out.append(backward_warp(y, flow.flow_prepared(prepared[centre], prepared[k], y.shape))[0])
    return np.stack(out).astype(np.float32)


def deblocker(channels: int) -> nn.Module:
    """A residual CNN: LAYERS 3x3 convolutions, FEATURES features, from `channels` lumas to the centre's correction."""
    layers: list[nn.Module] = [nn.Conv2d(channels, FEATURES, 3, padding=1), nn.ReLU()]
    for _ in range(LAYERS - 2):
        layers += [nn.Conv2d(FEATURES, FEATURES, 3, padding=1), nn.ReLU()]
    last = nn.Conv2d(FEATURES, 1, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def train(inputs: list[np.ndarray], targets: list[np.ndarray], steps: int, device: torch.device | str = "cpu",
          seed: int = 0) -> nn.Module:
    """Fit `deblocker` to (stack (C, H, W), target luma (H, W)) pairs: squared error (what PSNR counts) on random patches whose corners lie
    on the 4-pixel grid (the codec's grid stays where it was), rotated by multiples of 90 degrees."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = deblocker(inputs[0].shape[0]).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps), 5e-5)
    xs = [torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in inputs]
    ys = [torch.from_numpy(np.ascontiguousarray(y))[None].to(device) for y in targets]
    side = min(PATCH, *(min(x.shape[-2:]) for x in xs))
    for _ in range(steps):
        xb, yb = [], []
        for _ in range(BATCH):
            k = int(rng.integers(len(xs)))
            h, w = xs[k].shape[-2:]
            i, j = 4 * int(rng.integers((h - side) // 4 + 1)), 4 * int(rng.integers((w - side) // 4 + 1))
            xb.append(xs[k][:, i:i + side, j:j + side])
            yb.append(ys[k][:, i:i + side, j:j + side])
        turn = int(rng.integers(4))
        x, y = torch.rot90(torch.stack(xb), turn, (2, 3)), torch.rot90(torch.stack(yb), turn, (2, 3))
        loss = (x[:, :1] + net(x) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def apply(net: nn.Module, stack: np.ndarray, rows: int = 256) -> np.ndarray:
    """The centre luma of `stack` (C, H, W) corrected by the network, in strips of `rows` rows (each with the
    network's reach of context above and below): memory stays that of a strip."""
    device = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None]
    out = np.empty(stack.shape[1:], np.float32)
    h = stack.shape[1]
    with torch.no_grad():
        for top in range(0, h, rows):
            lo, hi = max(0, top - REACH), min(h, top + rows + REACH)
            strip = x[..., lo:hi, :].to(device)
            out[top:top + rows] = (strip[:, :1] + net(strip))[0, 0, top - lo:top - lo + rows].cpu().numpy()
    return out


def save(net: nn.Module, path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(path))


def load(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    state = load_file(str(path))
    net = deblocker(state["0.weight"].shape[1])
    net.load_state_dict(state)
    return net.to(device).eval()
