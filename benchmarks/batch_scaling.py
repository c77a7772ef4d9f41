"""`vidrestore batch` throughput: eight clips one at a time, through the local engine, through Ray.

Writes eight generated 640x360 clips of 240 frames (H.264) and one of 960 frames, then times
(wall clock, each run in a fresh work directory and output folder):

* one `vidrestore stabilize` process per clip, one after the other (a user's shell loop);
* `vidrestore batch --engine local --jobs 1` and `--jobs 2`;
* `vidrestore batch --engine ray` (a Ray instance started on this machine, two CPUs: two tasks at once);
* the long clip alone, and as one task per segment of 240 frames with `--jobs 2`;
* Ray's fixed cost: starting and stopping a local instance with no work.

Prints a Markdown table: frames/s, the ratio to one at a time, and Ray's overhead against the
local engine. Usage: python benchmarks/batch_scaling.py [--command stabilize] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidrestore.synth.clips import ClipSpec, write_test_clip

CLIPS, FRAMES, LONG = 8, 240, 960


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--command", default="stabilize", help="the restoring command (default stabilize)")
    ap.add_argument("--keep", type=Path, help="keep the clips and outputs here (default: a temporary folder)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="vidrestore-batch-bench-"))
    clips = root / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for i in range(CLIPS):
        if not (clips / f"clip{i}.mp4").exists():
            write_test_clip(clips / f"clip{i}.mp4", ClipSpec(width=640, height=360, frames=FRAMES, lossless=False))
    long_clip = root / "long" / "long.mp4"
    long_clip.parent.mkdir(exist_ok=True)
    if not long_clip.exists():
        write_test_clip(long_clip, ClipSpec(width=640, height=360, frames=LONG, lossless=False))
    vr = [sys.executable, "-m", "vidrestore"]
    runs: list[tuple[str, int, float]] = []

    def fresh(name: str) -> tuple[Path, Path]:
        out, work = root / "out" / name, root / "work" / name
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        out.mkdir(parents=True)
        return out, work

    out, work = fresh("serial")
    t = sum(timed([*vr, args.command, str(c), "-o", str(out / c.name), "--work-dir", str(work), "-q"])
            for c in sorted(clips.iterdir()))
    runs.append((f"one `vidrestore {args.command}` per clip, one at a time", CLIPS * FRAMES, t))
    for label, opts in (("batch --engine local --jobs 1", ["--jobs", "1"]), ("batch --engine local --jobs 2", ["--jobs", "2"]),
                        ("batch --engine ray (local instance, 2 CPUs)", ["--engine", "ray"])):
        out, work = fresh(label.split()[2] + "".join(opts))
        t = timed([*vr, "batch", str(clips), "-o", str(out), *opts, "-q", args.command, "--work-dir", str(work)])
        runs.append((label, CLIPS * FRAMES, t))
    out, work = fresh("long-serial")
    t = timed([*vr, args.command, str(long_clip), "-o", str(out / "long.mp4"), "--work-dir", str(work), "-q"])
    runs.append((f"one {LONG}-frame clip, `vidrestore {args.command}`", LONG, t))
    out, work = fresh("long-split")
    t = timed([*vr, "batch", str(long_clip), "-o", str(out), "--jobs", "2", "-q", args.command, "--work-dir", str(work),
               "--segment-frames", str(FRAMES)])
    runs.append((f"the same clip, batch --jobs 2, one task per {FRAMES}-frame segment", LONG, t))
    ray_start = timed([sys.executable, "-c", "import ray; ray.init(num_cpus=2, include_dashboard=False); ray.shutdown()"])

    base = runs[0][1] / runs[0][2]
    long_base = runs[4][1] / runs[4][2]
    print(f"{CLIPS} clips of {FRAMES} frames at 640x360 (H.264), `{args.command}`, {root}\n")
    print("| run | frames | wall s | frames/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for i, (label, frames, t) in enumerate(runs):
        ratio = (frames / t) / (long_base if i >= 4 else base)
        print(f"| {label} | {frames} | {t:.1f} | {frames / t:.1f} | {ratio:.2f} |")
    local2, ray = runs[2][2], runs[3][2]
    print(f"\nRay against the local engine (both two tasks at once): {ray - local2:+.1f} s ({100 * (ray / local2 - 1):+.0f} %); "
          f"starting and stopping a local Ray instance alone: {ray_start:.1f} s")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
