"""SelfHVD part 1 on footage: sharp-frame selection accuracy, label quality, analysis speed.

    python benchmarks/selfhvd_analysis.py [--data ../shared/data] [--out bench-results/analysis]

1. Selection and labels, on handheld clips synthesized from the shared sharp footage exactly as
   the default benchmark suite makes them (`vidrestore synth handheld`, 60 frames at about
   640x360), and on the same clips re-encoded with H.264 at CRF 23 (phones compress):
   selection accuracy against the synthesizer's labels with precision and recall of "sharp";
   accuracy on the frames that are clearly one or the other (blur extent under the sharp
   threshold, or at least 1.5 px); the best accuracy one threshold per block could reach if it
   were chosen knowing the answers (what the sharpness measure allows); the same for a selector
   that knows each frame's ground truth (the ratio of the Laplacian variance of the frame to that
   of its ground-truth frame, which cancels the content exactly, as no blind measure can); how
   sharp the source itself is (relative sharpness of the ground-truth frames, which carry the
   source's own blur and no synthetic shake; the synthesizer's labels assume 1.0); PSNR of the warped
   sharp labels against the ground truth inside the final mask and overall, the same with a
   random mask of equal coverage, and the coverage.
2. Speed: `analyze_video` on the first 120 frames of a 1280x720 clip, in frames per second, in
   parts (decode + sharpness + label flows and masks; flows to the neighbours that align the
   window) and in all, next to decoding alone.
3. `vidrestore analyze` timelines of the real handheld clips (PNG, CSV) into --out.

Selection and the real clips are measured with both sharpness measures: SelfHVD's Laplacian
variance (the default) and relative sharpness (`--measure relative`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from vidrestore.io import EncodeSettings, read_frames, write_video
from vidrestore.selfhvd import AnalysisSettings, analyze_video
from vidrestore.selfhvd.relative_sharpness import RelativeSharpness
from vidrestore.selfhvd.report import sharpness_timeline, write_timeline
from vidrestore.selfhvd.selection import DEFAULT_BLOCK, frame_sharpness
from vidrestore.synth.handheld import load_labels, synth_handheld
from vidrestore.synth.shake import ShakeSettings
from vidrestore.synth.source import source_clip

ROOT = Path(__file__).resolve().parents[1]
CLIPS = {  # name: (source, seed, scale) -- the default benchmark suite's clips
    "dog": ("sharp/sam2_01_dog.mp4", 1, 0.5),
    "blocks": ("sharp/sam2_03_blocks.mp4", 2, 0.5),
    "bedroom": ("sharp/sam2_bedroom.mp4", 3, 0.6667),
    "city": ("sharp/vid4_city_GT.mkv", 5, 1.0),
}
REAL = ["real_blur/hvd002_input.mp4", "real_blur/hvd004_input.mp4", "real_blur/imageio_cockatoo_handheld.mp4"]
CLEAR_BLUR_PX = 1.5
MEASURES = ("laplacian", "relative")


def psnr_of(errors: list[float]) -> float:
    return float(10 * np.log10(1 / np.mean(errors)))


def label_quality(analysis, gt: list[np.ndarray], rng: np.random.Generator) -> dict:
    inside, everywhere, random, coverage = [], [], [], []
    for i in range(analysis.count):
        j = analysis.partner[i]
        if j < 0 or j == i:
            continue
        label, mask = analysis.label(i)
        err = ((label - gt[i]) ** 2).mean(-1)[8:-8, 8:-8]
        m = mask[8:-8, 8:-8]
        r = (rng.random(m.shape) < m.mean()).astype(np.float32)
        inside.append(float((err * m).sum() / max(m.sum(), 1)))
        everywhere.append(float(err.mean()))
        random.append(float((err * r).sum() / max(r.sum(), 1)))
        coverage.append(float(m.mean()))
    return {"masked": psnr_of(inside), "unmasked": psnr_of(everywhere), "random_mask": psnr_of(random),
            "coverage": float(np.mean(coverage))}


def oracle_accuracy(sharpness: np.ndarray, truth: np.ndarray, block: int) -> float:
    """The best accuracy any one threshold per block could reach, chosen knowing the answers."""
    right = 0
    for a in range(0, len(truth), block):
        v, t = sharpness[a:a + block], truth[a:a + block]
        right += max(int(((v > th) == t).sum()) for th in np.r_[-np.inf, v])
    return right / len(truth)


def ceiling(blurry: list[np.ndarray], gt: list[np.ndarray], truth: np.ndarray) -> float:
    """Accuracy of a selector knowing the ground truth: Laplacian ratio to the ground-truth frame, best threshold per block."""
    ratio = np.array([frame_sharpness(b) / frame_sharpness(g) for b, g in zip(blurry, gt)])
    return oracle_accuracy(ratio, truth, DEFAULT_BLOCK)


def least_relative_sharpness(frames: list[np.ndarray]) -> float:
    """The least relative sharpness among frames (1 = all as sharp as the sharpest)."""
    meter = RelativeSharpness()
    for f in frames:
        meter.add(f)
    return float(meter.solve().min())


def selection_scores(analysis, labels: dict) -> dict:
    truth = np.array([f["sharp"] for f in labels["frames"]])
    extent = np.array([f["blur_extent_px"] for f in labels["frames"]])
    sel = analysis.selection.sharp
    clear = truth | (extent >= CLEAR_BLUR_PX)
    tp = int((sel & truth).sum())
    return {"accuracy": float((sel == truth).mean()), "precision": tp / max(1, int(sel.sum())),
            "recall": tp / max(1, int(truth.sum())), "accuracy_clear": float((sel == truth)[clear].mean()),
            "ambiguous_frames": int((~clear).sum()), "frames": len(truth),
            "oracle": oracle_accuracy(analysis.selection.sharpness, truth, analysis.selection.block)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "analysis")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, results, ceilings, source_min = [], {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, (src, seed, scale) in CLIPS.items():
            for crf in (None, 23):
                clip = synth_handheld(args.data / src, tmp / f"{name}-{crf}", ShakeSettings(seed=seed), frames=60, scale=scale,
                                      crf=crf, progress=False)
                gt = [f.rgb for f in read_frames(clip.gt)]
                labels = load_labels(clip.dir)
                truth = np.array([f["sharp"] for f in labels["frames"]])
                ceilings[(name, crf)] = ceiling([f.rgb for f in read_frames(clip.blurry)], gt, truth)
                if crf is None:  # the ground truth is the same for both encodings
                    source_min[name] = least_relative_sharpness(gt)
                for measure in MEASURES:
                    analysis = analyze_video(clip.blurry, AnalysisSettings(sharpness_measure=measure), work_dir=tmp / "work",
                                             progress=False)
                    r = {**selection_scores(analysis, labels),
                         **label_quality(analysis, gt, np.random.default_rng(0))}
                    results[f"{name}{'' if crf is None else f' crf{crf}'}{'' if measure == 'laplacian' else ', relative'}"] = r
        print("\n## Sharp-frame selection and labels (synthesized handheld clips, 60 frames)\n")
        print("Rows marked 'relative' select on relative sharpness (`--measure relative`), the others on SelfHVD's "
              "Laplacian variance (the default).\n")
        print("| clip | accuracy | precision | recall | accuracy, clear frames (ambiguous) | best threshold per block | "
              "label PSNR in mask | unmasked | random mask | coverage |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            rows.append(r)
            print(f"| {name} | {r['accuracy']:.1%} | {r['precision']:.2f} | {r['recall']:.2f} | {r['accuracy_clear']:.1%} "
                  f"({r['ambiguous_frames']}) | {r['oracle']:.1%} | {r['masked']:.2f} | {r['unmasked']:.2f} | {r['random_mask']:.2f} | "
                  f"{r['coverage']:.2f} |")
        for tag, keep in (("lossless", lambda k: "crf" not in k and "relative" not in k),
                          ("H.264 crf 23", lambda k: "crf" in k and "relative" not in k),
                          ("lossless, relative", lambda k: "crf" not in k and "relative" in k),
                          ("H.264 crf 23, relative", lambda k: "crf" in k and "relative" in k)):
            sel = [r for k, r in results.items() if keep(k)]
            print(f"| **mean, {tag}** | {np.mean([r['accuracy'] for r in sel]):.1%} | {np.mean([r['precision'] for r in sel]):.2f} "
                  f"| {np.mean([r['recall'] for r in sel]):.2f} | {np.mean([r['accuracy_clear'] for r in sel]):.1%} | "
                  f"{np.mean([r['oracle'] for r in sel]):.1%} | "
                  f"{np.mean([r['masked'] for r in sel]):.2f} | {np.mean([r['unmasked'] for r in sel]):.2f} | "
                  f"{np.mean([r['random_mask'] for r in sel]):.2f} | {np.mean([r['coverage'] for r in sel]):.2f} |")
        print("\n## What the labels allow\n")
        print("| clip | source's own sharpness, least (labels assume 1) | ceiling, ground truth known, lossless | H.264 crf 23 |")
        print("|---|---:|---:|---:|")
        for name in CLIPS:
            print(f"| {name} | {source_min[name]:.2f} | {ceilings[(name, None)]:.1%} | {ceilings[(name, 23)]:.1%} |")
        print(f"| **mean** | | {np.mean([ceilings[(n, None)] for n in CLIPS]):.1%} | "
              f"{np.mean([ceilings[(n, 23)] for n in CLIPS]):.1%} |")
        results["ceiling"] = {f"{n} crf{c}": v for (n, c), v in ceilings.items()}
        results["source_least_relative_sharpness"] = source_min

        src = source_clip(args.data / "sharp/sam2_01_dog.mp4", 0, 120)
        clip720 = tmp / "dog720.mkv"
        write_video(clip720, src.frames(), src.fps, EncodeSettings("h264", 18, "veryfast"))
        t = time.perf_counter()
        n = sum(1 for _ in read_frames(clip720))
        decode = time.perf_counter() - t
        t = time.perf_counter()
        timing = analyze_video(clip720, work_dir=tmp / "work", progress=False).meta["timing"]
        full = time.perf_counter() - t
        labels_part = timing["decode_sharpness_s"] + timing["labels_s"]
        reach = AnalysisSettings().align_reach
        print(f"\n## Analysis speed, {src.width}x{src.height}, {n} frames (DIS medium: label flows at half size, "
              f"flows to the neighbours out to {reach} frames each way on half-size luma to DIS's finest level)\n")
        print("| step | seconds | frames/s |\n|---|---:|---:|")
        print(f"| decode only | {decode:.1f} | {n / decode:.1f} |")
        print(f"| decode, sharpness, selection, label flows and masks | {labels_part:.1f} | {n / labels_part:.1f} |")
        print(f"| flows to the neighbours (the network's alignment) | {timing['align_flows_s']:.1f} | "
              f"{n / timing['align_flows_s']:.1f} |")
        print(f"| analyze_video in all (and writing the cache) | {full:.1f} | {n / full:.1f} |")
        results["speed_720p_fps"] = n / full
        t = time.perf_counter()
        analyze_video(clip720, AnalysisSettings(sharpness_measure="relative"), work_dir=tmp / "work", progress=False)
        relative = time.perf_counter() - t
        print(f"| the same, selecting on relative sharpness | {relative:.1f} | {n / relative:.1f} |")
        results["speed_720p_fps_relative"] = n / relative

    print("\n## Real handheld clips (`vidrestore analyze`)\n")
    for rel in REAL:
        path = args.data / rel
        for measure in MEASURES:
            sel = sharpness_timeline(path, AnalysisSettings(sharpness_measure=measure), progress=False)
            out = args.out / path.stem / measure
            write_timeline(sel, out, path.name)
            s = sel.summary()
            sharp = ", ".join(str(i) for i in np.flatnonzero(sel.sharp))
            print(f"- {path.name} ({measure}): {s['sharp_frames']} of {s['frames']} sharp ({s['sharp_share']:.0%}), "
                  f"longest run without: {s['longest_gap']}; sharp frames: {sharp}; plot {out / 'sharpness.png'}")
            results[f"{path.name} {measure}"] = s
    (args.out / "analysis.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
