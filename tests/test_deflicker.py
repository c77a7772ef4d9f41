"""Deflicker: global tone flicker (scene cuts, lighting steps), blind temporal consistency, CLI, metric."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import run_cli, textured_scene
from vidrestore.errors import VidrestoreError
from vidrestore.io import EncodeSettings, probe, read_frames, write_video
from vidrestore.metrics.fidelity import psnr
from vidrestore.metrics.temporal import frame_mean_luma, luminance_flicker, warping_error
from vidrestore.pipeline import create_stage, restore
from vidrestore.restoration.deflicker import Deflicker, GuidedDeflicker, shot_starts, tone_curve
from vidrestore.synth.flicker import FlickerParams, flicker_params, flickery_process

W, H, FPS = 160, 96, 25


def _scene(seed: int, level: float) -> np.ndarray:
    img = textured_scene(np.random.default_rng(seed), W, H)
    return np.clip(img - img.mean() + level, 0, 1).astype(np.float32)


def _flicker(frames: list[np.ndarray], seed: int = 0, strength: float = 0.12) -> list[np.ndarray]:
    """Each frame's exposure scaled by a random gain (film-like global flicker)."""
    gains = 1 + np.random.default_rng(seed).uniform(-strength, strength, len(frames))
    return [np.clip(f * g, 0, 1).astype(np.float32) for f, g in zip(frames, gains)]


def _write(path, frames):
    write_video(path, frames, FPS, EncodeSettings("ffv1"))
    return path


def _deflickered(tmp_path, frames, name="in.mkv", stage=None):
    src = _write(tmp_path / name, frames)
    out = tmp_path / f"out-{name}"
    stage = stage or Deflicker()
    restore(src, out, [stage], EncodeSettings("ffv1"), progress=False)
    return src, out, stage


def test_global_flicker_is_removed(tmp_path):
    frames = _flicker([_scene(1, 0.45)] * 40)
    src, out, stage = _deflickered(tmp_path, frames)
    before = luminance_flicker(frame_mean_luma(f.rgb for f in read_frames(src)), FPS)
    after = luminance_flicker(frame_mean_luma(f.rgb for f in read_frames(out)), FPS)
    assert after < 0.2 * before, (before, after)
    assert stage.summary["shots"] == [0]


def test_scene_cut_starts_a_new_reference(tmp_path):
    """A dark shot cut to a bright one: each keeps its own level right up to the cut."""
    dark, bright = _scene(1, 0.3), _scene(2, 0.7)
    frames = _flicker([dark] * 20 + [bright] * 20, seed=1, strength=0.05)
    _, out, stage = _deflickered(tmp_path, frames)
    assert stage.summary["shots"] == [0, 20]
    means = frame_mean_luma(f.rgb for f in read_frames(out))
    levels = frame_mean_luma([dark, bright])
    assert np.all(np.abs(means[15:20] - levels[0]) < 0.02) and np.all(np.abs(means[20:25] - levels[1]) < 0.02)


def test_real_lighting_step_is_kept(tmp_path):
    """The light goes up by half within one shot (same scene): the output keeps the step."""
    base = _scene(3, 0.35)
    frames = _flicker([base] * 20 + [np.clip(base * 1.5, 0, 1)] * 20, seed=2, strength=0.05)
    _, out, stage = _deflickered(tmp_path, frames)
    assert stage.summary["shots"] == [0]
    means = frame_mean_luma(f.rgb for f in read_frames(out))
    assert means[26:].mean() > 1.35 * means[:14].mean()
    assert np.ptp(means[26:]) < 0.02 and np.ptp(means[:14]) < 0.02


def test_shot_starts_and_tone_curve():
    assert shot_starts(np.array([0.0, 0.1, 1.2, 0.2, 0.9])) == [0, 2, 4]
    xs, ys = tone_curve(np.array([0.2, 0.4, 0.6]), np.array([0.3, 0.5, 0.7]))
    assert np.interp(0.4, xs, ys) == pytest.approx(0.5, abs=1e-5)
    assert np.all(np.diff(ys) >= 0) and ys[0] >= 0 and ys[-1] <= 1
    flat_xs, flat_ys = tone_curve(np.full(3, 0.5), np.array([0.4, 0.5, 0.6]))   # a flat frame: ties stay monotone
    assert np.all(np.diff(flat_xs) > 0) and np.all(np.diff(flat_ys) >= 0)
    with pytest.raises(VidrestoreError, match="window"):
        Deflicker(window=0)


