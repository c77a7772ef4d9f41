"""What SelfHVD's labels cost: the same training on aligned sharp labels and on the ground truth.

    python benchmarks/selfhvd_label_bound.py [--data ../shared/data] [--budget 2m] [--lr 2e-4]

On the SelfHVD suite's synthesized clips (dog, blocks, bedroom, made as `selfhvd_analysis.py`
and the suite make them), the default network is trained from scratch for the same budget
twice: on SelfHVD's labels (sharp frames aligned by flow, masked), and on every frame's ground
truth with a mask of 1 everywhere, the labels no self-supervised method can beat. Next to
them, the input and the untrained network, which is exactly lucky-frame fusion (the network's
starting point). Output is lossless; PSNR-Y with an 8-px border crop on the frames the
synthesizer left blurry and on those it left sharp. If ground-truth labels do not beat the
aligned ones, the network and budget, not the labels, are what limits the result.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from selfhvd_analysis import CLIPS
from vidrestore.io import EncodeSettings, read_frames
from vidrestore.metrics.fidelity import psnr
from vidrestore.models import create_model
from vidrestore.pipeline import restore
from vidrestore.selfhvd import analyze_video
from vidrestore.selfhvd.infer import DeblurStage
from vidrestore.selfhvd.train import Budget, TrainSettings, train
from vidrestore.synth.handheld import load_labels, synth_handheld
from vidrestore.synth.shake import ShakeSettings

ROOT = Path(__file__).resolve().parents[1]
SUITE_CLIPS = ("dog", "blocks", "bedroom")


class TruthLabels:
    """An analysis whose label for every frame is its ground truth, trusted everywhere."""

    def __init__(self, analysis, truth: list[np.ndarray]):
        self._analysis, self._truth = analysis, truth

    def __getattr__(self, name):
        return getattr(self._analysis, name)

    def label(self, i: int, box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        y0, y1, x0, x1 = box or (0, self._analysis.height, 0, self._analysis.width)
        crop = self._truth[i][y0:y1, x0:x1].astype(np.float32)
        return crop, np.ones(crop.shape[:2], np.float32)

    def label_coverage(self, i: int) -> float:
        return 1.0


def scores(path: Path, gt: list[np.ndarray], sharp: np.ndarray) -> tuple[float, float]:
    out = [f.rgb for f in read_frames(path)]
    p = np.array([psnr(o, g, crop=8, channel="y") for o, g in zip(out, gt)])
    return float(p[~sharp].mean()), float(p[sharp].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--budget", default="2m", help="training budget (minutes or steps), each run")
    ap.add_argument("--lr", type=float, default=TrainSettings().lr, help="peak learning rate")
    args = ap.parse_args()
    settings, budget = TrainSettings(lr=args.lr), Budget.parse(args.budget)
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in SUITE_CLIPS:
            src, seed, scale = CLIPS[name]
            clip = synth_handheld(args.data / src, tmp / name, ShakeSettings(seed=seed), frames=60, scale=scale, progress=False)
            gt = [f.rgb for f in read_frames(clip.gt)]
            sharp = np.array([f["sharp"] for f in load_labels(clip.dir)["frames"]])
            analysis = analyze_video(clip.blurry, work_dir=tmp / "work", progress=False)
            rows.setdefault("input", []).append(scores(clip.blurry, gt, sharp))
            nets = {"untrained network (lucky-frame fusion)": create_model(settings.model).eval(),
                    "trained on aligned sharp labels (SelfHVD)": train([analysis], settings, budget, progress=False)[0],
                    "trained on the ground truth": train([TruthLabels(analysis, gt)], settings, budget, progress=False)[0]}
            for n, (label, net) in enumerate(nets.items()):
                out = tmp / f"{name}-{n}.mkv"
                restore(clip.blurry, out, [DeblurStage(net, analysis, torch.device("cpu"))], EncodeSettings("ffv1"), work_dir=tmp / "work",
                        progress=False)
                rows.setdefault(label, []).append(scores(out, gt, sharp))
    print(f"\nFull SelfHVD recipe, {budget} per training run, peak lr {args.lr:g}; PSNR-Y on blurry frames per clip "
          f"({', '.join(SUITE_CLIPS)}), mean, and on sharp frames (mean).\n")
    print(f"| labels | {' | '.join(SUITE_CLIPS)} | mean blurry | mean sharp |")
    print("|---|" + "---:|" * (len(SUITE_CLIPS) + 2))
    for label, r in rows.items():
        blurry, sharp_ = np.array(r).T
        print(f"| {label} | {' | '.join(f'{b:.2f}' for b in blurry)} | {blurry.mean():.2f} | {sharp_.mean():.2f} |")


if __name__ == "__main__":
    main()
