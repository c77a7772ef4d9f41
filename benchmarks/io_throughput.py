"""I/O throughput and memory: raw PyAV decode+encode vs `vidrestore restore` with no stages.

Generates a 720p H.264 test clip (2000 frames by default), then in one run measures
  * raw PyAV: decode every frame and hand the decoded frame straight to libx264 (same settings
    vidrestore uses by default: CRF 18, preset medium) -- the least work any tool must do;
  * vidrestore restore (no stages): decode -> float RGB -> encode, segments, manifest, final mux;
and prints fps of both and their ratio, plus the peak RSS of `vidrestore restore` at 200 and
2000 frames (each in a fresh process).

    python benchmarks/io_throughput.py [--frames 2000] [--preset medium]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from vidrestore.synth.clips import ClipSpec, write_test_clip


def raw_pyav(src: Path, dst: Path, preset: str, crf: int) -> float:
    t0 = time.perf_counter()
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate, options={"crf": str(crf), "preset": preset})
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        for frame in inp.decode(vin):
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(vout.encode(frame))
        out.mux(vout.encode(None))
    return time.perf_counter() - t0


def measured_restore(src: Path, dst: Path, preset: str, crf: int, work: Path, frames: int | None = None) -> dict:
    """Run restore in a fresh process; returns its wall time and peak RSS."""
    code = f"""
import json, resource, time
from vidrestore import restore, EncodeSettings
t0 = time.perf_counter()
r = restore({str(src)!r}, {str(dst)!r}, encode=EncodeSettings('h264', {crf}, {preset!r}), work_dir={str(work)!r}, progress=False, overwrite=True)
print(json.dumps({{"seconds": time.perf_counter() - t0, "frames": r.frames,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--crf", type=int, default=18)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        long_clip, short_clip = tmp / "long.mp4", tmp / "short.mp4"
        t = time.perf_counter()
        spec = ClipSpec(width=1280, height=720, frames=args.frames, fps=Fraction(30), time_base=Fraction(1, 15360),
                        lossless=False, audio=True)
        write_test_clip(long_clip, spec)
        write_test_clip(short_clip, ClipSpec(**{**spec.__dict__, "frames": min(200, args.frames)}))
        print(f"generated {args.frames}-frame 1280x720 clip in {time.perf_counter() - t:.0f} s", file=sys.stderr)

        raw_s = raw_pyav(long_clip, tmp / "raw.mp4", args.preset, args.crf)
        ours = measured_restore(long_clip, tmp / "ours.mp4", args.preset, args.crf, tmp / "work")
        short = measured_restore(short_clip, tmp / "ours_short.mp4", args.preset, args.crf, tmp / "work")
        raw_fps = args.frames / raw_s
        our_fps = ours["frames"] / ours["seconds"]
        rows = [
            ("raw PyAV decode+encode", f"{raw_fps:.1f}", "1.00", "-"),
            ("vidrestore restore (no stages)", f"{our_fps:.1f}", f"{our_fps / raw_fps:.2f}", f"{ours['peak_rss_mb']:.0f}"),
            (f"vidrestore restore, {short['frames']} frames", f"{short['frames'] / short['seconds']:.1f}", "-", f"{short['peak_rss_mb']:.0f}"),
        ]
        print(f"\n1280x720 H.264 (libx264 crf {args.crf}, preset {args.preset}), {args.frames} frames, AAC audio copied\n")
        print("| run | fps | ratio to raw | peak RSS (MB) |")
        print("|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        print(f"\npeak RSS {args.frames} vs {short['frames']} frames: {ours['peak_rss_mb'] / short['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
