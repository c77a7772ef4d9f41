"""Real footage: vidrestore's SelfHVD output next to the SelfHVD authors' published output.

    vidrestore bench benchmarks/suites/selfhvd-real.toml -o bench-results/selfhvd-real --keep-videos
    python benchmarks/hvd_compare.py bench-results/selfhvd-real [--data ../shared/data]
    vidrestore bench benchmarks/suites/selfhvd-phones.toml -o bench-results/selfhvd-phones --keep-videos
    python benchmarks/hvd_compare.py bench-results/selfhvd-phones

For each real clip of the bench run (no ground truth; `results.json` names its source) it scores
the input, the run's outputs (`videos/CLIP/*.mkv`: unsharp mask, lucky-frame fusion, SelfHVD,
SelfHVD in fidelity mode; those the run left out are skipped) and, for the HVD clips, the authors'
output (`real_blur/hvd00N_selfhvd_output.mp4`) with the same metrics against the input: blur
effect (Crete et al.; lower is sharper), Laplacian variance (higher is sharper), sharp-frame
agreement (PSNR-Y against the input's nearest selected sharp frame warped onto the frame, on
blurry frames, output minus input; > 0: closer to the video's own sharp frames), drift (median
flow of output vs input, px) and warping-error excess over the input. It writes a PNG per clip:
the same crop of one frame from the input, our output and theirs, side by side (the README's figure).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from vidrestore.io import read_frames
from vidrestore.metrics.report import evaluate_videos
from vidrestore.selfhvd.report import sharpness_timeline

ROOT = Path(__file__).resolve().parents[1]
METHOD = "SelfHVD (full)"
FIDELITY = "SelfHVD --fidelity"


def crop_panel(paths: dict[str, Path], frame: int, out: Path, size: int = 256) -> None:
    """The centre-right crop of `frame` from each video, side by side, captioned."""
    tiles = []
    for name, path in paths.items():
        rgb = next(f.rgb for f in read_frames(path, frame, frame + 1))
        h, w = rgb.shape[:2]
        y0, x0 = (h - size) // 2, (w - size) * 2 // 3
        tile = np.ascontiguousarray((np.clip(rgb[y0:y0 + size, x0:x0 + size], 0, 1) * 255 + 0.5).astype(np.uint8))
        cv2.rectangle(tile, (0, 0), (10 * len(name) + 8, 24), (0, 0, 0), -1)
        cv2.putText(tile, name, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(str(out), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="the bench results folder of selfhvd-real.toml (run with --keep-videos)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    print("| clip | video | blur effect | Laplacian var | sharp-frame agreement dB (gain) | drift px vs input | "
          "warp excess x1e3 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    clips = [c for c in json.loads((args.results / "results.json").read_text())["clips"] if not c["has_gt"]]
    for c in clips:
        clip, source = c["name"], Path(c["source"])
        runs = args.results / "videos" / clip
        authors = args.data / "real_blur" / source.name.replace("_input.", "_selfhvd_output.")
        videos = {"input": source, "unsharp mask": runs / "unsharp.mkv", "lucky-frame fusion": runs / "lucky.mkv",
                  "vidrestore SelfHVD": runs / f"{METHOD}.mkv", "vidrestore --fidelity": runs / f"{FIDELITY}.mkv"}
        if authors.name != source.name:  # an HVD clip
            videos["authors' SelfHVD"] = authors
        sharp = sharpness_timeline(source, progress=False).sharp
        for name, path in videos.items():
            if not path.exists():  # a method the bench run left out (`--methods`)
                continue
            s = evaluate_videos(path, source, gt=False, sharp=sharp, progress=False).summary()["all"]
            agree = ("n/a (no frame selected as sharp)" if s["agree_out"] is None
                     else f"{s['agree_out']:.2f} ({s['agree_gain']:+.2f})")
            print(f"| {clip} | {name} | {s['blur_effect']:.3f} | {s['lap_var']:.0f} | {agree} | {s['drift_px']:.3f} "
                  f"| {s['warp_excess'] * 1e3:.3f} |")
        out = args.results / f"{clip}_crop.png"
        shown = ("input", "vidrestore SelfHVD", "authors' SelfHVD")
        crop_panel({k: videos[k] for k in shown if k in videos and videos[k].exists()}, 10, out)
        print(f"|  | crop of frame 10: {out} | | | | |")


if __name__ == "__main__":
    main()
