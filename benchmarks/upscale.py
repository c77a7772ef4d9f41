"""Super-resolution: `upscale` against bicubic and Lanczos, with ground truth.

1. Vid4 calendar x4 (paired/: the shared LR, Gaussian sigma 1.6 then every 4th pixel from the
   top-left, 180x144) and Vid4 city x4 made the same way from sharp/vid4_city_GT.mkv; Y-PSNR with
   8 px of border left out, as the VSR literature does. Both are decimated on the corner grid
   (input pixel i is output pixel 4 i, Vid4's "BD"), which `upscale` is told (grid=corner; a
   global shift cannot be estimated from the input). Bicubic and Lanczos are shown as tools give
   them (centre grid) and bicubic also told the grid; `--fidelity` with the blur estimated, with
   the stated sigma (psf=0.4) and on the centre grid; the learned refinement (the default) with
   the blur estimated, trained on the clip.
2. x2: a 640x360 crop of the first --frames frames of two shared sharp clips, downscaled by area
   to 320x180 (centre grid), upscaled back; Y-PSNR (8 px border left out) and warping error
   (flows from the ground truth) against bicubic's.
3. Warping error (Lai et al.; flows from the ground truth) of each Vid4 x4 output, of the ground
   truth itself and of bicubic told the grid moved a tenth of the way to the truth (as close to it
   as the fusion, with the truth's own detail), and its ratio to bicubic's.
4. Speed: the stage alone (multi-frame path, fidelity, its blur estimate included), x4 from 320x180
   (the first clip of part 2, downscaled) and x2 from 640x360, frames/s on one thread; and peak RSS
   of `vidrestore upscale --fidelity` at x4 from 320x180 over --frames and 4x as many frames.
5. Real low-resolution footage without ground truth (degraded/: the BasicVSR++ demo clip and
   DOVE's dove_001, both about 320x180): x4 of frame 10, a crop, bicubic | --fidelity | learned
   (trained on frames 4-15), written to docs/upscale_<clip>_crop.png.

Bicubic is OpenCV's (pixel centres aligned unless the grid is given); Lanczos is ffmpeg's
`scale=flags=lanczos` on the LR frames written losslessly (RGB). Run with OMP_NUM_THREADS=1:

    python benchmarks/upscale.py [--frames 8]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from vidrestore.io.reader import VideoReader
from vidrestore.metrics.fidelity import psnr
from vidrestore.metrics.temporal import warping_error
from vidrestore.pipeline.stage import apply_stage
from vidrestore.restoration.kernel_fusion import bicubic
from vidrestore.restoration.upscale import Upscale

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SHARP = ["sam2_01_dog.mp4", "set8_gopro_hypersmooth.mkv"]


def _read(path: Path, n: int, first: int = 0) -> list:
    return [f for f in itertools.islice(VideoReader(path).frames(), first, first + n)]


def _lanczos(frames: list[np.ndarray], scale: int) -> list[np.ndarray]:
    """ffmpeg's Lanczos upscaling of RGB frames (raw RGB48 in and out: no chroma subsampling, no rounding to 8 bit)."""
    h, w = frames[0].shape[:2]
    raw = b"".join((np.clip(f, 0, 1) * 65535).round().astype("<u2").tobytes() for f in frames)
    cmd = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-s", f"{w}x{h}", "-i", "-",
           "-vf", f"scale={w * scale}:{h * scale}:flags=lanczos", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-"]
    out = np.frombuffer(subprocess.run(cmd, input=raw, capture_output=True, check=True).stdout, "<u2")
    return list(out.reshape(len(frames), h * scale, w * scale, 3).astype(np.float32) / 65535)


def _upscaled(frames: list, stage: Upscale) -> list[np.ndarray]:
    """The stage over the frames; a two-pass stage (the learned refinement) is trained on them first."""
    if stage.two_pass:
        with tempfile.TemporaryDirectory() as cache:
            stage.analyze(iter(frames), SimpleNamespace(frame_count=len(frames)), Path(cache))
            stage.load(Path(cache))
    return [f.rgb for f in apply_stage(stage, frames)]


