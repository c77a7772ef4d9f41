"""Stabilization: `vidrestore stabilize` against ffmpeg's vid.stab on real and synthetic shake.

Clips (read from ../shared/data, or --data):
  * real_blur/meshflow_shaky-5.avi      -- shaky handheld pan, 640x360, 496 frames
  * real_blur/dut_nus_skating_first240.mkv -- handheld with zooms, 640x360, 240 frames
  * synthetic: sharp/sam2_01_dog.mp4 (near-still camera) at 640x360, moved by the handheld
    model of `vidrestore.synth.shake` with no blur (`synth_shaky`, seed 0) at motion strength
    0.5 and 1.0 (1.0 = brisk walking: its shake spans more than a 15 % crop can absorb).

Each tool runs on each clip; outputs are lossless FFV1 in --out. vid.stab is run as users run
it: `vidstabdetect` then `vidstabtransform` with their defaults (Gaussian path, smoothing 10,
optzoom 1: a fixed zoom chosen to hide borders), on 4:2:0 frames. ffmpeg is installed with apt-get when missing
(Debian's ffmpeg is built with libvidstab). Every output is scored by
`vidrestore.metrics.stabilization` against its input: stability score, path jitter (energy above
1 Hz, px^2, and its reduction), cropping ratio as crop %, distortion, ITF, plus wall time. Where
vid.stab's crop is more than 2 points away from 15 %, vidrestore runs again with that crop
(rounded up to a multiple of 5 %) so the two can be compared at equal crop. For the synthetic clips the camera path that `vidrestore`
recovers is compared with the injected one.

    python benchmarks/stabilization.py [--out /tmp/vidrestore-bench/stabilization] [--clips mesh,skating]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from vidrestore.flow.motion import frame_motions
from vidrestore.io import EncodeSettings, read_frames
from vidrestore.metrics.stabilization import evaluate_stabilization
from vidrestore.pipeline import restore
from vidrestore.restoration.stabilize import Stabilize
from vidrestore.synth.shake import ShakeSettings
from vidrestore.synth.shaky import load_trajectory, synth_shaky, true_camera_path

ROOT = Path(__file__).resolve().parents[1]
REAL = {"mesh": "real_blur/meshflow_shaky-5.avi", "skating": "real_blur/dut_nus_skating_first240.mkv"}
SYNTH = {"dog-shake0.5": 0.5, "dog-shake1.0": 1.0}
SYNTH_SOURCE = "sharp/sam2_01_dog.mp4"
DEFAULT_CROP = 0.15


def ensure_ffmpeg() -> str:
    """The ffmpeg binary, installed from Debian's packages when missing."""
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: installing it with apt-get (Debian's build has libvidstab)")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "ffmpeg"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    path = shutil.which("ffmpeg")
    filters = subprocess.run([path, "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    if "vidstabdetect" not in filters:
        raise SystemExit(f"{path} has no vidstab filters (needs an ffmpeg built with libvidstab)")
    return path


def run_vidstab(ffmpeg: str, src: Path, out: Path) -> float:
    trf = out.with_suffix(".trf")
    t0 = time.perf_counter()
    quiet = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src)]
    # libvidstab 1.1 handles packed or YUV input only (it aborts on planar RGB such as FFV1's gbrp).
    subprocess.run([*quiet, "-vf", f"format=yuv420p,vidstabdetect=result={trf}", "-f", "null", "-"], check=True)
    subprocess.run([*quiet, "-vf", f"format=yuv420p,vidstabtransform=input={trf}", "-c:v", "ffv1", str(out)], check=True)
    return time.perf_counter() - t0


def run_vidrestore(src: Path, out: Path, work: Path, crop: float) -> float:
    t0 = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)   # no cached analysis: time both passes
    restore(src, out, [Stabilize(crop)], EncodeSettings("ffv1"), overwrite=True, work_dir=work, progress=False)
    return time.perf_counter() - t0


