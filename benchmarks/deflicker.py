"""Deflicker: `vidrestore deflicker` against ffmpeg's `deflicker`, and blind temporal consistency.

Part 1, film flicker. old_film/deflicker_Winter_Scenes_in_Holland.mp4 (640x360, 96 frames at
12 fps) through `vidrestore deflicker` and through ffmpeg's `deflicker` filter (its default
5-frame window, and a 13-frame window, the length of vidrestore's 1 s median at 12 fps). Score:
the RMS of the frame-mean luma's variation above 1 Hz (`metrics.temporal.luminance_flicker`)
and its reduction against the input, plus wall time.

Part 2, blind temporal consistency. A shared sharp clip (sharp/sam2_01_dog.mp4, 640x360, first
150 frames) is processed frame by frame with a deliberately flickery operation
(`synth.flicker`: random gamma, contrast and unsharp strength; a quarter of the frames get the
nominal settings, i.e. no flicker), then `vidrestore deflicker PROCESSED --guide ORIGINAL`.
Scores: the warping error of Lai et al. (flow and occlusion masks from the original,
`metrics.temporal.warping_error`) of the per-frame result and of the output, and PSNR where no
flicker was injected, two ways: on the frames with nominal settings, the output against the
per-frame result; and the same process with nominal settings on every frame (the clean
per-frame result) run through `deflicker --guide` too, its output against it.

    python benchmarks/deflicker.py [--out /tmp/vidrestore-bench/deflicker] [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidrestore.io import EncodeSettings, read_frames, write_video
from vidrestore.metrics.fidelity import psnr
from vidrestore.metrics.temporal import frame_mean_luma, luminance_flicker, warping_error
from vidrestore.pipeline import restore
from vidrestore.restoration.deflicker import Deflicker, GuidedDeflicker
from vidrestore.synth.flicker import FlickerParams, flicker_params, flickery_process
from vidrestore.synth.source import source_clip

ROOT = Path(__file__).resolve().parents[1]
FILM = "old_film/deflicker_Winter_Scenes_in_Holland.mp4"
SHARP = "sharp/sam2_01_dog.mp4"


def ensure_ffmpeg() -> str:
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: installing it with apt-get")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "ffmpeg"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("ffmpeg")


def _frames(path: Path) -> Iterator[np.ndarray]:
    return (f.rgb for f in read_frames(path))


def film(ffmpeg: str, data: Path, out: Path) -> list[dict]:
    src = data / FILM
    fps = 12.0
    rows = []
    base = luminance_flicker(frame_mean_luma(_frames(src)), fps)
    runs = [("vidrestore deflicker", None), ("ffmpeg deflicker (size 5, default)", 5), ("ffmpeg deflicker (size 13)", 13)]
    for label, size in runs:
        dst = out / f"film--{label.split()[0]}{size or ''}.mkv"
        t0 = time.perf_counter()
        if size is None:
            shutil.rmtree(out / "work", ignore_errors=True)
            restore(src, dst, [Deflicker()], EncodeSettings("ffv1"), overwrite=True, work_dir=out / "work", progress=False)
        else:
            subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vf", f"deflicker=size={size}",
                            "-c:v", "ffv1", str(dst)], check=True)
        wall = time.perf_counter() - t0
        value = luminance_flicker(frame_mean_luma(_frames(dst)), fps)
        rows.append({"method": label, "flicker_in": base, "flicker_out": value, "reduction": 1 - value / base, "wall_s": wall})
        print(f"film / {label}: {base:.5f} -> {value:.5f} (-{100 * (1 - value / base):.1f} %), {wall:.1f} s", flush=True)
    return rows


def blind(data: Path, out: Path, frames: int) -> dict:
    clip = source_clip(data / SHARP, 0, frames, 0.5)
    original = out / "original.mkv"
    write_video(original, clip.frames(), clip.fps, EncodeSettings("ffv1"), overwrite=True)
    params = flicker_params(clip.count, seed=0)
    processed, clean = out / "processed.mkv", out / "clean.mkv"
    write_video(processed, (flickery_process(x, p) for x, p in zip(_frames(original), params)), clip.fps,
                EncodeSettings("ffv1"), overwrite=True)
    write_video(clean, (flickery_process(x, FlickerParams()) for x in _frames(original)), clip.fps, EncodeSettings("ffv1"),
                overwrite=True)
    results: dict = {"frames": clip.count, "nominal_frames": sum(p.nominal for p in params)}
    outputs = {}
    for name, src in (("processed", processed), ("clean", clean)):
        dst = out / f"{name}--deflickered.mkv"
        t0 = time.perf_counter()
        restore(src, dst, [GuidedDeflicker(original)], EncodeSettings("ffv1"), overwrite=True, work_dir=out / "work",
                progress=False)
        results[f"wall_s_{name}"] = time.perf_counter() - t0
        outputs[name] = dst
    videos = {"original": original, "per_frame": processed, "output": outputs["processed"], "clean_per_frame": clean,
              "clean_output": outputs["clean"]}
    for key, path in videos.items():
        results[f"warp_{key}"] = warping_error(_frames(path), _frames(original)).mean
    results["warp_reduction"] = 1 - results["warp_output"] / results["warp_per_frame"]
    nominal, output_vs_clean, per_frame_vs_clean = [], [], []
    for q, o, p, c in zip(params, _frames(outputs["processed"]), _frames(processed), _frames(clean)):
        if q.nominal:
            nominal.append(psnr(o, p))
        else:
            per_frame_vs_clean.append(psnr(p, c))
        output_vs_clean.append(psnr(o, c))
    results["psnr_nominal_frames_output_vs_per_frame"] = float(np.mean(nominal))
    results["psnr_clean_output_vs_clean_per_frame"] = float(np.mean(
        [psnr(a, b) for a, b in zip(_frames(outputs["clean"]), _frames(clean))]))
    results["psnr_per_frame_vs_clean"] = float(np.mean(per_frame_vs_clean))
    results["psnr_output_vs_clean"] = float(np.mean(output_vs_clean))
    print(json.dumps(results, indent=1), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("/tmp/vidrestore-bench/deflicker"))
    ap.add_argument("--frames", type=int, default=150, help="frames of the sharp clip for part 2 (default 150)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = film(ensure_ffmpeg(), args.data, args.out)
    b = blind(args.data, args.out, args.frames)
    (args.out / "results.json").write_text(json.dumps({"film": rows, "blind": b}, indent=1))
    print("\n| method | frame-mean luma flicker >1 Hz, in → out (RMS) | reduction | wall time |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['flicker_in']:.5f} → {r['flicker_out']:.5f} | {100 * r['reduction']:.1f} % | {r['wall_s']:.1f} s |")
    print(f"\nBlind temporal consistency, {b['frames']} frames ({b['nominal_frames']} with nominal settings):\n")
    print("| video | warping error (×10⁻³) |")
    print("|---|---|")
    for key, label in (("original", "original"), ("per_frame", "per-frame result (flickery)"), ("output", "deflicker --guide output"),
                       ("clean_per_frame", "clean per-frame result (nominal settings everywhere)"),
                       ("clean_output", "clean per-frame result, deflicker --guide")):
        print(f"| {label} | {1000 * b[f'warp_{key}']:.3f} |")
    print(f"\nwarping error reduction vs per-frame result: {100 * b['warp_reduction']:.1f} %")
    print(f"PSNR where no flicker was injected: nominal frames, output vs per-frame result "
          f"{b['psnr_nominal_frames_output_vs_per_frame']:.2f} dB; clean run, output vs clean per-frame result "
          f"{b['psnr_clean_output_vs_clean_per_frame']:.2f} dB")
    print(f"PSNR against the clean per-frame result: per-frame result {b['psnr_per_frame_vs_clean']:.2f} dB "
          f"(flickered frames), output {b['psnr_output_vs_clean']:.2f} dB (all frames)")
    print(f"wall time of deflicker --guide: {b['wall_s_processed']:.1f} s")


if __name__ == "__main__":
    main()
