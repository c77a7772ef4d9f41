"""Dataset-level self-supervised training of a deblurring model to ship (issue 17, direction 1).

    python scripts/train_shipped_model.py --data ../shared/data --out phone.safetensors \
        --budget 20000 --device cuda --work-dir work-shipped

The training set is what the SelfHVD authors' setting asks for, made here from footage the
project may use:

* synthesized handheld shake (`vidrestore synth handheld`: OIS-aware blur, some frames sharp) of
  every sharp clip under `sharp/` and of scikit-image's photographs filmed by a panning virtual
  camera, each lossless, with phone sensor noise, and H.264 at CRF 23;
* the real handheld clips under `real_blur/`, except hvd002 and hvd004, which measure the result.

Only the blurry clips are trained on, through SelfHVD's own losses (`vidrestore train`): no
ground truth is used. The network is the window U-Net with four levels, so that its receptive
field (about ±90 px) exceeds the blur of real 1080p handheld footage. Training keeps its state in
the work directory every 30 s and continues from it when the same command is run again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vidrestore.io import EncodeSettings, write_video
from vidrestore.selfhvd.deblur import train_videos
from vidrestore.selfhvd.demo import photo_pan
from vidrestore.selfhvd.train import Budget, TrainSettings
from vidrestore.synth.handheld import synth_handheld
from vidrestore.synth.shake import ShakeSettings

HELD_OUT = ("hvd002_input.mp4", "hvd004_input.mp4")
VARIANTS = {"lossless": {}, "noise": {"noise": (0.004, 0.003)}, "crf23": {"crf": 23}}
MODEL = {"radius": 4, "width": 24, "enc_blocks": [1, 1, 2, 2], "dec_blocks": [1, 1, 1, 1], "mid_blocks": 2}
PHOTOS = ("coffee", "astronaut", "rocket")  # large enough for the pan


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


def training_clips(data: Path, work: Path, frames: int, scale: float) -> list[Path]:
    """Every blurry clip of the training set (module docstring), made once and reused."""
    sources = sorted((data / "sharp").glob("*.m*")) + photo_sources(work / "photos", frames)
    clips = []
    for k, src in enumerate(sources):
        for name, extra in VARIANTS.items():
            out = work / "clips" / f"{src.stem}-{name}"
            if not (out / "labels.json").exists():
                synth_handheld(src, out, ShakeSettings(seed=k), frames=frames, scale=scale if "photo" not in src.stem else 1.0,
                               overwrite=True, progress=False, **extra)
            clips.append(out / "blurry.mkv")
    real = [p for p in sorted((data / "real_blur").glob("*.mp4")) if p.name not in HELD_OUT and "selfhvd_output" not in p.name]
    return clips + real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--out", type=Path, required=True, help="the model file to write (.safetensors)")
    ap.add_argument("--budget", default="20000", help="training steps (or a time, e.g. 2h)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work-dir", type=Path, default=Path("work-shipped"))
    ap.add_argument("--frames", type=int, default=60, help="frames per synthesized clip")
    ap.add_argument("--scale", type=float, default=0.5, help="scale of the sharp sources before shaking")
    args = ap.parse_args()
    clips = training_clips(args.data, args.work_dir, args.frames, args.scale)
    print(f"{len(clips)} training clips")
    settings = TrainSettings(model="unet", model_config=MODEL, crop=192, batch=8)
    info = train_videos(clips, args.out, budget=Budget.parse(args.budget), settings=settings, device=args.device,
                        overwrite=True, work_dir=args.work_dir)
    print(f"wrote {args.out}: {info['steps']} steps, final loss {info['loss']:.4f}, {info['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