def _timed(name: str, frames: list, stage: Upscale) -> list[np.ndarray]:
    t = time.perf_counter()
    out = _upscaled(frames, stage)
    print(f"  ({name}: psf {stage.psf:.2f}, {time.perf_counter() - t:.0f} s for {len(frames)} frames, analysis included)")
    return out


def _methods(lr: list, scale: int, grid: str) -> dict[str, list[np.ndarray]]:
    """Bicubic and Lanczos as tools give them, and on the corner grid bicubic told the grid; the multi-frame
    fusion alone (--fidelity, the blur estimated; on the corner grid also with psf=0.4 and on the centre
    grid); the learned refinement (the blur estimated)."""
    rgbs = [f.rgb for f in lr]
    out = {"bicubic": [np.clip(bicubic(x, scale), 0, 1) for x in rgbs], "lanczos": _lanczos(rgbs, scale)}
    if grid == "corner":
        out["bicubic grid=corner"] = [np.clip(bicubic(x, scale, grid), 0, 1) for x in rgbs]
        out["fidelity grid=centre"] = _upscaled(lr, Upscale(scale, fidelity=True))
        out["fidelity psf=0.4"] = _upscaled(lr, Upscale(scale, psf=0.4, grid=grid, fidelity=True))
    out["fidelity"] = _timed("fidelity", lr, Upscale(scale, grid=grid, fidelity=True))
    out["learned"] = _timed("learned", lr, Upscale(scale, grid=grid))
    return out


def _y_psnr(outs: list[np.ndarray], gts: list[np.ndarray]) -> float:
    return float(np.mean([psnr(o, g, crop=8, channel="y") for o, g in zip(outs, gts)]))


def _decimated(gt: list, scale: int = 4, sigma: float = 1.6) -> list:
    """Vid4's degradation: Gaussian blur, then every `scale`-th pixel from the top-left."""
    return [f.with_rgb(np.ascontiguousarray(cv2.GaussianBlur(f.rgb, (0, 0), sigma)[::scale, ::scale])) for f in gt]


def part_vid4(n: int) -> None:
    calendar_lr = _read(DATA / "paired" / "vid4_calendar_LR_x4_ffv1.mkv", n)
    calendar_gt = [f.rgb for f in _read(DATA / "paired" / "vid4_calendar_GT.mkv", n)]
    city = _read(DATA / "sharp" / "vid4_city_GT.mkv", n)
    print("\n1. Vid4 x4 (corner grid), Y-PSNR (8 px border left out)")
    for name, lr, gt in [("calendar", calendar_lr, calendar_gt), ("city", _decimated(city), [f.rgb for f in city])]:
        outs = _methods(lr, 4, "corner")
        for method, frames in outs.items():
            print(f"  {name:9s} {method:22s} {_y_psnr(frames, gt):6.2f} dB")
        print(f"  {name} warping error (x 1e-3; flows from the ground truth), ratio to bicubic's:")
        base = warping_error(outs["bicubic"], gt).mean
        told = outs["bicubic grid=corner"]
        truer = [b + 0.1 * (g - b) for b, g in zip(told, gt)]   # detail as the truth has it: its warping error
        print(f"    (bicubic told the grid + 0.1 x (truth - it): {_y_psnr(truer, gt):.2f} dB)")
        for method, frames in [*outs.items(), ("bicubic grid + 0.1 truth", truer), ("ground truth", gt)]:
            we = warping_error(frames, gt).mean
            print(f"    {method:24s} {we * 1e3:6.3f}  {we / base:5.2f}")


def part_x2(n: int) -> None:
    print("\n2. x2 from 320x180 (a 640x360 crop downscaled by area), Y-PSNR (8 px border left out)")
    for clip in SHARP:
        frames = _read(DATA / "sharp" / clip, n)
        h, w = frames[0].rgb.shape[:2]
        y0, x0 = (h - 360) // 2, (w - 640) // 2
        gt = [np.ascontiguousarray(f.rgb[y0:y0 + 360, x0:x0 + 640]) for f in frames]
        lr = [f.with_rgb(cv2.resize(g, (320, 180), interpolation=cv2.INTER_AREA)) for f, g in zip(frames, gt)]
        outs = _methods(lr, 2, "centre")
        base = warping_error(outs["bicubic"], gt).mean
        for method, frames in [*outs.items(), ("ground truth", gt)]:
            ratio = warping_error(frames, gt).mean / base
            print(f"  {clip:28s} {method:18s} {_y_psnr(frames, gt):6.2f} dB, warping error {ratio:5.2f}x bicubic's")


