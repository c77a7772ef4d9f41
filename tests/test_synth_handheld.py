"""The handheld-shake synthesizer: determinism, labels that match the pixels, share, geometry."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from skimage.measure import blur_effect

from conftest import psnr, run_cli, shared
from vidrestore.errors import VidrestoreError
from vidrestore.io import EncodeSettings, probe, read_frames, write_video
from vidrestore.synth.handheld import load_labels, synth_handheld
from vidrestore.synth.sensor import linear_to_srgb, srgb_to_linear
from vidrestore.synth.shake import ShakeSettings, plan_shake

W, H, N = 320, 192, 36  # the size of conftest's sharp_video


@pytest.fixture(scope="module")
def made(sharp_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "clip"
    return synth_handheld(sharp_video, out, ShakeSettings(seed=3, blur_strength=2.0), progress=False)


def _frames(path):
    return [f.rgb for f in read_frames(path)]


def _lapvar(rgb: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


def test_output_has_source_size_frame_count_and_rate(made, sharp_video):
    src = probe(sharp_video)
    for path in (made.blurry, made.gt):
        info = probe(path)
        assert (info.width, info.height, info.frame_count, info.fps) == (src.width, src.height, src.frame_count, src.fps)
    labels = load_labels(made.dir)
    assert [f["index"] for f in labels["frames"]] == list(range(N))
    assert all(len(f["trajectory"]["t_ms"]) >= 16 for f in labels["frames"])


def test_sharp_frames_match_gt_and_blurry_frames_are_blurrier(made):
    labels = load_labels(made.dir)
    thr = labels["settings"]["sharp_threshold_px"]
    blurry, gt = _frames(made.blurry), _frames(made.gt)
    sharp = [f["sharp"] for f in labels["frames"]]
    assert 0 < sum(sharp) < N
    blur_gain = []
    for f, b, g in zip(labels["frames"], blurry, gt):
        if f["sharp"]:
            assert f["blur_extent_px"] < thr
            assert psnr(b, g) >= 40, f
        else:
            assert f["blur_extent_px"] >= thr
            assert _lapvar(b) < 0.97 * _lapvar(g), f
            grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (b, g)]
            blur_gain.append(blur_effect(grey[0]) - blur_effect(grey[1]))
    assert np.mean(blur_gain) > 0.02


def test_same_seed_same_clip_other_seed_other_clip(made, sharp_video, tmp_path):
    again = synth_handheld(sharp_video, tmp_path / "again", ShakeSettings(seed=3, blur_strength=2.0), progress=False)
    for name in ("blurry", "gt"):
        pairs = zip(_frames(getattr(again, name)), _frames(getattr(made, name)), strict=True)
        assert all(np.array_equal(a, b) for a, b in pairs)
    first = load_labels(made.dir)["frames"]
    assert load_labels(again.dir)["frames"] == first
    other = plan_shake(N, 30, W, H, ShakeSettings(seed=4, blur_strength=2.0))
    assert not np.allclose(other.extent, [f["blur_extent_px"] for f in first], atol=1e-3)


@pytest.mark.parametrize("share", [0.2, 0.35, 0.6])
def test_sharp_share_is_reached(share):
    for seed in range(3):
        plan = plan_shake(90, 30, 640, 360, ShakeSettings(seed=seed, sharp_share=share))
        assert abs(plan.sharp.mean() - share) <= 0.1
        assert np.array_equal(plan.sharp, plan.extent < plan.settings.sharp_threshold_px)


def test_unreachable_share_is_a_clear_error():
    with pytest.raises(VidrestoreError, match="cannot reach a sharp share"):
        plan_shake(60, 30, 640, 360, ShakeSettings(ois_strength=0.0, sharp_share=0.9, blur_strength=3))


def test_blur_is_averaged_in_linear_light(tmp_path):
    """A 1-px checkerboard smeared over several pixels averages to 50 % linear light: sRGB 0.735, not 0.5."""
    board = np.indices((H, W)).sum(axis=0) % 2
    frames = [np.repeat(board[:, :, None], 3, axis=2).astype(np.float32)] * 24
    src = tmp_path / "board.mkv"
    write_video(src, frames, 30, EncodeSettings("ffv1"))
    r = synth_handheld(src, tmp_path / "out", ShakeSettings(seed=1, blur_strength=3.0), progress=False)
    labels = load_labels(r.dir)
    smeared = [b for f, b in zip(labels["frames"], _frames(r.blurry)) if f["blur_extent_px"] > 4]
    assert smeared
    for b in smeared:
        assert abs(np.median(b[H // 4:-H // 4, W // 4:-W // 4]) - linear_to_srgb(np.float32(0.5))) < 0.03
    x = np.linspace(0, 1, 101, dtype=np.float32)
    assert np.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert abs(float(srgb_to_linear(np.float32(0.5))) - 0.2140) < 1e-3


def test_part_scale_noise_and_crf(sharp_video, tmp_path):
    r = synth_handheld(sharp_video, tmp_path / "phone", ShakeSettings(seed=2), start=10, frames=8, scale=0.5,
                       noise=(0.004, 0.003), crf=23, progress=False)
    info = probe(r.blurry)
    assert (info.width, info.height, info.frame_count, info.codec) == (W // 2, H // 2, 8, "h264")
    assert probe(r.gt).codec == "ffv1"
    labels = load_labels(r.labels)
    assert (labels["start"], labels["frame_count"], labels["noise"], labels["crf"]) == (10, 8, {"shot": 0.004, "read": 0.003}, 23)


def test_noise_is_added_to_the_blurry_clip_only(sharp_video, tmp_path):
    """--noise changes blurry.mkv by zero-mean noise of about the requested strength; gt.mkv is untouched."""
    args = dict(start=10, frames=6, scale=0.5, progress=False)
    clean = synth_handheld(sharp_video, tmp_path / "clean", ShakeSettings(seed=2), **args)
    noisy = synth_handheld(sharp_video, tmp_path / "noisy", ShakeSettings(seed=2), noise=(0.004, 0.003), **args)
    for a, b in zip(read_frames(clean.gt), read_frames(noisy.gt), strict=True):
        assert np.array_equal(a.rgb, b.rgb)
    residual = np.stack([b.rgb - a.rgb for a, b in zip(read_frames(clean.blurry), read_frames(noisy.blurry), strict=True)])
    assert 0.005 < residual.std() < 0.1 and abs(residual.mean()) < 0.1 * residual.std()
    weaker = synth_handheld(sharp_video, tmp_path / "weaker", ShakeSettings(seed=2), noise=(0.001, 0.001), **args)
    weak = np.stack([b.rgb - a.rgb for a, b in zip(read_frames(clean.blurry), read_frames(weaker.blurry), strict=True)])
    assert weak.std() < 0.7 * residual.std()


def test_cli_writes_clip_and_refuses_to_overwrite(sharp_video, tmp_path):
    out = tmp_path / "cli"
    r = run_cli("synth", "handheld", sharp_video, "-o", out, "--frames", "6", "--seed", "5", "-q")
    assert r.returncode == 0, r.stderr
    assert "6 frames" in r.stdout
    assert json.loads((out / "labels.json").read_text())["settings"]["seed"] == 5
    r = run_cli("synth", "handheld", sharp_video, "-o", out, "--frames", "6", "-q")
    assert r.returncode == 1 and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("synth", "handheld", tmp_path / "missing.mp4", "-o", tmp_path / "x", "-q")
    assert r.returncode == 1 and "no such file" in r.stderr


def test_real_footage_sharp_frames_within_40db(tmp_path):
    """Dense real texture (letter blocks) at 640x360: the labels still hold."""
    src = shared("sharp", "sam2_03_blocks.mp4")
    r = synth_handheld(src, tmp_path / "blocks", ShakeSettings(seed=0), frames=30, scale=0.5, progress=False)
    labels = load_labels(r.dir)
    assert abs(labels["sharp_share"] - 0.35) <= 0.1
    for f, b, g in zip(labels["frames"], _frames(r.blurry), _frames(r.gt)):
        if f["sharp"]:
            assert psnr(b, g) >= 40, f["index"]
        else:
            assert _lapvar(b) < _lapvar(g), f["index"]