def path_recovery(folder: Path) -> dict:
    """Error of the camera path `vidrestore` measures on a synthetic clip against the injected one.

    Paths are compared at a 5 x 5 grid of points over the frame: where each point of frame t
    lies in frame 0. Also per frame-pair motion, and the same error after a 1 Hz high-pass
    (the shake a stabilizer removes, without the slow drift the source camera adds).
    """
    traj = load_trajectory(folder)
    truth = true_camera_path(traj["homographies"])
    motions, _ = frame_motions(f.rgb for f in read_frames(folder / "shaky.mkv"))
    est = np.empty_like(truth)
    est[0] = np.eye(3)
    for t in range(1, len(motions)):
        est[t] = est[t - 1] @ np.vstack([motions[t], [0, 0, 1]])
    w, h = traj["width"], traj["height"]
    xs, ys = np.meshgrid(np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5))
    grid = np.stack([xs.ravel(), ys.ravel(), np.ones(25)])

    def where(m: np.ndarray) -> np.ndarray:
        q = m @ grid
        return (q[:, :2] / q[:, 2:]).transpose(0, 2, 1)   # (F, 25, 2)

    err = np.linalg.norm(where(est) - where(truth), axis=-1).mean(axis=1)
    rel = lambda p: np.linalg.inv(p[:-1]) @ p[1:]          # noqa: E731 - frame t+1 -> frame t
    pair_err = np.linalg.norm(where(rel(est)) - where(rel(truth)), axis=-1).mean(axis=1)
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, 1.0, "highpass", fs=traj["fps"], output="sos")
    hp = lambda x: sosfiltfilt(sos, x, axis=0)              # noqa: E731
    hp_err = np.linalg.norm(hp(where(est)) - hp(where(truth)), axis=-1).mean(axis=1)
    shake = np.linalg.norm(where(truth) - grid[:2].T, axis=-1).mean(axis=1)
    return {"path_err_mean": float(err.mean()), "path_err_max": float(err.max()), "pair_err_mean": float(pair_err.mean()),
            "hp_err_rms": float(np.sqrt(np.mean(hp_err ** 2))),
            "hp_shake_rms": float(np.sqrt(np.mean(np.linalg.norm(hp(where(truth)), axis=-1).mean(axis=1) ** 2))),
            "shake_mean": float(shake.mean()), "shake_max": float(shake.max()), "zoom": traj["zoom"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("/tmp/vidrestore-bench/stabilization"))
    ap.add_argument("--clips", help=f"comma-separated subset of {', '.join([*REAL, *SYNTH])}")
    args = ap.parse_args()
    ffmpeg = ensure_ffmpeg()
    chosen = args.clips.split(",") if args.clips else [*REAL, *SYNTH]
    args.out.mkdir(parents=True, exist_ok=True)
    rows, recovery = [], {}
    for name in chosen:
        if name in REAL:
            src = args.data / REAL[name]
        else:
            folder = args.out / name
            synth_shaky(args.data / SYNTH_SOURCE, folder, ShakeSettings(blur_strength=SYNTH[name], seed=0), scale=0.5,
                        overwrite=True, progress=False)
            src = folder / "shaky.mkv"
            recovery[name] = path_recovery(folder)
        runs = [("vidrestore", DEFAULT_CROP), ("vid.stab", None)]
        while runs:
            tool, crop = runs.pop(0)
            label = tool if crop in (None, DEFAULT_CROP) else f"{tool} (crop {100 * crop:.0f} %)"
            out = args.out / f"{name}--{label.replace(' ', '_')}.mkv"
            wall = run_vidrestore(src, out, args.out / "work", crop) if crop is not None else run_vidstab(ffmpeg, src, out)
            r = evaluate_stabilization(out, src)
            rows.append({"clip": name, "tool": label, "wall_s": wall, **r.to_dict()})
            print(f"{name} / {label}: jitter {r.input.jitter:.1f} -> {r.output.jitter:.2f} px^2 "
                  f"(-{100 * r.jitter_reduction:.1f} %), crop {100 * r.crop:.1f} %, {wall:.1f} s", flush=True)
            equal = float(np.ceil(r.crop * 20) / 20)
            if tool == "vid.stab" and abs(r.crop - DEFAULT_CROP) > 0.02 and equal != DEFAULT_CROP:
                runs.append(("vidrestore", equal))      # also compare at the crop vid.stab took
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "path_recovery": recovery}, indent=1))
    print("\n| clip | tool | stability in → out | jitter in → out (px², >1 Hz) | jitter reduction (energy / RMS) "
          "| crop | distortion | ITF in → out (dB) | wall time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        i, o = r["input"], r["output"]
        rms = 1 - o["jitter_rms"] / i["jitter_rms"]
        print(f"| {r['clip']} | {r['tool']} | {i['stability']:.3f} → {o['stability']:.3f} | {i['jitter']:.1f} → {o['jitter']:.2f} "
              f"| {100 * r['jitter_reduction']:.1f} % / {100 * rms:.1f} % | {100 * r['crop']:.1f} % | {r['distortion']:.3f} "
              f"| {i['itf']:.1f} → {o['itf']:.1f} | {r['wall_s']:.1f} s |")
    if recovery:
        print("\n| synthetic clip | injected shake (mean / max px) | recovered path error (mean / max px) "
              "| per-frame motion error (px) | >1 Hz shake RMS: injected / error (px) | synth zoom |")
        print("|---|---|---|---|---|---|")
        for name, p in recovery.items():
            print(f"| {name} | {p['shake_mean']:.1f} / {p['shake_max']:.1f} | {p['path_err_mean']:.2f} / {p['path_err_max']:.2f} "
                  f"| {p['pair_err_mean']:.2f} | {p['hp_shake_rms']:.2f} / {p['hp_err_rms']:.2f} | {p['zoom']:.3f} |")


if __name__ == "__main__":
    main()