def _peak_rss(clip: Path, n: int, work: Path) -> tuple[float, float, float]:
    """Frames/s, frames per CPU second and peak RSS (MB) of `vidrestore upscale --scale 4 --fidelity` over `clip` (n frames)."""
    out = work / f"x4_{n}.mkv"
    cmd = ["/usr/bin/time", "-f", "%U %S %M", "vidrestore", "upscale", str(clip), "-o", str(out), "--scale", "4", "--fidelity",
           "--codec", "ffv1", "--work-dir", str(work / f"w{n}"), "--quiet", "--overwrite"]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    user, system, kb = r.stderr.strip().splitlines()[-1].split()
    return n / (time.perf_counter() - t), n / (float(user) + float(system)), int(kb) / 1024


def part_speed(n: int) -> None:
    print("\n4. Speed of the stage alone (one thread), the blur estimate included; peak RSS of the command")
    frames = _read(DATA / "sharp" / SHARP[0], 4 * n)
    for scale, (w, h) in [(4, (320, 180)), (2, (640, 360))]:
        lr = [f.with_rgb(cv2.resize(f.rgb, (w, h), interpolation=cv2.INTER_AREA)) for f in frames[:n]]
        t, cpu = time.perf_counter(), time.process_time()
        _upscaled(lr, Upscale(scale, fidelity=True))
        print(f"  x{scale} from {w}x{h}, fidelity (multi-frame path): {len(lr) / (time.perf_counter() - t):.2f} frames/s, "
              f"{len(lr) / (time.process_time() - cpu):.2f} frames per CPU second (load average {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for count in (n, 4 * n):
            small = work / f"small{count}.mkv"
            raw = b"".join((cv2.resize(f.rgb, (320, 180), interpolation=cv2.INTER_AREA) * 255).round().astype(np.uint8).tobytes()
                           for f in frames[:count])
            subprocess.run(["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "320x180", "-r", "30", "-i", "-",
                            "-c:v", "ffv1", "-pix_fmt", "yuv444p", str(small)], input=raw, check=True)
            fps, per_cpu, mb = _peak_rss(small, count, work)
            print(f"  vidrestore upscale --scale 4 --fidelity, {count} frames of 320x180: {fps:.2f} frames/s end to end "
                  f"({per_cpu:.2f} per CPU second), peak RSS {mb:.0f} MB")


CROPS = {"basicvsrpp_reds_demo000_LR_ffv1.mkv": ("reds", (60, 120)), "dove_001_lq.mp4": ("dove", (60, 120))}


def part_crops(docs: Path) -> None:
    print("\n5. Real low-resolution footage: crops bicubic | --fidelity | learned (x4 of frame 10)")
    for clip, (name, (y, x)) in CROPS.items():
        frames = _read(DATA / "degraded" / clip, 7, 7)
        fused = _upscaled(frames, Upscale(4, fidelity=True))[3]
        learned = _upscaled(_read(DATA / "degraded" / clip, 12, 4), Upscale(4))[6]   # trained on 12 frames
        cubic = np.clip(bicubic(frames[3].rgb, 4), 0, 1)
        y, x = 4 * y, 4 * x
        gap = np.full((240, 4, 3), 1.0, np.float32)
        panel = np.concatenate([cubic[y:y + 240, x:x + 320], gap, fused[y:y + 240, x:x + 320], gap,
                                learned[y:y + 240, x:x + 320]], 1)
        path = docs / f"upscale_{name}_crop.png"
        cv2.imwrite(str(path), cv2.cvtColor((panel * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"  {clip}: {path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="frames of each clip (default 8)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    part_vid4(args.frames)
    part_x2(args.frames)
    part_speed(args.frames)
    part_crops(Path(__file__).resolve().parents[1] / "docs")


if __name__ == "__main__":
    main()
