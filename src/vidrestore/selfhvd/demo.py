"""`vidrestore demo`: SelfHVD end to end on a shaky clip made from a photograph, with ground truth.

No input file and no download: the photograph is scikit-image's "coffee" sample, which ships
inside its wheel. The demo

1. films the photograph with a slowly panning virtual camera (a sharp video);
2. shakes it with the OIS-aware handheld synthesizer (`vidrestore synth handheld`): about a
   third of the frames stay sharp, the rest are blurred by the hand's motion;
3. deblurs it with `vidrestore deblur` (training on the clip itself) within a small budget;
4. prints PSNR before and after against the known ground truth, and writes the blurry input,
   the deblurred output (lossless) and a side-by-side video (input | output | ground truth).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io import EncodeSettings, VideoReader, write_video
from ..metrics.fidelity import psnr
from ..synth.handheld import load_labels, synth_handheld
from ..synth.shake import ShakeSettings
from .deblur import DeblurReport, deblur
from .train import Budget

DEMO_FRAMES = 48
DEMO_SIZE = (320, 240)
DEMO_BUDGET = Budget(steps=150)  # steps: the same result on an idle or a busy machine


@dataclass
class DemoResult:
    folder: Path
    psnr_input: float
    psnr_output: float
    psnr_input_blurry: float
    psnr_output_blurry: float
    sharp_frames: int
    frames: int
    seconds: float
    deblur: DeblurReport  # what `deblur` did (its render result, selection and training record)


def photo_pan(frames: int = DEMO_FRAMES, size: tuple[int, int] = DEMO_SIZE, photo: np.ndarray | None = None) -> list[np.ndarray]:
    """A sharp clip: a virtual camera panning slowly across a photograph (float RGB; default
    scikit-image's "coffee")."""
    from skimage import data

    photo = data.coffee().astype(np.float32) / 255.0 if photo is None else photo
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        x0 = 40 + 160 * t + 6 * np.sin(2 * np.pi * t)
        y0 = 60 + 50 * t
        m = np.float32([[1, 0, -x0], [0, 1, -y0]])
        out.append(np.clip(cv2.warpAffine(photo, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT), 0, 1))
    return out


def run_demo(folder: str | os.PathLike = "vidrestore-demo", *, budget: Budget = DEMO_BUDGET, device: str = "auto",
             seed: int = 0, overwrite: bool = False, work_dir: str | os.PathLike | None = None,
             progress: bool = True) -> DemoResult:
    """Run the demo into `folder` (see the module docstring)."""
    t0 = time.perf_counter()
    out = Path(folder)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise VidrestoreError("demo folder exists and is not empty; pass --overwrite to replace its files", out)
    out.mkdir(parents=True, exist_ok=True)
    sharp = out / "sharp_source.mkv"
    write_video(sharp, photo_pan(), 30, EncodeSettings("ffv1"), overwrite=True)
    clip = synth_handheld(sharp, out, ShakeSettings(seed=seed), overwrite=True, progress=progress)
    sharp.unlink()
    deblurred = out / "deblurred.mkv"
    report = deblur(clip.blurry, deblurred, budget=budget, device=device, encode=EncodeSettings("ffv1"), overwrite=True,
           work_dir=work_dir, progress=progress)
    labels = [f["sharp"] for f in load_labels(out)["frames"]]
    p_in, p_out = [], []

    def side_by_side():
        for b, d, g in zip(VideoReader(clip.blurry).frames(), VideoReader(deblurred).frames(), VideoReader(clip.gt).frames()):
            p_in.append(psnr(b.rgb, g.rgb, 4, "y"))
            p_out.append(psnr(d.rgb, g.rgb, 4, "y"))
            yield np.hstack([b.rgb, d.rgb, g.rgb])

    write_video(out / "side_by_side.mp4", side_by_side(), 30, overwrite=True)
    blurry = ~np.array(labels)
    p_in, p_out = np.array(p_in), np.array(p_out)
    return DemoResult(out, float(p_in.mean()), float(p_out.mean()), float(p_in[blurry].mean()), float(p_out[blurry].mean()),
                      int(np.sum(labels)), len(labels), time.perf_counter() - t0, report)