@pytest.fixture(scope="module")
def guided_clips(tmp_path_factory):
    """A panning textured scene (the original), its flickery per-frame processing, and a clean processing."""
    root = tmp_path_factory.mktemp("guided")
    scene = cv2.GaussianBlur(textured_scene(np.random.default_rng(6), W + 60, H + 20), (0, 0), 1.0)  # a lens's softness
    orig = [cv2.warpAffine(scene, np.float32([[1, 0, -1.5 * i], [0, 1, -0.4 * i]]), (W, H), flags=cv2.INTER_CUBIC)
            for i in range(24)]
    params = flicker_params(len(orig), seed=3)
    return (_write(root / "orig.mkv", orig), _write(root / "proc.mkv", [flickery_process(x, p) for x, p in zip(orig, params)]),
            _write(root / "clean.mkv", [flickery_process(x, FlickerParams()) for x in orig]), params)


def _rgb(path):
    return [f.rgb for f in read_frames(path)]


def test_guided_deflicker_removes_per_frame_flicker(guided_clips, tmp_path):
    orig, proc, clean, params = guided_clips
    out = tmp_path / "out.mkv"
    restore(proc, out, [GuidedDeflicker(orig)], EncodeSettings("ffv1"), progress=False)
    before = warping_error(_rgb(proc), _rgb(orig)).mean
    after = warping_error(_rgb(out), _rgb(orig)).mean
    assert after < 0.25 * before, (before, after)
    # closer to the flicker-free processing than the flickery one is
    o, p, c = _rgb(out), _rgb(proc), _rgb(clean)
    flickered = [i for i, q in enumerate(params) if not q.nominal]
    assert np.mean([psnr(o[i], c[i]) for i in flickered]) > np.mean([psnr(p[i], c[i]) for i in flickered]) + 3


def test_guided_deflicker_leaves_a_steady_process_alone(guided_clips, tmp_path):
    orig, _, clean, _ = guided_clips
    out = tmp_path / "clean-out.mkv"
    restore(clean, out, [create_stage(f"guided-deflicker:guide={orig}")], EncodeSettings("ffv1"), progress=False)
    assert np.mean([psnr(a, b) for a, b in zip(_rgb(out), _rgb(clean))]) > 40


def test_guided_deflicker_resumes_mid_video(guided_clips, tmp_path):
    """Rendering from a later segment reopens the guide there and gives the same frames."""
    orig, proc, _, _ = guided_clips
    whole, segmented = tmp_path / "whole.mkv", tmp_path / "seg.mkv"
    restore(proc, whole, [GuidedDeflicker(orig, radius=2)], EncodeSettings("ffv1"), progress=False)
    stage = GuidedDeflicker(orig, radius=2)
    stage.guide.get(20)                                   # the guide reader is ahead, as after a resumed run
    restore(proc, segmented, [stage], EncodeSettings("ffv1"), progress=False, segment_frames=7)
    for a, b in zip(read_frames(whole), read_frames(segmented)):
        assert np.array_equal(a.rgb, b.rgb)


def test_deflicker_cli(guided_clips, clip_factory, tmp_path):
    orig, proc, _, _ = guided_clips
    out = tmp_path / "cli.mkv"
    r = run_cli("deflicker", proc, "--guide", orig, "-o", out, "--codec", "ffv1", "-q")
    assert r.returncode == 0, r.stderr
    assert probe(out).frame_count == probe(proc).frame_count
    other, _, _ = clip_factory("defl_other.mkv", width=W, height=H, frames=10)
    r = run_cli("deflicker", proc, "--guide", other, "-o", tmp_path / "bad.mkv")
    assert r.returncode == 1 and "defl_other.mkv" in r.stderr and "original" in r.stderr
    r = run_cli("deflicker", proc, "--guide", tmp_path / "nope.mp4", "-o", tmp_path / "bad.mkv")
    assert r.returncode == 1 and "nope.mp4" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("deflicker", orig, "-o", tmp_path / "global.mkv", "--codec", "ffv1", "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("metrics", tmp_path / "global.mkv", orig, "--flicker")
    assert r.returncode == 0 and "reduction" in r.stdout


def test_flicker_metric_and_process():
    t = np.arange(100)
    slow = 0.4 + 0.1 * np.sin(2 * np.pi * 0.1 * t / FPS)
    assert luminance_flicker(slow, FPS) < 1e-3
    fast = slow + 0.02 * np.sin(2 * np.pi * 5 * t / FPS)
    assert luminance_flicker(fast, FPS) == pytest.approx(0.02 / np.sqrt(2), rel=0.05)
    params = flicker_params(200, seed=1)
    assert 0.15 < np.mean([p.nominal for p in params]) < 0.35
    x = _scene(1, 0.5)
    assert np.array_equal(flickery_process(x, FlickerParams(amount=0.0)), np.clip(x, 0, 1))
