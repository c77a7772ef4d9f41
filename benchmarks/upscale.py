"""Super-resolution: `upscale` (multi-frame fusion) against bicubic and Lanczos, with ground truth.

1. Vid4 calendar x4 (paired/: the shared LR, Gaussian sigma 1.6 then every 4th pixel from the
   top-left, 180x144) and Vid4 city x4 made the same way from sharp/vid4_city_GT.mkv; Y-PSNR with
   8 px of border left out, as the VSR literature does. The LR samples sit 1.5 px up and left of
   the centred grid every upsampler (bicubic included) assumes, which costs every method alike;
   the second PSNR column moves the ground truth onto the centred grid (diagnostic only). The
   multi-frame fusion alone (fidelity) runs with psf=0.4 (the stated sigma 1.6 at x4) and with
   its default 0.2; the learned refinement (the default) with its defaults, trained on the clip.
2. x2: a 640x360 crop of the first --frames frames of two shared sharp clips, downscaled by area
   to 320x180, upscaled back; Y-PSNR (8 px border left out).
3. Warping error (Lai et al.; flows from the ground truth) of each x4 calendar output, and its
   ratio to bicubic's.
4. Speed: the stage alone (multi-frame path, fidelity), x4 from 320x180 (the first crop of part 2, downscaled) and x2 from
   640x360, frames/s on one thread.
5. Real low-resolution footage without ground truth (degraded/: the BasicVSR++ demo clip and
   DOVE's dove_001, both about 320x180): x4 of frame 10, a crop, bicubic | --fidelity | learned
   (trained on frames 4-15), written to docs/upscale_<clip>_crop.png.

Bicubic is OpenCV's (pixel centres aligned); Lanczos is ffmpeg's `scale=flags=lanczos` on the
LR frames written losslessly (RGB). Run with OMP_NUM_THREADS=1:

    python benchmarks/upscale.py [--frames 8]
"""

from __future__ import annotations

import argparse
import itertools
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


def _methods(lr: list, scale: int, psfs: tuple[float, ...]) -> dict[str, list[np.ndarray]]:
    """Bicubic, Lanczos, the multi-frame fusion alone (--fidelity) at each psf, and the learned refinement."""
    rgbs = [f.rgb for f in lr]
    out = {"bicubic": [np.clip(bicubic(x, scale), 0, 1) for x in rgbs], "lanczos": _lanczos(rgbs, scale)}
    for psf in psfs:
        out[f"fidelity psf={psf}"] = _upscaled(lr, Upscale(scale, psf=psf, fidelity=True))
    t = time.perf_counter()
    out["learned"] = _upscaled(lr, Upscale(scale))
    print(f"  (learned: {time.perf_counter() - t:.0f} s for {len(lr)} frames, training included)")
    return out


def _y_psnr(outs: list[np.ndarray], gts: list[np.ndarray], shift: float = 0.0) -> float:
    vals = []
    for o, g in zip(outs, gts):
        if shift:
            g = cv2.warpAffine(g, np.float32([[1, 0, shift], [0, 1, shift]]), g.shape[1::-1], flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
        vals.append(psnr(o, g, crop=8, channel="y"))
    return float(np.mean(vals))


def _decimated(gt: list, scale: int = 4, sigma: float = 1.6) -> list:
    """Vid4's degradation: Gaussian blur, then every `scale`-th pixel from the top-left."""
    return [f.with_rgb(np.ascontiguousarray(cv2.GaussianBlur(f.rgb, (0, 0), sigma)[::scale, ::scale])) for f in gt]


def part_vid4(n: int) -> dict:
    calendar_lr = _read(DATA / "paired" / "vid4_calendar_LR_x4_ffv1.mkv", n)
    calendar_gt = [f.rgb for f in _read(DATA / "paired" / "vid4_calendar_GT.mkv", n)]
    city = _read(DATA / "sharp" / "vid4_city_GT.mkv", n)
    results = {}
    print("\n1. Vid4 x4, Y-PSNR (8 px border left out) | with the ground truth on the centred grid")
    for name, lr, gt in [("calendar", calendar_lr, calendar_gt), ("city", _decimated(city), [f.rgb for f in city])]:
        outs = _methods(lr, 4, (0.4, 0.2))
        for method, frames in outs.items():
            a, b = _y_psnr(frames, gt), _y_psnr(frames, gt, 1.5)
            print(f"  {name:9s} {method:18s} {a:6.2f} dB | {b:6.2f} dB")
            results[(name, method)] = frames
        if name == "calendar":
            print("  warping error (x 1e-3; flows from the ground truth), ratio to bicubic's:")
            base = warping_error(outs["bicubic"], gt).mean
            for method, frames in outs.items():
                we = warping_error(frames, gt).mean
                print(f"    {method:18s} {we * 1e3:6.3f}  {we / base:5.2f}")
    return results


def part_x2(n: int) -> None:
    print("\n2. x2 from 320x180 (a 640x360 crop downscaled by area), Y-PSNR (8 px border left out)")
    for clip in SHARP:
        frames = _read(DATA / "sharp" / clip, n)
        h, w = frames[0].rgb.shape[:2]
        y0, x0 = (h - 360) // 2, (w - 640) // 2
        gt = [np.ascontiguousarray(f.rgb[y0:y0 + 360, x0:x0 + 640]) for f in frames]
        lr = [f.with_rgb(cv2.resize(g, (320, 180), interpolation=cv2.INTER_AREA)) for f, g in zip(frames, gt)]
        for method, outs in _methods(lr, 2, (0.2,)).items():
            print(f"  {clip:28s} {method:18s} {_y_psnr(outs, gt):6.2f} dB")


def part_speed(n: int) -> None:
    print("\n4. Speed of the stage alone (one thread)")
    frames = _read(DATA / "sharp" / SHARP[0], n)
    for scale, (w, h) in [(4, (320, 180)), (2, (640, 360))]:
        lr = [f.with_rgb(cv2.resize(f.rgb, (w, h), interpolation=cv2.INTER_AREA)) for f in frames]
        t = time.perf_counter()
        _upscaled(lr, Upscale(scale, fidelity=True))
        print(f"  x{scale} from {w}x{h}, fidelity (multi-frame path): {len(lr) / (time.perf_counter() - t):.2f} frames/s")


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
