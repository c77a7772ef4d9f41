"""`deblur` as a stage of `restore -s` (issue 18's chains): SelfHVD trained on what the stages before it output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import psnr
from vidrestore.errors import VidrestoreError
from vidrestore.io import EncodeSettings, read_frames
from vidrestore.metrics import psnr as psnr_y
from vidrestore.pipeline import create_stage, restore
from vidrestore.selfhvd.deblur import deblur
from vidrestore.selfhvd.train import Budget, TrainSettings
from vidrestore.synth.handheld import load_labels, synth_handheld
from vidrestore.synth.shake import ShakeSettings

TINY = "crop=64,batch=2"  # training crops for speed (as test_selfhvd_training's)


@pytest.fixture(scope="module")
def noisy_shaky(sharp_video, tmp_path_factory):
    """16 frames of 160x96 with handheld shake and Poisson-Gaussian sensor noise (29.4 dB PSNR-Y on blurry frames)."""
    return synth_handheld(sharp_video, tmp_path_factory.mktemp("noisy") / "clip", ShakeSettings(seed=4, blur_strength=2.0),
                          frames=16, scale=0.5, noise=(0.01, 0.005), progress=False)


def _frames(path) -> list[np.ndarray]:
    return [f.rgb for f in read_frames(path)]


def test_denoise_then_deblur_runs_and_deblurs_the_denoised_frames(noisy_shaky, tmp_path):
    """`restore -s denoise -s deblur` (the API under the command): deblur's analysis reads the denoised
    frames, not the file, and on the blurry frames the chain is closer to the ground truth than `denoise`
    alone (one training step: the gain is mostly the window network's start, lucky-frame fusion of the
    aligned denoised frames)."""
    work = tmp_path / "w"
    denoised, chained = tmp_path / "denoised.mkv", tmp_path / "chain.mkv"
    restore(noisy_shaky.blurry, denoised, [create_stage("denoise")], EncodeSettings("ffv1"), work_dir=work, progress=False)
    restore(noisy_shaky.blurry, chained, [create_stage("denoise"), create_stage(f"deblur:budget=1,{TINY}")],
            EncodeSettings("ffv1"), work_dir=work, progress=False)
    [folder] = (work / "cache").glob("deblur-*")
    analysed = np.load(folder / "selfhvd" / "frames.npy").astype(np.float32) / 255
    clean, noisy = _frames(denoised), _frames(noisy_shaky.blurry)
    assert min(psnr(a, b) for a, b in zip(analysed, clean)) > 45  # the denoised frames (8-bit both)
    assert max(psnr(a, b) for a, b in zip(analysed, noisy)) < 35
    gt, out = _frames(noisy_shaky.gt), _frames(chained)
    blurry = [i for i, f in enumerate(load_labels(noisy_shaky.dir)["frames"]) if not f["sharp"]]
    score = {name: np.mean([psnr_y(x[i], gt[i], channel="y") for i in blurry])
             for name, x in (("input", noisy), ("denoise", clean), ("chain", out))}
    assert score["chain"] > score["denoise"] + 0.25 > score["input"] + 0.25, score


def test_the_stage_on_a_file_gives_what_the_deblur_command_gives(noisy_shaky, tmp_path):
    """The same analysis, training and network as `vidrestore deblur`: the same frames."""
    command, stage = tmp_path / "command.mkv", tmp_path / "stage.mkv"
    deblur(noisy_shaky.blurry, command, budget=Budget(steps=1), settings=TrainSettings(crop=64, batch=2),
           encode=EncodeSettings("ffv1"), work_dir=tmp_path / "w", progress=False)
    restore(noisy_shaky.blurry, stage, [create_stage(f"deblur:budget=1,{TINY}")], EncodeSettings("ffv1"),
            work_dir=tmp_path / "w", progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(command), _frames(stage), strict=True))


def test_stage_options_are_checked_before_any_work(tmp_path):
    with pytest.raises(VidrestoreError, match="above 0 steps"):
        create_stage("deblur:budget=0")
    with pytest.raises(VidrestoreError, match="fidelity mode uses no network"):
        create_stage(f"deblur:fidelity=true,model={tmp_path / 'm.safetensors'}")
    with pytest.raises(VidrestoreError, match="model file not found"):
        create_stage(f"deblur:model={tmp_path / 'm.safetensors'}")
    assert create_stage("deblur:budget=50,seed=3").config()["train"]["seed"] == 3

