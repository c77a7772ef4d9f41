"""SelfHVD inference speed at 720p: frames per second of the default network, with and without torch.compile.

    python benchmarks/deblur_speed.py [--device auto|cpu|cuda] [--frames 6]

Measures `restore_frame` (aligning the window with the cached flows, the fusion prior and the
network over overlapping tiles) on a 1280x720 clip made from the shared "dog" footage (or a
synthetic clip when the footage is absent), with the untrained default U-Net (speed does not
depend on the weights). Rows: eager, channels-last, torch.compile (its first call, which
compiles, is timed apart), each with `deblur`'s tiles and whole frames, as `deblur` runs them (on a CPU
with native bf16, under bf16 autocast, `infer.network_precision`, with freed memory reused,
`util.memory`); on the CPU first channels-last without either, then with the second alone; on
CUDA also bf16 autocast. Then channels-last at tiles of 512 px, the default and whole frames, at
1280x720 and at 1920x1080 (the same frames upscaled).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import torch

from vidrestore.io import EncodeSettings, write_video
from vidrestore.models import create_model
from vidrestore.models.tiling import DEFAULT_TILE
from vidrestore.selfhvd import AnalysisSettings, analyze_video
from vidrestore.selfhvd import infer
from vidrestore.selfhvd.infer import restore_frame
from vidrestore.selfhvd.sampling import window_indices
from vidrestore.selfhvd.train import resolve_device
from vidrestore.synth.source import source_clip
from vidrestore.util.memory import reuse_freed_memory

ROOT = Path(__file__).resolve().parents[1]


def frames_720p(n: int) -> list[np.ndarray]:
    src = ROOT.parent / "shared" / "data" / "sharp" / "sam2_01_dog.mp4"
    if src.exists():
        return list(source_clip(src, 0, n).frames())
    rng = np.random.default_rng(0)
    base = rng.random((760, 1320, 3), dtype=np.float32)
    return [np.ascontiguousarray(base[i:i + 720, 2 * i:2 * i + 1280]) for i in range(n)]


def timed(fn, frames, analysis, model, device, tile, repeat) -> float:
    times = []
    for k in range(repeat):
        i = k % analysis.count
        idx = window_indices(i, model.radius, analysis.count)
        t = time.perf_counter()
        fn(model, analysis, [frames[j] for j in idx], idx, model.radius, device, tile)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames", type=int, default=6, help="timed frames per row (median reported)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        frames = frames_720p(12)
        clip = Path(tmp) / "clip.mkv"
        write_video(clip, frames, 30, EncodeSettings("ffv1"))
        analysis = analyze_video(clip, work_dir=Path(tmp) / "work", progress=False)
        frames = [analysis.frame(i) for i in range(analysis.count)]
        model = create_model("unet").to(device).eval()
        print(f"\nSelfHVD inference, 1280x720, default network ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters), "
              f"{device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
        print("| variant | tiles | s/frame | frames/s |\n|---|---|---:|---:|")
        cl = create_model("unet").to(device).eval().to(memory_format=torch.channels_last)
        if device.type == "cpu":  # what deblur's two CPU settings (bf16 autocast, freed memory reused) each bring
            with mock.patch.object(infer, "network_precision", lambda m, d: contextlib.nullcontext()):
                s = timed(restore_frame, frames, analysis, cl, device, 512, args.frames)
                print(f"| channels-last, float32, glibc's default allocation | 512 | {s:.3f} | {1 / s:.2f} |", flush=True)
                reuse_freed_memory()
                s = timed(restore_frame, frames, analysis, cl, device, 512, args.frames)
                print(f"| channels-last, float32, freed memory reused | 512 | {s:.3f} | {1 / s:.2f} |", flush=True)
        rows = [("eager", model)]
        rows.append(("channels-last (used by deblur)", cl))
        compiled = torch.compile(create_model("unet").to(device).eval().to(memory_format=torch.channels_last))
        for tile in (DEFAULT_TILE, 0):
            for name, m in rows:
                s = timed(restore_frame, frames, analysis, m, device, tile, args.frames)
                print(f"| {name} | {tile or 'whole frame'} | {s:.3f} | {1 / s:.2f} |", flush=True)
            t = time.perf_counter()
            timed(restore_frame, frames, analysis, compiled, device, tile, 1)
            first = time.perf_counter() - t
            s = timed(restore_frame, frames, analysis, compiled, device, tile, args.frames)
            print(f"| torch.compile, channels-last (first call {first:.0f} s) | {tile or 'whole frame'} | {s:.3f} | {1 / s:.2f} |", flush=True)
            if device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    s = timed(restore_frame, frames, analysis, model, device, tile, args.frames)
                print(f"| bf16 autocast | {tile or 'whole frame'} | {s:.3f} | {1 / s:.2f} |", flush=True)
        m = rows[0][1]
        idx = window_indices(5, m.radius, analysis.count)
        t = time.perf_counter()
        from vidrestore.selfhvd.window import window_input

        window_input(analysis, 5, idx, m.radius, (0, analysis.height, 0, analysis.width), lambda j: frames[j])
        print(f"\nof which aligning the window and the fusion prior (numpy/OpenCV, CPU): {time.perf_counter() - t:.3f} s/frame")
        print("\nTile sizes (channels-last, as `deblur` runs it):\n\n| frame | tile | s/frame | frames/s |\n|---|---|---:|---:|")
        for name, scale in (("1280x720", 1.0), ("1920x1080", 1.5)):
            if scale != 1.0:
                big = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) for f in frames]
                clip = Path(tmp) / "clip1080.mkv"
                write_video(clip, big, 30, EncodeSettings("ffv1"))
                analysis = analyze_video(clip, AnalysisSettings(max_downscale=1), work_dir=Path(tmp) / "work", progress=False)
                frames = [analysis.frame(i) for i in range(analysis.count)]
            for tile in (512, DEFAULT_TILE, 0):
                s = timed(restore_frame, frames, analysis, cl, device, tile, args.frames)
                print(f"| {name} | {tile or 'whole frame'} | {s:.3f} | {1 / s:.2f} |", flush=True)


if __name__ == "__main__":
    main()
